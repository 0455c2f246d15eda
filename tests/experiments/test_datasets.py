"""Datasets: create, all-or-nothing CSV/JSONL import with mapping and row-numbered errors,
export round trips, missing variables, the two commands, and streaming."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from experiments import datasets
from experiments.datasets import dataset_create, dataset_export, dataset_import, missing_variables
from experiments.models import Dataset
from promptlab.accounts.models import Role
from promptlab.errors import Forbidden, Invalid
from tests.factories import MembershipFactory, ProjectFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def project():
    return ProjectFactory(slug="support")


@pytest.fixture
def dataset(project):
    return dataset_create(project=project, actor=None, name="faq")


def load(dataset, text, format="csv", encoding="utf-8", **options):
    data = text if isinstance(text, bytes) else text.encode(encoding)
    return dataset_import(dataset=dataset, actor=None, file=io.BytesIO(data), format=format, **options)


def items(dataset):
    return list(dataset.items.order_by("row").values_list("row", "vars", "expected", "metadata"))


def refused(dataset, text, format="csv", **options) -> str:
    """Import the file, expect a refusal, check that nothing changed, return the message."""
    before = items(dataset)
    with pytest.raises(Invalid) as caught:
        load(dataset, text, format, **options)
    assert items(dataset) == before
    assert caught.value.message.startswith("Nothing was imported: ")
    return caught.value.message


# --- Create ---------------------------------------------------------------------------------


def test_create_checks_the_name(project):
    dataset_create(project=project, actor=None, name="faq", description="Common questions")

    with pytest.raises(Invalid, match="already has a dataset named 'faq'"):
        dataset_create(project=project, actor=None, name="faq")
    with pytest.raises(Invalid, match="'two words' is not a valid dataset name"):
        dataset_create(project=project, actor=None, name="two words")
    assert dataset_create(project=ProjectFactory(), actor=None, name="faq").name == "faq"  # unique per project only


def test_a_viewer_may_neither_create_nor_import_but_an_editor_may(project):
    viewer = MembershipFactory(project=project, role=Role.VIEWER).user
    editor = MembershipFactory(project=project, role=Role.EDITOR).user

    with pytest.raises(Forbidden):
        dataset_create(project=project, actor=viewer, name="faq")
    dataset = dataset_create(project=project, actor=editor, name="faq")
    with pytest.raises(Forbidden):
        dataset_import(dataset=dataset, actor=viewer, file=io.BytesIO(b"q\nhi\n"), format="csv")
    assert dataset_import(dataset=dataset, actor=editor, file=io.BytesIO(b"q\nhi\n"), format="csv") == 1


# --- CSV import -----------------------------------------------------------------------------


def test_csv_columns_become_vars_expected_and_metadata(dataset):
    text = '\ufeffquestion,tone,expected,meta.source\nWhere is my order?,polite,"It ships today,\nby noon.",email\nRefund?,,No,chat\n'

    assert load(dataset, text) == 2

    assert items(dataset) == [
        (1, {"question": "Where is my order?", "tone": "polite"}, "It ships today,\nby noon.", {"source": "email"}),
        (2, {"question": "Refund?", "tone": ""}, "No", {"source": "chat"}),
    ]


def test_csv_mapping_renames_ignores_and_routes_columns(dataset):
    text = "question,answer,source,notes\nWhy?,Because,faq,internal\n"

    load(dataset, text, mapping={"question": "vars.q", "answer": "expected", "source": "metadata.source", "notes": None})

    assert items(dataset) == [(1, {"q": "Why?"}, "Because", {"source": "faq"})]


def test_rows_continue_after_existing_items_and_replace_starts_again(dataset):
    load(dataset, "q\na\nb\n")
    load(dataset, "q\nc\n")
    assert [(row, vars["q"]) for row, vars, *_ in items(dataset)] == [(1, "a"), (2, "b"), (3, "c")]

    assert load(dataset, "q\nx\n", replace=True) == 1

    assert [(row, vars["q"]) for row, vars, *_ in items(dataset)] == [(1, "x")]


def test_a_refused_replace_keeps_the_old_items(dataset):
    load(dataset, "q\na\nb\n")

    refused(dataset, "q\nx\ny,extra\n", replace=True)

    assert [vars["q"] for _, vars, *_ in items(dataset)] == ["a", "b"]


def test_replace_is_refused_once_experiments_have_runs_on_the_items(dataset, project):
    from experiments.models import Experiment, Run, Variant
    from prompts import services as prompt_services
    from tests.factories import ModelEndpointFactory

    load(dataset, "q\na\n")
    prompt = prompt_services.prompt_create(project=project, actor=None, name="p", message="v1", template="{{ q }}", endpoint=ModelEndpointFactory())
    experiment = Experiment.objects.create(project=project, name="e", dataset=dataset)
    variant = Variant.objects.create(experiment=experiment, name="v", prompt=prompt, version=1)
    Run.objects.create(experiment=experiment, variant=variant, item=dataset.items.get())

    with pytest.raises(Invalid, match="has experiment runs; replacing its items would delete them"):
        load(dataset, "q\nx\n", replace=True)
    assert Run.objects.count() == 1
    assert load(dataset, "q\nb\n") == 1  # adding is fine


# --- JSONL import ---------------------------------------------------------------------------


def test_jsonl_structured_and_flat_lines(dataset):
    lines = [
        {"vars": {"question": "Hi", "n": 3, "tags": ["a"]}, "expected": "Hello", "metadata": {"source": "chat"}},
        {"vars": {"question": "Bye"}},
        {"question": "Flat", "expected": "Yes", "meta.source": "web", "n": 1.5},
    ]
    text = "\n".join(json.dumps(line) for line in lines[:2]) + "\n\n" + json.dumps(lines[2]) + "\r\n"

    assert load(dataset, text, "jsonl") == 3

    assert items(dataset) == [
        (1, {"question": "Hi", "n": 3, "tags": ["a"]}, "Hello", {"source": "chat"}),
        (2, {"question": "Bye"}, "", {}),
        (3, {"question": "Flat", "n": 1.5}, "Yes", {"source": "web"}),
    ]


def test_jsonl_flat_lines_follow_the_mapping(dataset):
    text = '{"question": "Why?", "answer": "Because", "source": "faq", "id": 7}\n'

    load(dataset, text, "jsonl", mapping={"question": "vars.q", "answer": "expected", "source": "metadata.source", "id": None})

    assert items(dataset) == [(1, {"q": "Why?"}, "Because", {"source": "faq"})]


# --- Bad input: a clear error naming row and column, nothing imported -------------------------


@pytest.fixture
def filled(dataset):
    load(dataset, "q,expected\nkept,yes\n")
    return dataset


def test_a_row_with_too_few_or_too_many_fields(filled):
    message = refused(filled, "question,tone,expected\nfine,ok,yes\nshort,only\nlong,a,b,c\n")

    assert "row 2 (line 3), column 'expected': 2 fields but the header has 3" in message
    assert "row 3 (line 4): 4 fields but the header has 3 columns" in message
    message = refused(filled, "question,tone,expected\nignored,ok\n", mapping={"question": None})
    assert message == "Nothing was imported: row 1 (line 2), column 'expected': 2 fields but the header has 3: no value for this column."


def test_malformed_csv_names_the_row_and_line(filled):
    message = refused(filled, 'q,expected\n"multi\nline",ok\n"a"b,c\n')

    assert message == "Nothing was imported: row 2 (line 4): malformed CSV: ',' expected after '\"'."
    assert "never closed" in refused(filled, 'q\nfine\n"open\nmore\n')


def test_wrong_encoding_names_the_row_line_and_byte(filled):
    data = "q,expected\nCafé,ok\n".encode() + "Crème,ok\n".encode("latin-1")

    message = refused(filled, data)

    assert message == "Nothing was imported: row 2 (line 3): not UTF-8 (byte 23 of the file is 0xe8)."
    assert data[22] == 0xE8  # the 23rd byte


def test_a_nul_character_is_refused_in_both_formats(filled):
    assert "row 1 (line 2): contains a NUL character" in refused(filled, b"q\na\x00b\n")
    assert "line 1: contains a NUL character (\\u0000)" in refused(filled, '{"q": "a\\u0000b"}\n', "jsonl")
    assert "line 1: contains an unpaired surrogate" in refused(filled, '{"q": "\\ud800"}\n', "jsonl")
    assert "line 1: contains a number too large (it reads as infinity)" in refused(filled, '{"q": 1e999}\n', "jsonl")


def test_a_mapping_that_names_a_missing_column(filled):
    message = refused(filled, "question,answer\nWhy?,Because\n", mapping={"query": "vars.q", "answer": "expected"})

    assert "line 1, column 'query': the mapping names a column that is not in the header (columns: question, answer)" in message


def test_bad_headers(filled):
    assert "column 'q': the header names this column twice (columns 1 and 2)" in refused(filled, "q,q\na,b\n")
    assert "column 2 of the header has no name" in refused(filled, "q,\na,b\n")
    assert "both 'expected' and 'answer' go to the expected output" in refused(filled, "expected,answer\na,b\n", mapping={"answer": "expected"})


def test_an_unknown_mapping_target_is_refused_before_reading(filled):
    with pytest.raises(Invalid, match="'answer' -> 'output'.*use vars.<name>, expected, metadata.<key>"):
        load(filled, "answer\nx\n", mapping={"answer": "output"})


def test_bad_jsonl_lines_each_name_their_line(filled):
    text = "\n".join([
        '{"vars": {"q": "fine"}}',
        '{"vars": {"q": "oops"}',
        '["a", "list"]',
        '',
        '{"vars": ["q"], "expected": 3, "id": 1}',
        '{"q": "x", "expected": {"not": "text"}}',
        '{"q": NaN}',
        '{"answer": "x"}',
    ])  # fmt: skip

    message = refused(filled, text, "jsonl", mapping={"question": "vars.q"})

    assert "line 2: invalid JSON: Expecting ',' delimiter (column 23)." in message
    assert "line 3: expected a JSON object, got a list." in message
    assert "line 5: a line with 'vars' has only the keys vars, expected, metadata, assert (or assertions), threshold and description, not 'id'." in message
    assert "line 5, column 'vars': vars must be an object, not a list." in message
    assert "line 5, column 'expected': expected must be a string, not a number." in message
    assert "line 6, column 'expected': the expected output must be a string, not an object." in message
    assert "line 7: invalid JSON: NaN is not a JSON value." in message
    assert "line 8, column 'question': missing: the mapping names this key." in message
    assert "line 1:" not in message and "line 4" not in message


def test_empty_files(filled):
    assert refused(filled, b"") == "Nothing was imported: the file is empty."
    assert refused(filled, "\ufeff\n\n") == "Nothing was imported: the file is empty."
    assert refused(filled, "q,expected\n") == "Nothing was imported: the file has a header but no rows."
    assert refused(filled, "\n  \n", "jsonl") == "Nothing was imported: the file is empty."


def test_too_large_files_and_too_many_rows(filled, monkeypatch):
    monkeypatch.setattr(datasets, "DATASET_IMPORT_MAX_BYTES", 20)
    assert refused(filled, "q\n" + "x\n" * 20) == "Nothing was imported: the file is larger than the limit of 0 MB."

    class Unseekable(io.BytesIO):
        def seekable(self):
            return False

    with pytest.raises(Invalid, match="larger than the limit"):
        dataset_import(dataset=filled, actor=None, file=Unseekable(b"q\n" + b"x\n" * 20), format="csv")

    monkeypatch.setattr(datasets, "DATASET_IMPORT_MAX_BYTES", 10**6)
    monkeypatch.setattr(datasets, "DATASET_IMPORT_MAX_ROWS", 3)
    assert refused(filled, "q\n1\n2\n3\n4\n") == "Nothing was imported: line 5: the file has more than 3 rows, the limit."
    assert load(filled, "q\n1\n2\n3\n") == 3


def test_reporting_stops_after_twenty_problems(filled):
    message = refused(filled, "q,expected\n" + "a,b,c\n" * 100)

    assert message.startswith("Nothing was imported: stopped after 20 problems:\n- row 1 (line 2): 3 fields")
    assert message.count("\n- ") == 20 and "row 20 (line 21)" in message and "row 21" not in message


def test_a_bad_row_after_many_batches_rolls_back_every_batch(filled):
    text = "q,expected\n" + "a,b\n" * 2500 + "bad\n"

    refused(filled, text)

    assert filled.items.count() == 1


# --- Export ---------------------------------------------------------------------------------


def test_csv_export_round_trip(dataset, project):
    load(dataset, 'question,tone,expected,meta.source\n"Multi\nline, with comma",é,"He said ""hi""",email\nQ2,,,\n')
    out = io.StringIO()

    assert dataset_export(dataset=dataset, format="csv", out=out) == 2

    # PostgreSQL's jsonb keeps an object's keys shortest first, so the variables' order is the database's.
    assert out.getvalue().splitlines()[0] in ("question,tone,expected,meta.source", "tone,question,expected,meta.source")
    copy = dataset_create(project=project, actor=None, name="copy")
    load(copy, out.getvalue())
    assert items(copy) == items(dataset)


