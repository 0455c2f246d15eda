"""Importing promptfoo suites: what is created (prompts, endpoints, dataset items, evaluators, a
draft experiment), what is skipped and reported, and bad input refused with the file and key
named and nothing created."""

import io
import textwrap

import pytest
from django.core.management import CommandError, call_command

from evaluations.models import Evaluator
from evaluations.promptfoo.assertions import Assertion, assertion_from_cell
from evaluations.promptfoo.files import ConfigOnly, FolderFiles
from evaluations.promptfoo.importer import promptfoo_suite_import
from experiments.models import Dataset, DatasetItem, Experiment, ExperimentStatus
from experiments.services import experiment_missing_variables
from promptlab.accounts.models import Role
from promptlab.errors import Forbidden, Invalid
from promptlab.llm.models import ModelEndpoint
from prompts.models import Prompt
from prompts.rendering import render_version
from prompts.selectors import prompt_version
from tests.factories import MembershipFactory, ModelEndpointFactory, ProjectFactory, UserFactory
from tests.promptfoo.configs import KEY_ENV, copy_suite

pytestmark = pytest.mark.django_db


@pytest.fixture
def suite(tmp_path, llm_server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-test-123")
    return lambda name: copy_suite(name, tmp_path, llm_server.base_url)


@pytest.fixture
def project():
    return ProjectFactory(slug="support")


def write_config(folder, text: str, **files):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "promptfooconfig.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    for name, content in files.items():
        (folder / name.replace("__", ".")).write_text(textwrap.dedent(content), encoding="utf-8")
    return folder


def counts() -> tuple:
    return tuple(model.objects.count() for model in (Prompt, ModelEndpoint, Dataset, DatasetItem, Evaluator, Experiment))


def records(dataset_name: str) -> list[dict]:
    return [item.metadata["promptfoo"] for item in DatasetItem.objects.filter(dataset__name=dataset_name).order_by("row")]


# --- A whole suite ---------------------------------------------------------------------------------


def test_a_suite_becomes_prompts_a_dataset_evaluators_and_a_draft_experiment(suite, project, llm_server):
    report = promptfoo_suite_import(project=project, actor=None, files=FolderFiles(suite("support_bot")))

    # Prompts: the text file's two prompts (split at ---) and the chat JSON, one version each,
    # whose change message names the source file.
    prompts = {prompt.name: prompt for prompt in Prompt.objects.filter(project=project)}
    assert set(prompts) == {"support-bot-prompts-answer-txt-1", "support-bot-prompts-answer-txt-2", "support-bot-chat"}
    first = prompt_version(prompt=prompts["support-bot-prompts-answer-txt-1"], version=1)
    assert first.template == "Answer the customer of {{ company }}: {{question}}"
    assert first.history_change_reason == "Imported from promptfooconfig.yaml (prompts/answer.txt (prompt 1 of 2))"
    chat = prompt_version(prompt=prompts["support-bot-chat"], version=1)
    assert chat.kind == "chat" and chat.messages[0] == {"role": "system", "content": "You are the {{company}} assistant."}
    assert all(prompt.version == 1 for prompt in prompts.values())
    # Nunjucks-style {{ var }} renders the same, and defaultTest's vars reach every item.
    rendered = render_version(chat, DatasetItem.objects.get(dataset__name="support-bot", row=1).vars)
    assert rendered.messages == [{"role": "system", "content": "You are the Acme assistant."}, {"role": "user", "content": "Where is my order?"}]

    # Both providers are the same model at the same base URL and key: one endpoint.
    (endpoint,) = ModelEndpoint.objects.all()
    assert (endpoint.model, endpoint.api_base, endpoint.api_key_env) == ("openai/gpt-4o-mini", llm_server.base_url, KEY_ENV)
    assert [(name, created) for name, _, created, _ in report.endpoints] == [(endpoint.name, True)]

    # The dataset: one item per test and per value of an array var; the prefixed test and the
    # code-only test are skipped and said so.
    items = list(DatasetItem.objects.filter(dataset__name="support-bot").order_by("row"))
    assert [item.vars["question"] for item in items] == [
        "Where is my order?", "Can I get a refund?", "Do you ship to Canada?", "ping", "Is it raining?",
        "What are your hours?", "Are you open on Sunday?",
    ]  # fmt: skip
    assert {item.vars["company"] for item in items} == {"Acme"}
    assert [(row, where) for row, where, _, _ in report.items][:2] == [(1, "promptfooconfig.yaml: tests[0]"), (2, "promptfooconfig.yaml: tests[1]")]
    assert sorted(report.skipped_items) == [
        ("promptfooconfig.yaml: tests[5]", "not imported: options.prefix (it adds a prefix to the prompt)"),
        ("tests/more.jsonl line 2", "not imported: none of its assertions can be checked here, so it would always pass"),
    ]
    assert [(where, reason) for where, _, reason in report.skipped_asserts] == [
        ("promptfooconfig.yaml: tests[3].assert[2]", "promptfoo's javascript assertion has no promptlab evaluator"),
        ("tests/more.jsonl line 2.assert[0]", "promptfoo's python assertion has no promptlab evaluator"),
    ]

    # Each test's own assertions are its item's, with its threshold: it is graded by those only.
    order, refunds, shipping, ping = items[:4]
    assert order.assertions == [
        {"kind": "contains", "config": {"value": "order"}, "weight": 1.0, "metric": "", "threshold": None, "inverted": False},
        {"kind": "starts_with", "config": {"value": "fake answer to: Answer"}, "weight": 1.0, "metric": "format", "threshold": None, "inverted": False},
    ]  # fmt: skip
    assert (refunds.threshold, order.threshold) == (0.5, None)
    assert [(a["kind"], a["config"], a["inverted"], a["weight"]) for a in refunds.assertions] == [
        ("regex", {"value": "refund\\?$"}, False, 1.0), ("contains", {"value": "Acme"}, True, 3.0),
    ]
    assert (shipping.assertions[1]["weight"], shipping.assertions[1]["threshold"]) == (0.0, 0.0)  # weight 0 always passes, as in promptfoo
    # levenshtein scores 1 or 0 as promptfoo's does, so weighted scores and thresholds agree with it
    assert ping.assertions[1]["config"] == {"value": "fake answer to: pong", "max_distance": 2, "binary": True}
    assert [ping.expected, order.expected] == ["fake answer to: ping", ""]  # the answer an equals expects, shown beside the item
    assert [asserts for _, _, _, asserts in report.items][1] == ["regex: refund\\?$", "not-contains: Acme (weight 3)"]
    # defaultTest's assertions apply to every test: evaluators attached to the experiment.
    evaluators = {evaluator.name: evaluator for evaluator in Evaluator.objects.filter(project=project).order_by("pk")}
    assert [name for name, _, _ in report.evaluators] == list(evaluators) == ["support-bot-icontains-1", "support-bot-latency-1"]
    assert (evaluators["support-bot-latency-1"].kind, evaluators["support-bot-latency-1"].config) == ("latency", {"max_ms": 60000})
    # What the export shows: each assertion as promptfoo writes it.
    record = records("support-bot")[1]
    assert record["description"] == "refunds, graded on the weighted score"
    assert record["asserts"] == [{"type": "regex", "value": "refund\\?$"}, {"type": "not-contains", "value": "Acme", "weight": 3}]
    assert record["defaults"] == {
        "support-bot-icontains-1": {"type": "icontains", "value": "FAKE ANSWER"}, "support-bot-latency-1": {"type": "latency", "threshold": 60000},
    }  # fmt: skip
    assert records("support-bot")[3]["skipped"] == [{"type": "javascript", "value": "output.length > 3"}]

    # The experiment: every prompt on every provider, provider params on the variant, ready to start.
    experiment = Experiment.objects.get(pk=report.experiment_id)
    assert experiment.status == ExperimentStatus.DRAFT and experiment.dataset.name == "support-bot"
    variants = {variant.name: variant for variant in experiment.variants.all()}
    assert len(variants) == 6
    assert variants["chat @ openai:chat:gpt-4o-mini"].params == {"temperature": 0, "max_tokens": 200}
    assert variants["chat @ warm"].params == {"temperature": 0.7}
    assert {e.name for e in Evaluator.objects.filter(experiment_links__experiment=experiment)} == set(evaluators)
    assert experiment_missing_variables(experiment) == []


def test_default_asserts_a_test_leaves_out_are_each_items_own(suite, project):
    # json_modes' defaultTest asserts not-contains ERROR, but tests[3] sets
    # options.disableDefaultAsserts: an evaluator of the experiment would check that item too.
    report = promptfoo_suite_import(project=project, actor=None, files=FolderFiles(suite("json_modes")))

    assert report.evaluators == [] and not Evaluator.objects.filter(project=project).exists()
    assert any("options.disableDefaultAsserts" in note for note in report.notes)
    items = list(DatasetItem.objects.filter(dataset__name="json-modes").order_by("row"))
    assert [[(a["kind"], a["inverted"]) for a in item.assertions] for item in items[2:4]] == [
        [("contains", True), ("contains_json", False)], [("is_json", False)],
    ]
    assert items[3].metadata["promptfoo"]["asserts"] == [{"type": "is-json", "value": {"type": "object", "required": ["status"]}}]


def test_a_matching_endpoint_of_the_catalog_is_reused(suite, project, llm_server):
    existing = ModelEndpointFactory(name="mini", model="openai/gpt-4o-mini", api_base=llm_server.base_url, api_key_env=KEY_ENV)
    ModelEndpointFactory(name="other-base", model="openai/gpt-4o-mini", api_base="http://localhost:9/v1", api_key_env=KEY_ENV)

    report = promptfoo_suite_import(project=project, actor=None, files=FolderFiles(suite("capitals")))

    assert report.endpoints == [("mini", f"openai/gpt-4o-mini at {llm_server.base_url}", False, "openai:chat:gpt-4o-mini")]
    assert ModelEndpoint.objects.count() == 2
    assert Prompt.objects.get(project=project).endpoint == existing


def test_csv_tests_read_expected_columns_as_promptfoo_does(suite, project):
    report = promptfoo_suite_import(project=project, actor=None, files=FolderFiles(suite("capitals")), name="capitals")

    items = list(DatasetItem.objects.filter(dataset__name="capitals").order_by("row"))
    assert [item.vars for item in items] == [{"country": c} for c in ("France", "Japan", "Peru", "Chad", "Togo")]
    # Each row's cells are its item's assertions; the suite has no defaultTest, so no evaluator.
    assert [[(a["kind"], a["config"].get("value"), a["inverted"]) for a in item.assertions] for item in items] == [
        [("contains", "France", False), ("contains", "Berlin", True)],
        [("contains", "Japan", False), ("levenshtein", "fake answer to: What is the capital of Japan!", False)],
        [("contains", "Chile", False), ("icontains", "PERU", False)],
        [("contains", "Chad", False)],
        [("contains", "Togo", False), ("equals", "Lomé", False)],  # no prefix: equals
    ]
    assert not Evaluator.objects.filter(project=project).exists() and report.evaluators == []
    assert [item.expected for item in items] == ["", "", "", "", "Lomé"]
    assert [item.metadata["region"] for item in items] == ["europe", "asia", "americas", "africa", "africa"]
    france, japan, peru, chad, togo = items
    assert [a["metric"] for a in france.assertions] == ["geo", "geo"]  # __metric
    # levenshtein(3), then __config:__expected2:threshold 0.5 (promptfoo's `threshold || 5`: distance <= 0.5)
    assert japan.assertions[1]["config"]["max_distance"] == 0
    assert (peru.threshold, france.threshold) == (0.5, None)  # __threshold
    record = france.metadata["promptfoo"]
    assert record["description"] == "French capital"
    assert record["asserts"][1] == {"type": "not-contains", "value": "Berlin", "threshold": 0.5, "metric": "geo"}  # promptfoo ignores it there
    assert japan.metadata["promptfoo"]["asserts"][1]["threshold"] == 0.5
    assert chad.metadata["promptfoo"]["skipped"] == [{"type": "javascript", "value": "output.length > 0", "threshold": 0.5}]
    assert report.skipped_items == [("capitals.csv row 6", "not imported: its __prefix/__suffix (it adds text to the prompt)")]


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("Paris", Assertion(type="equals", value="Paris")),
        ("contains: Paris ", Assertion(type="contains", value="Paris")),
        ("not-icontains:paris", Assertion(type="not-icontains", value="paris")),
        ("contains-any: <b>,</span>", Assertion(type="contains-any", value=["<b>", "</span>"])),
        ("similar(0.9):Hello there", Assertion(type="similar", value="Hello there", threshold=0.9)),
        ("similar:Hello", Assertion(type="similar", value="Hello", threshold=0.8)),
        ("levenshtein:abc", Assertion(type="levenshtein", value="abc", threshold=0.75)),
        ("is-json", Assertion(type="is-json")),
        ("grade:Is polite", Assertion(type="llm-rubric", value="Is polite")),
        ("llm-rubric: Is polite", Assertion(type="llm-rubric", value=" Is polite")),
        ("fn:output.length < 9", Assertion(type="javascript", value="output.length < 9")),
        ("python:len(output) > 1", Assertion(type="python", value="len(output) > 1")),
        ("contain:Paris", Assertion(type="equals", value="contain:Paris")),  # an unknown type is an equals' value
    ],
)
def test_expected_cells_are_read_as_promptfoo_reads_them(cell, expected):
    assert assertion_from_cell(cell, where="t.csv row 1") == Assertion(**{**expected.__dict__, "where": "t.csv row 1"})


