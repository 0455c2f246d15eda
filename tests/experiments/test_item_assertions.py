"""Items' own assertions and threshold: imported from JSONL (promptlab's and promptfoo's shapes)
and from promptfoo's CSV columns, refused by row and assertion with nothing imported, exported
and read back the same, edited on the dataset page and through the service (which re-scores the
item's runs), and served by the API."""

import csv
import io
import json

import pytest

from evaluations import grading, tasks
from evaluations.models import Score
from experiments import datasets
from experiments.datasets import dataset_create, dataset_export, dataset_import, dataset_item_update
from promptlab.accounts import api_keys
from promptlab.accounts.models import Role
from promptlab.errors import Forbidden, Invalid
from tests.api.conftest import client_with, error_of
from tests.factories import MembershipFactory, RunFactory
from tests.prompts.test_pages import soup

pytestmark = pytest.mark.django_db


def check(kind, config=None, *, weight=1.0, metric="", threshold=None, inverted=False) -> dict:
    """An assertion as it is stored: normalized, every key present."""
    return {"kind": kind, "config": config or {}, "weight": weight, "metric": metric, "threshold": threshold, "inverted": inverted}


@pytest.fixture
def editor():
    return MembershipFactory(role=Role.EDITOR)


@pytest.fixture
def dataset(editor):
    return dataset_create(project=editor.project, actor=editor.user, name="capitals")


def load(dataset, text: str, format="csv", **options) -> int:
    return dataset_import(dataset=dataset, actor=None, file=io.BytesIO(text.encode()), format=format, **options)


def checks(dataset) -> list:
    return list(dataset.items.order_by("row").values_list("row", "assertions", "threshold"))


def refused(dataset, text: str, format="csv") -> str:
    before = list(dataset.items.values_list("pk", flat=True))
    with pytest.raises(Invalid) as caught:
        load(dataset, text, format)
    assert list(dataset.items.values_list("pk", flat=True)) == before  # nothing imported
    assert caught.value.message.startswith("Nothing was imported: ")
    return caught.value.message


def jsonl(*lines) -> str:
    return "".join(json.dumps(line) + "\n" for line in lines)


# --- JSONL ---------------------------------------------------------------------------------------


def test_a_jsonl_assert_list_in_promptfoos_shape_and_in_promptlabs_becomes_the_items_checks(dataset):
    text = jsonl(
        {"vars": {"city": "Paris"}, "threshold": 0.5, "description": "France",
         "assert": [{"type": "icontains", "value": "Paris"}, {"type": "not-is-json"},
                    {"type": "contains-any", "value": ["Seine", "Louvre"], "weight": 2, "metric": "facts"}]},
        {"vars": {"city": "Lima"}, "assert": [{"kind": "regex", "config": {"value": "^l", "flags": "i"}, "weight": 0.5},
                                             {"type": "levenshtein", "value": "Lima", "threshold": 2}]},
        {"vars": {"city": "Oslo"}, "assertions": [{"kind": "is_json", "inverted": True, "metric": "format"}]},
        {"vars": {"city": "Rome"}},
    )  # fmt: skip

    assert load(dataset, text, "jsonl") == 4

    assert checks(dataset) == [
        (1, [check("icontains", {"value": "Paris"}), check("is_json", inverted=True),
             check("contains_any", {"value": ["Seine", "Louvre"]}, weight=2.0, metric="facts")], 0.5),
        (2, [check("regex", {"value": "^l", "flags": "i"}, weight=0.5), check("levenshtein", {"value": "Lima", "max_distance": 2, "binary": True})], None),
        (3, [check("is_json", inverted=True, metric="format")], None),
        (4, [], None),
    ]  # fmt: skip
    assert dataset.items.get(row=1).metadata == {"description": "France"}  # promptfoo's test description