def test_csv_export_takes_the_union_of_columns_and_keeps_clashing_names_apart(dataset, project):
    load(dataset, "\n".join([
        json.dumps({"vars": {"a": "1", "expected": "var, not output"}, "expected": "out", "metadata": {"k": "v"}}),
        json.dumps({"vars": {"b": "2", "a": "3", "meta.x": "y"}, "metadata": {"j": "w"}}),
    ]), "jsonl")  # fmt: skip
    out = io.StringIO()

    dataset_export(dataset=dataset, format="csv", out=out)

    assert out.getvalue().splitlines()[0] == "a,vars.expected,b,vars.meta.x,expected,meta.k,meta.j"
    copy = dataset_create(project=project, actor=None, name="copy")
    load(copy, out.getvalue())
    assert items(copy)[0] == (1, {"a": "1", "expected": "var, not output", "b": "", "meta.x": ""}, "out", {"k": "v", "j": ""})


def test_jsonl_export_round_trip_keeps_types(dataset, project):
    lines = [
        json.dumps({"vars": {"q": "Hi ☃", "n": 3, "nested": {"x": [1, None]}}, "expected": "", "metadata": {"ok": True}}),
        json.dumps({"vars": {}, "expected": "only output", "metadata": {}}),
    ]
    load(dataset, "\n".join(lines), "jsonl")
    out = io.StringIO()

    assert dataset_export(dataset=dataset, format="jsonl", out=out) == 2

    assert "☃" in out.getvalue()  # not escaped
    copy = dataset_create(project=project, actor=None, name="copy")
    load(copy, out.getvalue(), "jsonl")
    assert items(copy) == items(dataset)