def test_a_var_some_tests_lack_renders_empty_as_in_promptfoo(tmp_path, project, llm_server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "k")
    folder = write_config(tmp_path / "s", f"""
        prompts: ['Hi {{{{name}}}}{{{{ suffix }}}}']
        providers: [{{id: 'openai:gpt-4o-mini', config: {{apiBaseUrl: '{llm_server.base_url}', apiKeyEnvar: {KEY_ENV}}}}}]
        tests:
          - vars: {{name: Ada, suffix: '!'}}
          - vars: {{name: Bob}}
    """)  # fmt: skip

    report = promptfoo_suite_import(project=project, actor=None, files=FolderFiles(folder), name="hi")

    record = prompt_version(prompt=Prompt.objects.get(name="hi-hi-name-suffix"), version=1)
    assert record.variables == [{"name": "suffix", "type": "string", "required": False, "default": ""}]
    assert render_version(record, {"name": "Bob"}).text == "Hi Bob"
    assert experiment_missing_variables(Experiment.objects.get(pk=report.experiment_id)) == []


def test_graders_come_from_the_assertion_then_the_test_then_the_suite(tmp_path, project, llm_server):
    base = f"{{apiBaseUrl: '{llm_server.base_url}', apiKeyEnvar: {KEY_ENV}}}"
    folder = write_config(tmp_path / "s", f"""
        prompts: ['Q: {{{{q}}}}']
        providers: [{{id: 'openai:gpt-4o-mini', config: {base}}}]
        defaultTest:
          options:
            provider: {{id: 'openai:chat:gpt-4o', config: {base}}}
        tests:
          - vars: {{q: a}}
            assert:
              - {{type: llm-rubric, value: 'Is short, says {{{{ q }}}}'}}
              - {{type: similar, value: a}}
              - {{type: similar, value: b, provider: 'openai:embedding:text-embedding-3-small'}}
    """)  # fmt: skip

    promptfoo_suite_import(project=project, actor=None, files=FolderFiles(folder), name="g")

    endpoints = {e.name: (e.model, e.api_base, e.api_key_env) for e in ModelEndpoint.objects.all()}
    assert endpoints == {
        "gpt-4o-mini": ("openai/gpt-4o-mini", llm_server.base_url, KEY_ENV),
        "gpt-4o": ("openai/gpt-4o", llm_server.base_url, KEY_ENV),  # the test's options.provider grades the rubric
        # options.provider is a chat model, so similar falls back to promptfoo's default embedding model,
        # reached like the suite's first provider
        "text-embedding-3-large": ("openai/text-embedding-3-large", llm_server.base_url, KEY_ENV),
        "text-embedding-3-small": ("openai/text-embedding-3-small", "", "PROMPTLAB_KEY_OPENAI_API_KEY"),  # the assertion's own
    }
    judge, *similar = DatasetItem.objects.get(dataset__name="g").assertions
    assert (judge["kind"], judge["config"]) == ("llm_judge", {"rubric": "g-rubric-1", "rubric_version": 1, "endpoint": "gpt-4o", "scale": [0, 1]})
    rubric = prompt_version(prompt=Prompt.objects.get(name="g-rubric-1"), version=1)
    assert "<Rubric>\nIs short, says {{ vars.q }}\n</Rubric>" in rubric.messages[1]["content"]
    assert [check["config"]["endpoint"] for check in similar] == ["text-embedding-3-large", "text-embedding-3-small"]