def test_bad_jsonl_checks_are_refused_by_line_and_assertion_and_nothing_is_imported(dataset):
    message = refused(dataset, jsonl(
        {"vars": {"q": "fine"}, "assert": [{"type": "contains", "value": "ok"}]},
        {"vars": {"q": "a"}, "assert": [{"type": "contains", "value": "x"}, {"type": "javascript", "value": "output.length < 9"}]},
        {"vars": {"q": "b"}, "assert": [{"kind": "is_json"}, {"kind": "regex", "config": {"value": "("}}]},
        {"vars": {"q": "c"}, "assert": [{"type": "llm-rubric", "value": "Is polite"}]},
        {"vars": {"q": "d"}, "assert": [{"kind": "shouting"}], "threshold": 1.5},
        {"vars": {"q": "e"}, "assert": {"type": "contains"}},
        {"vars": {"q": "f"}, "assert": ["contains: x"]},
    ), "jsonl")  # fmt: skip

    assert "line 2: assert[1]: 'javascript: output.length < 9' cannot be imported: promptfoo's javascript assertion has no promptlab evaluator." in message  # noqa: E501
    assert "line 3: assert[1]: Invalid regular expression '(': missing ), unterminated subpattern" in message
    assert "line 4: assert[0]: 'llm-rubric: Is polite' needs a rubric prompt and a judge model, which a dataset import does not create: import the file as a promptfoo suite" in message  # noqa: E501
    assert "line 5, column 'threshold': the threshold must be a number from 0 to 1, not 1.5." in message
    assert "line 5: assert[0]: Unknown evaluator kind 'shouting'" in message
    assert "line 6: assert is a list of assertions, not an object." in message
    assert "line 7: assert[0]: an assertion is {\"kind\": \"contains\", \"config\": {\"value\": \"Paris\"}} or promptfoo's" in message
    assert "line 1" not in message


# --- CSV -----------------------------------------------------------------------------------------

CSV = (
    "question,__expected1,__expected2,__expected3,__threshold,__metric,__description,__metadata:tags[],__config:__expected3:threshold\n"
    'Capital of France?,contains: Paris,"icontains-any: paris,france",levenshtein: Paris,0.5,accuracy,France,"geo, easy",2\n'
    "Capital of Peru?,Lima,,not-is-json,,,,,\n"
)


def test_promptfoos_csv_columns_become_the_items_checks_and_metadata(dataset):
    assert load(dataset, CSV) == 2

    assert checks(dataset) == [
        (1, [check("contains", {"value": "Paris"}, metric="accuracy"),
             check("icontains_any", {"value": ["paris", "france"]}, metric="accuracy"),
             check("levenshtein", {"value": "Paris", "max_distance": 2, "binary": True}, metric="accuracy")], 0.5),
        (2, [check("equals", {"value": "Lima"}), check("is_json", inverted=True)], None),  # a plain value means equals
    ]  # fmt: skip
    first = dataset.items.get(row=1)
    assert first.vars == {"question": "Capital of France?"}  # the __ columns are not variables
    assert first.metadata == {"description": "France", "tags": ["geo", "easy"]}
    assert first.expected == ""


def test_a_mapping_sends_any_column_to_the_checks(dataset):
    load(dataset, "q,check,pass at\nHi,contains: hello,0.75\n", mapping={"check": "assert", "pass at": "threshold"})

    assert checks(dataset) == [(1, [check("contains", {"value": "hello"})], 0.75)]


def test_bad_csv_checks_are_refused_by_row_and_column_and_nothing_is_imported(dataset):
    load(dataset, "question\nkept\n")
    message = refused(dataset, (
        "question,__expected,__expected2,__threshold\n"
        "a,contains: a,javascript: output.length < 10,\n"
        "b,llm-rubric: Is polite,,\n"
        "c,similar(0.8): Paris,,\n"
        'd,"regex: (",,high\n'
        'e,"{""kind"": ""contains"", ""config"": {""value"": """"}}",contains:,\n'
    ))  # fmt: skip

    assert "row 1 (line 2), column '__expected2': 'javascript: output.length < 10' cannot be imported: promptfoo's javascript assertion has no promptlab evaluator." in message  # noqa: E501
    assert "row 2 (line 3), column '__expected': 'llm-rubric: Is polite' needs a rubric prompt and a judge model" in message
    assert "import_promptfoo" in message
    assert "row 3 (line 4), column '__expected': 'similar(0.8): Paris' needs an embedding model" in message
    assert "row 4 (line 5), column '__expected': Invalid regular expression '('" in message
    assert "row 4 (line 5), column '__threshold': the threshold must be a number from 0 to 1, not 'high'." in message
    assert "row 5 (line 6), column '__expected': contains: \"value\" must be a non-empty string" in message  # promptlab's shape, checked the same way
    assert "row 5 (line 6), column '__expected2': 'contains:' cannot be imported: contains needs a value." in message
    assert "assert[0]" not in message  # a cell is named by its column
    assert dataset.items.count() == 1