# --- Missing variables ----------------------------------------------------------------------


def test_missing_variables_by_row(dataset):
    load(dataset, "\n".join(json.dumps({"vars": vars}) for vars in [
        {"question": "a", "tone": "b", "odd key": "c"},
        {"question": "a"},
        {"tone": "b", "odd key": None},
        {"question": "", "tone": "", "odd key": ""},
    ]), "jsonl")  # fmt: skip

    assert missing_variables(dataset=dataset, needed={"question", "tone", "odd key"}) == [
        (2, ["odd key", "tone"]),
        (3, ["question"]),
    ]
    assert missing_variables(dataset=dataset, needed=set()) == []


# --- Commands -------------------------------------------------------------------------------


def test_import_command_creates_the_dataset_maps_columns_and_replaces(project, tmp_path, capsys):
    path = tmp_path / "faq.csv"
    path.write_text("question,answer,notes\nWhy?,Because,x\nHow?,Like so,y\n")

    call_command("import_dataset", str(path), "--project", "support", "--dataset", "faq",
                 "--map", "question=vars.q", "--map", "answer=expected", "--map", "notes=")  # fmt: skip

    dataset = Dataset.objects.get(project=project, name="faq")
    assert items(dataset)[0] == (1, {"q": "Why?"}, "Because", {})
    assert "Imported 2 items into support/faq (a new dataset); it has 2 items." in capsys.readouterr().out

    path.write_text("q\nagain\n")
    call_command("import_dataset", str(path), "--project", "support", "--dataset", "faq", "--replace")
    assert items(dataset) == [(1, {"q": "again"}, "", {})]