def test_an_assertion_whose_evaluator_would_be_refused_is_skipped_with_the_reason(tmp_path, project, llm_server):
    folder = write_config(tmp_path / "s", f"""
        prompts: ['{{{{q}}}}']
        providers: [{{id: 'openai:gpt-4o-mini', config: {{apiBaseUrl: '{llm_server.base_url}'}}}}]
        tests:
          - vars: {{q: x}}
            assert: [{{type: regex, value: '(?<=a+)b'}}]
          - vars: {{q: y}}
            assert: [{{type: contains, value: y}}, {{type: contains}}]
    """)  # fmt: skip

    report = promptfoo_suite_import(project=project, actor=None, files=FolderFiles(folder), name="r")

    assert [(where, reason.split(":")[0]) for where, _, reason in report.skipped_asserts] == [
        ("promptfooconfig.yaml: tests[1].assert[1]", "contains needs a value"),
        ("promptfooconfig.yaml: tests[0].assert[0]", "Invalid regular expression '(?<=a+)b'"),
    ]
    assert report.skipped_items == [("promptfooconfig.yaml: tests[0]", "not imported: none of its assertions can be checked here, so it would always pass")]  # fmt: skip
    assert [item.vars for item in DatasetItem.objects.filter(dataset__name="r")] == [{"q": "y"}]