def test_columns_that_change_the_call_are_refused_in_the_header(dataset):
    message = refused(dataset, "question,__prefix,__expected\nHi,Answer briefly:,contains: hi\n")

    assert message.startswith("Nothing was imported: line 1, column '__prefix': promptfoo changes the call with this column")
    load(dataset, "question,__prefix\nHi,Answer briefly:\n", mapping={"__prefix": "vars.prefix"})  # unless mapped elsewhere
    assert dataset.items.get().vars == {"question": "Hi", "prefix": "Answer briefly:"}


# --- Export and read back ------------------------------------------------------------------------


@pytest.fixture
def mixed(dataset):
    """Items with checks promptfoo's cell syntax can say, checks it cannot, and none."""
    load(dataset, jsonl(
        {"vars": {"q": "France?"}, "threshold": 0.5,
         "assert": [{"type": "contains", "value": "Paris"}, {"type": "not-is-json"}, {"type": "latency", "threshold": 1500},
                    {"type": "icontains-all", "value": ["a", "b"]}]},
        {"vars": {"q": "Peru?"}, "assert": [{"kind": "regex", "config": {"value": "^L", "flags": "i"}},
                                            {"type": "contains", "value": "Lima", "weight": 2},
                                            {"type": "levenshtein", "value": "Lima", "threshold": 2}]},
        {"vars": {"q": "Chile?"}, "assert": [{"type": "equals", "value": "Santiago", "metric": "exact"},
                                             {"type": "is-json", "metric": "exact"}]},
        {"vars": {"q": "Nothing?"}, "threshold": 0},
    ), "jsonl")  # fmt: skip
    return dataset


def test_csv_export_writes_promptfoo_cells_where_it_can_and_reads_back_the_same(mixed, editor):
    out = io.StringIO()

    assert dataset_export(dataset=mixed, format="csv", out=out) == 4

    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert list(rows[0]) == ["q", "expected", "__expected1", "__expected2", "__expected3", "__expected4", "__metric", "__threshold"]
    assert [rows[0][f"__expected{n}"] for n in range(1, 5)] == ["contains: Paris", "not-is-json", "latency(1500)", "icontains-all: a,b"]
    assert rows[0]["__threshold"] == "0.5" and rows[3]["__threshold"] == "0.0" and rows[2]["__threshold"] == ""
    assert json.loads(rows[1]["__expected1"]) == check("regex", {"value": "^L", "flags": "i"})  # flags: no cell syntax
    assert json.loads(rows[1]["__expected2"])["weight"] == 2.0  # a weight: neither
    assert rows[1]["__expected3"] == "levenshtein(2): Lima" and rows[1]["__expected4"] == ""
    assert (rows[2]["__expected1"], rows[2]["__expected2"], rows[2]["__metric"]) == ("equals: Santiago", "is-json", "exact")
    copy = dataset_create(project=editor.project, actor=None, name="copy")
    load(copy, out.getvalue())
    assert checks(copy) == checks(mixed)


def test_jsonl_export_reads_back_the_same(mixed, editor):
    out = io.StringIO()

    dataset_export(dataset=mixed, format="jsonl", out=out)

    first = json.loads(out.getvalue().splitlines()[0])
    assert first["assert"][0] == check("contains", {"value": "Paris"}) and first["threshold"] == 0.5
    assert "assert" not in json.loads(out.getvalue().splitlines()[3])  # only items that have checks
    copy = dataset_create(project=editor.project, actor=None, name="copy")
    load(copy, out.getvalue(), "jsonl")
    assert checks(copy) == checks(mixed)


# --- The service ---------------------------------------------------------------------------------


@pytest.fixture
def item(dataset):
    load(dataset, "question,__expected\nCapital of France?,contains: Paris\n")
    return dataset.items.get()


def test_the_service_sets_normalized_checks_and_records_the_change(item, editor):
    dataset_item_update(item=item, actor=editor.user, assertions=[{"kind": "is_json", "inverted": True}], threshold="0.25")

    item.refresh_from_db()
    assert (item.assertions, item.threshold) == ([check("is_json", inverted=True)], 0.25)
    change = item.dataset.history.first()
    assert (change.history_user, change.history_change_reason) == (editor.user, "Changed the assertions and threshold of row 1")
    dataset_item_update(item=item, actor=editor.user, assertions=[], threshold=None)
    item.refresh_from_db()
    assert (item.assertions, item.threshold) == ([], None)