def test_import_command_refusals(project, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("q\nfine\ntoo,many\n")

    with pytest.raises(CommandError, match=r"Nothing was imported: row 2 \(line 3\): 2 fields"):
        call_command("import_dataset", str(bad), "--project", "support", "--dataset", "new")
    assert not Dataset.objects.filter(name="new").exists()  # the dataset made for it is gone too

    with pytest.raises(CommandError, match="Cannot tell the format of .*data.txt"):
        call_command("import_dataset", str(tmp_path / "data.txt"), "--project", "support", "--dataset", "new")
    with pytest.raises(CommandError, match="Cannot read .*nope.csv: No such file"):
        call_command("import_dataset", str(tmp_path / "nope.csv"), "--project", "support", "--dataset", "new")
    with pytest.raises(CommandError, match="No project with the slug 'other'"):
        call_command("import_dataset", str(bad), "--project", "other", "--dataset", "new")


def test_export_command_to_a_file_and_to_standard_output(dataset, tmp_path, capsys):
    load(dataset, "q,expected\nWhy?,Because\n")
    path = tmp_path / "out.jsonl"

    call_command("export_dataset", str(path), "--project", "support", "--dataset", "faq")

    assert json.loads(path.read_text()) == {"vars": {"q": "Why?"}, "expected": "Because", "metadata": {}}
    assert f"Exported 1 item of support/faq to {path}." in capsys.readouterr().out

    call_command("export_dataset", "-", "--project", "support", "--dataset", "faq")
    captured = capsys.readouterr()
    assert captured.out.splitlines() == ["q,expected", "Why?,Because"]
    assert "Exported 1 item" in captured.err

    with pytest.raises(CommandError, match="The project support has no dataset named 'nope'"):
        call_command("export_dataset", "-", "--project", "support", "--dataset", "nope")


# --- Streaming --------------------------------------------------------------------------------
# How much memory an import takes as the file grows is measured by bench/bench_dataset_import.py.


class WatchedFile(io.BytesIO):
    """A file that notes how many items its dataset already had when it was read to the end."""

    def __init__(self, data: bytes, dataset):
        super().__init__(data)
        self.dataset = dataset
        self.saved_at_the_end = None

    def readline(self, size=-1):
        line = super().readline(size)
        if not line and self.saved_at_the_end is None:
            self.saved_at_the_end = self.dataset.items.count()
        return line


def test_an_import_saves_items_in_batches_as_it_reads(dataset):
    count = 3 * datasets.BATCH_SIZE + 500
    rows = "".join(f"What is item {n}?,Context for item {n},Answer {n},gen-{n % 7}\n" for n in range(count))
    file = WatchedFile(f"question,context,expected,meta.source\n{rows}".encode(), dataset)

    added = dataset_import(dataset=dataset, actor=None, file=file, format="csv")

    assert file.saved_at_the_end == 3 * datasets.BATCH_SIZE  # every full batch was saved before the last line was read
    assert added == count and dataset.items.count() == count
    assert list(dataset.items.order_by("row").values_list("row", flat=True)) == list(range(1, count + 1))
    last = dataset.items.get(row=count)
    assert (last.vars, last.expected, last.metadata) == (
        {"question": f"What is item {count - 1}?", "context": f"Context for item {count - 1}"}, f"Answer {count - 1}",
        {"source": f"gen-{(count - 1) % 7}"},
    )  # fmt: skip