# --- Bad input: the file and key named, nothing created ------------------------------------------


PROVIDER = "providers: [{id: 'openai:chat:gpt-4o-mini', config: {apiBaseUrl: 'http://127.0.0.1:9/v1'}}]"


@pytest.mark.parametrize(
    ("config", "files", "message"),
    [
        ("prompts: ['a'\nproviders: [x", {}, r"promptfooconfig.yaml is not YAML: line \d+, column \d+"),
        ("- just\n- a list", {}, "promptfooconfig.yaml is not a promptfoo config"),
        (f"prompts: ['a']\n{PROVIDER}\ntests: file://missing.csv", {}, r"promptfooconfig.yaml: tests\[0\]: missing.csv does not exist"),
        (f"prompts: ['file://prompts/*.txt']\n{PROVIDER}", {}, r"promptfooconfig.yaml: prompts\[0\]: file://prompts/\*.txt matches no file"),
        (f"prompts: ['a']\n{PROVIDER}\ntests: [{{vars: {{q: 'file://q.txt'}}}}]", {}, r"tests\[0\].vars.q: q.txt does not exist"),
        ("prompts: ['a']\nproviders: ['replicate:meta/llama-3']", {},
         r"promptfooconfig.yaml: providers\[0\]: unknown provider 'replicate:meta/llama-3'; promptlab imports openai:, anthropic:"),
        ("prompts: ['a']\nproviders: ['openai:image:dall-e-3']", {}, r"'openai:image:dall-e-3' is a promptfoo image provider"),
        ("prompts: ['a']\nproviders: [{id: 'openai:gpt-4o', config: {apiKey: sk-123}}]", {},
         r"providers\[0\].config.apiKey: promptlab never stores API keys"),
        ("prompts: ['a']\nproviders: [{id: 'openai:gpt-4o', config: {temperature: 9}}]", {}, r"providers\[0\].config: Invalid model parameters: temperature"),
        ("prompts: ['a']", {}, "the suite names no provider"),
        (f"prompts: ['file://p.py']\n{PROVIDER}", {}, r"prompts\[0\]: file://p.py builds the prompt with code"),
        (f"prompts: ['a']\n{PROVIDER}\ntests: file://t.js", {"t__js": "x"}, r"tests\[0\]: t.js generates tests with code"),
        (f"prompts: ['a']\n{PROVIDER}\ntests: [{{assert: [{{type: contains, weight: -1}}]}}]", {}, r"tests\[0\].assert\[0\].weight: must be at least 0"),
        (f"prompts: ['a']\n{PROVIDER}\ntests: file://t.csv", {"t__csv": "q,__config:__expected:weight\nx,1\n"},
         r"t.csv row 1, column __config:__expected:weight"),
        (f"prompts: ['file://c.json']\n{PROVIDER}", {"c__json": '[{"role": "robot", "content": "x"}]'}, "c.json: message 1 must be"),
    ],
    ids=["not-yaml", "not-a-mapping", "missing-tests-file", "no-prompt-file", "missing-var-file", "unknown-provider",
         "completion-provider", "literal-key", "bad-param", "no-provider", "prompt-function", "test-generator", "bad-weight",
         "bad-csv-config", "bad-chat"],  # fmt: skip
)
def test_bad_input_is_refused_naming_file_and_key_and_creates_nothing(tmp_path, project, config, files, message):
    folder = write_config(tmp_path / "bad", config, **files)
    before = counts()

    with pytest.raises(Invalid, match=message):
        promptfoo_suite_import(project=project, actor=None, files=FolderFiles(folder))

    assert counts() == before