def test_the_service_refuses_a_viewer_bad_json_bad_checks_and_a_bad_threshold(item, editor):
    viewer = MembershipFactory(project=editor.project, role=Role.VIEWER).user
    before = (item.assertions, item.threshold)

    with pytest.raises(Forbidden):
        dataset_item_update(item=item, actor=viewer, assertions=[], threshold=None)
    with pytest.raises(Invalid, match=r"The assertions are not valid JSON: Expecting ',' delimiter"):
        datasets.assertions_from_json('[{"kind": "is_json"} {"kind": "contains"}]')
    with pytest.raises(Invalid, match=r"The assertions are a JSON list"):
        datasets.assertions_from_json('{"kind": "is_json"}')
    with pytest.raises(Invalid, match=r"^Row 1: assert\[1\]: Invalid regular expression '\['"):
        dataset_item_update(item=item, actor=editor.user, assertions=[{"kind": "is_json"}, {"kind": "regex", "config": {"value": "["}}], threshold=None)  # noqa: E501
    with pytest.raises(Invalid, match=r"^Row 1: the threshold must be a number from 0 to 1, not '2'\."):
        dataset_item_update(item=item, actor=editor.user, assertions=[], threshold="2")
    with pytest.raises(Invalid, match=r"NUL character"):
        dataset_item_update(item=item, actor=editor.user, assertions=[{"kind": "contains", "config": {"value": "a\x00"}}], threshold=None)

    item.refresh_from_db()
    assert (item.assertions, item.threshold) == before


def test_changing_an_items_checks_scores_its_done_runs_with_them(editor, monkeypatch, django_capture_on_commit_callbacks):
    run = RunFactory(experiment__project=editor.project, output="It is Paris.")
    RunFactory(experiment=run.experiment, variant=run.variant, item=run.item, repeat=2, status="failed", output="")  # nothing to score
    monkeypatch.setattr(tasks.score_runs, "apply_async", lambda args, **options: tasks.score_runs(*args))  # the worker, in this process

    with django_capture_on_commit_callbacks(execute=True):
        dataset_item_update(item=run.item, actor=editor.user, assertions=[{"kind": "contains", "config": {"value": "Paris"}}], threshold=None)  # noqa: E501

    score = Score.objects.get(run=run)
    assert (score.evaluator.inline, score.passed) == (True, True)
    assert grading.experiment_grades(run.experiment, run_ids=[run.pk])[0].grade.passed is True
    with django_capture_on_commit_callbacks(execute=True):
        dataset_item_update(item=run.item, actor=editor.user, assertions=[{"kind": "contains", "config": {"value": "Lima"}}], threshold=None)  # noqa: E501
    assert grading.experiment_grades(run.experiment, run_ids=[run.pk])[0].grade.passed is False


# --- The dataset page ----------------------------------------------------------------------------


def checks_url(dataset, row=1) -> str:
    return f"/projects/{dataset.project.slug}/datasets/{dataset.name}/items/{row}/checks/"


def test_the_page_shows_each_items_checks_compactly(mixed, editor, client):
    client.force_login(editor.user)

    page = soup(client.get(f"/projects/{mixed.project.slug}/datasets/capitals/").content.decode())

    summaries = [element.get_text() for element in page.select("#dataset-items .checks-summary")]
    assert summaries[0] == "contains: Paris · not is_json · latency · icontains_all: [\"a\", \"b\"] · threshold 0.5"
    assert summaries[1] == "regex: ^L · contains: Lima (weight 2) · levenshtein: Lima"
    assert summaries[3] == "threshold 0"
    form = page.select_one("#dataset-item-1 form")
    assert (form["hx-post"], form["hx-target"], form["hx-swap"]) == (checks_url(mixed), "#dataset-item-1", "outerHTML")
    assert json.loads(form.select_one("textarea[name=assertions]").get_text())[0] == check("contains", {"value": "Paris"})
    assert form.select_one("input[name=threshold]")["value"] == "0.5"


def test_an_editor_saves_an_items_checks_with_htmx_and_gets_the_row_back(item, editor, client):
    client.force_login(editor.user)

    response = client.post(checks_url(item.dataset), {"assertions": '[{"kind": "icontains", "config": {"value": "paris"}}]',
                                                      "threshold": "0.5"}, HTTP_HX_REQUEST="true")  # fmt: skip

    html = response.content.decode()
    assert response.status_code == 200 and html.startswith('<tr id="dataset-item-1">')
    assert soup(html).select_one(".checks-summary").get_text() == "icontains: paris · threshold 0.5"
    assert soup(html).select_one(".checks-saved").get_text() == "Saved."
    item.refresh_from_db()
    assert (item.assertions, item.threshold) == ([check("icontains", {"value": "paris"})], 0.5)