def test_a_problem_found_after_writing_began_rolls_everything_back(tmp_path, project, llm_server):
    # The endpoint is created before the prompt's template is refused (dump is a nunjucks filter
    # that Jinja does not have): the whole import is undone.
    folder = write_config(tmp_path / "s", f"""
        prompts: ['Data: {{{{ data | dump }}}}']
        providers: [{{id: 'openai:gpt-4o-mini', config: {{apiBaseUrl: '{llm_server.base_url}'}}}}]
        tests: [{{vars: {{data: x}}}}]
    """)  # fmt: skip
    before = counts()

    with pytest.raises(Invalid, match=r"promptfooconfig.yaml: prompts\[0\], line 1: No filter named 'dump'"):
        promptfoo_suite_import(project=project, actor=None, files=FolderFiles(folder))

    assert counts() == before


def test_importing_the_same_suite_twice_asks_for_another_name(suite, project):
    folder = suite("capitals")
    promptfoo_suite_import(project=project, actor=None, files=FolderFiles(folder))

    with pytest.raises(Invalid, match="already has a dataset named 'capital-cities'"):
        promptfoo_suite_import(project=project, actor=None, files=FolderFiles(folder))
    report = promptfoo_suite_import(project=project, actor=None, files=FolderFiles(folder), name="capitals-v2")
    assert report.dataset == "capitals-v2"


def test_a_config_uploaded_alone_cannot_refer_to_files(project):
    files = ConfigOnly(b"prompts: ['file://p.txt']\nproviders: ['openai:gpt-4o']\n", name="suite.yaml")

    with pytest.raises(Invalid, match=r"suite.yaml: prompts\[0\]: refers to p.txt; upload a zip holding suite.yaml"):
        promptfoo_suite_import(project=project, actor=None, files=files)


# --- Who may import --------------------------------------------------------------------------------


def test_an_editor_cannot_add_endpoints_and_is_told_which_are_missing(suite, llm_server):
    editor = MembershipFactory(role=Role.EDITOR)
    before = counts()

    with pytest.raises(Invalid, match=rf"only a superuser can add one: .*providers\[0\]: openai/gpt-4o-mini at {llm_server.base_url} with its key in {KEY_ENV}"):  # fmt: skip
        promptfoo_suite_import(project=editor.project, actor=editor.user, files=FolderFiles(suite("capitals")))
    assert counts() == before

    ModelEndpointFactory(model="openai/gpt-4o-mini", api_base=llm_server.base_url, api_key_env=KEY_ENV)
    report = promptfoo_suite_import(project=editor.project, actor=editor.user, files=FolderFiles(suite("capitals")), name="again")
    assert report.experiment_id and Prompt.objects.get(name="again-what-is-the-capital-of-country").history.get().history_user == editor.user


def test_a_superuser_may_add_endpoints_and_a_viewer_may_import_nothing(suite):
    superuser = UserFactory(is_superuser=True, is_staff=True)
    project = ProjectFactory()
    report = promptfoo_suite_import(project=project, actor=superuser, files=FolderFiles(suite("capitals")))
    assert [created for _, _, created, _ in report.endpoints] == [True]

    viewer = MembershipFactory(role=Role.VIEWER)
    with pytest.raises(Forbidden):
        promptfoo_suite_import(project=viewer.project, actor=viewer.user, files=FolderFiles(suite("capitals")), name="x")


# --- The command ---------------------------------------------------------------------------------


def test_the_command_prints_the_report(suite, project):
    out = io.StringIO()
    call_command("import_promptfoo", str(suite("support_bot") / "promptfooconfig.yaml"), project="support", stdout=out)

    text = out.getvalue()
    assert "Prompt created: support-bot-chat (from prompts/chat.json), version 1" in text
    assert "Skipped assertion: promptfooconfig.yaml: tests[3].assert[2]: javascript: output.length > 3" in text
    assert "Skipped test: promptfooconfig.yaml: tests[5]" in text
    assert f"manage.py run_experiment {Experiment.objects.get().pk}" in text


def test_the_command_fails_with_the_reason_and_creates_nothing(tmp_path, project):
    folder = write_config(tmp_path / "bad", "prompts: ['a']\nproviders: ['replicate:meta/llama-3']")

    with pytest.raises(CommandError, match=r"Nothing was imported: promptfooconfig.yaml: providers\[0\]: unknown provider 'replicate:meta/llama-3'"):
        call_command("import_promptfoo", str(folder), project="support")
    with pytest.raises(CommandError, match="No project with the slug 'nope'"):
        call_command("import_promptfoo", str(folder), project="nope")
    assert Prompt.objects.count() == 0