@pytest.mark.parametrize("assertions, threshold, problem", [
    ('[{"kind": "contains"', "", "The assertions are not valid JSON: Expecting ',' delimiter: line 1 column 21"),
    ('[{"kind": "regex", "config": {"value": "("}}]', "", "Row 1: assert[0]: Invalid regular expression '('"),
    ("", "1.5", "Row 1: the threshold must be a number from 0 to 1, not '1.5'."),
])  # fmt: skip
def test_refused_checks_are_shown_in_the_open_editor_and_nothing_changes(item, editor, client, assertions, threshold, problem):
    client.force_login(editor.user)

    html = client.post(checks_url(item.dataset), {"assertions": assertions, "threshold": threshold}, HTTP_HX_REQUEST="true").content.decode()

    row = soup(html).select_one("tr#dataset-item-1")
    assert row.select_one(".checks-error").get_text().startswith(problem)
    assert row.select_one("details.checks-editor").has_attr("open")
    assert row.select_one("textarea[name=assertions]").get_text() == assertions  # what was typed stays
    assert row.select_one("input[name=threshold]")["value"] == threshold
    assert row.select_one(".checks-summary").get_text() == "contains: Paris"  # the item's checks, unchanged
    item.refresh_from_db()
    assert item.assertions == [check("contains", {"value": "Paris"})]


def test_without_htmx_a_save_goes_back_to_the_items_page_and_a_refusal_shows_it_there(item, editor, client):
    client.force_login(editor.user)

    response = client.post(checks_url(item.dataset), {"assertions": "", "threshold": "0.5"})
    assert response.status_code == 302 and response["Location"] == f"/projects/{item.dataset.project.slug}/datasets/capitals/#dataset-item-1"
    item.refresh_from_db()
    assert (item.assertions, item.threshold) == ([], 0.5)

    page = soup(client.post(checks_url(item.dataset), {"assertions": "[1]", "threshold": ""}).content.decode())
    assert page.select_one("h1").get_text() == "capitals"
    assert "Row 1: assert[0]: an assertion is an object with a kind" in page.select_one("#dataset-item-1 .checks-error").get_text()


def test_viewers_see_the_checks_but_cannot_change_them(item, editor, client):
    viewer = MembershipFactory(project=editor.project, role=Role.VIEWER).user
    client.force_login(viewer)

    page = soup(client.get(f"/projects/{editor.project.slug}/datasets/capitals/").content.decode())
    assert page.select_one("#dataset-item-1 .checks-summary").get_text() == "contains: Paris"
    assert not page.select("#dataset-items form")
    assert client.post(checks_url(item.dataset), {"assertions": "", "threshold": ""}).status_code == 403
    assert client.get(checks_url(item.dataset)).status_code == 405
    client.force_login(editor.user)
    assert client.post(checks_url(item.dataset, row=9), {"assertions": ""}).status_code == 404
    item.refresh_from_db()
    assert item.assertions == [check("contains", {"value": "Paris"})]


# --- The API -------------------------------------------------------------------------------------


def test_the_api_lists_items_with_their_checks_and_adds_items_with_them(dataset, editor):
    owner = MembershipFactory(project=editor.project, role=Role.OWNER).user
    _, secret = api_keys.api_key_create(project=editor.project, actor=owner, name="ci", scopes=["read", "write"])
    api, items_url = client_with(secret), "/api/v1/datasets/capitals/items/"

    added = api.post(items_url, {"items": [
        {"vars": {"q": "France?"}, "assertions": [{"kind": "contains", "config": {"value": "Paris"}}], "threshold": 0.5},
        {"vars": {"q": "Peru?"}, "assert": [{"type": "not-icontains", "value": "Quito"}]},
    ]}, format="json")  # fmt: skip
    assert added.status_code == 201, added.content

    items = api.get(items_url).json()["results"]
    assert [(item["assertions"], item["threshold"]) for item in items] == [
        ([check("contains", {"value": "Paris"})], 0.5), ([check("icontains", {"value": "Quito"}, inverted=True)], None)
    ]  # fmt: skip
    refused = api.post(items_url, {"items": [{"vars": {"q": "x"}, "assertions": [{"kind": "contains", "config": {"value": ""}}]}]}, format="json")
    assert refused.status_code == 400 and "line 1: assert[0]: contains" in error_of(refused)["message"]
    assert dataset.items.count() == 2
