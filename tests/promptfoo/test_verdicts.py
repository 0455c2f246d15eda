"""promptfoo suites imported, run against the fake OpenAI server and scored: each test's verdict
and score compared with what promptfoo's documented semantics give for the same outputs (worked
out by hand in the comments), and the export in promptfoo's JSON output shape. Every verdict is
the grade of evaluations.grading, which the comparison page and API show too (test_parity.py
checks the counts against promptfoo itself)."""

import json
import math
import textwrap

import pytest
from django.core.management import CommandError, call_command

from evaluations import grading
from evaluations import services as evaluation_services
from evaluations.promptfoo.files import FolderFiles
from evaluations.promptfoo.importer import promptfoo_suite_import
from evaluations.promptfoo.results import ASSERT_FAILURE, ERROR, SUCCESS, experiment_verdicts
from experiments import services as experiment_services
from experiments.models import Experiment
from tests.factories import ProjectFactory, RunFactory
from tests.fake_openai import Scripted, embedding
from tests.promptfoo.configs import KEY_ENV, copy_suite, run_and_score

pytestmark = pytest.mark.django_db


@pytest.fixture
def imported(tmp_path, llm_server, monkeypatch):
    """Import a suite of configs into a new project; its experiment."""
    monkeypatch.setenv(KEY_ENV, "sk-test-123")

    def load(name: str, config: str = "") -> Experiment:
        if config:  # a suite written by the test
            folder = tmp_path / name
            folder.mkdir()
            (folder / "promptfooconfig.yaml").write_text(textwrap.dedent(config).replace("FAKE_OPENAI_BASE_URL", llm_server.base_url))
        else:
            folder = copy_suite(name, tmp_path, llm_server.base_url)
        report = promptfoo_suite_import(project=ProjectFactory(), actor=None, files=FolderFiles(folder))
        return Experiment.objects.get(pk=report.experiment_id)

    return load


def table(experiment) -> dict:
    """{(row, variant): (passed, score)} of promptfoo's verdicts."""
    return {(v.run.item.row, v.run.variant.name): (v.passed, round(v.score, 4)) for v in experiment_verdicts(experiment=experiment)}


def cosine(a: str, b: str) -> float:
    x, y = embedding(a), embedding(b)
    return sum(p * q for p, q in zip(x, y, strict=True)) / math.sqrt(sum(p * p for p in x) * sum(q * q for q in y))


# --- The semantics in the small -----------------------------------------------------------------------


def test_weights_thresholds_and_named_scores_as_promptfoo_documents(imported):
    experiment = imported("docs", """
        prompts: ['{{text}}']
        providers: [{id: 'openai:chat:gpt-4o-mini', config: {apiBaseUrl: 'FAKE_OPENAI_BASE_URL', apiKeyEnvar: PROMPTLAB_KEY_TEST_OPENAI}}]
        tests:
          - {vars: {text: Goodbye world}, assert: [{type: equals, value: Hello world, weight: 2}, {type: contains, value: world}]}
          - {vars: {text: 'Goodbye world, 2'}, threshold: 0.5, assert: [{type: equals, value: Hello world, weight: 2}, {type: contains, value: world}]}
          - {vars: {text: 'Goodbye world, 3'}, threshold: 0.2, assert: [{type: equals, value: Hello world, weight: 2}, {type: contains, value: world}]}
          - {vars: {text: 'Goodbye world, 4'}, threshold: 0, assert: [{type: equals, value: Hello world, weight: 2}, {type: contains, value: world}]}
          - {vars: {text: no assertions}}
          - vars: {text: named}
            assert:
              - {type: contains, value: fake, weight: 3, metric: tone}
              - {type: contains, value: zzz, metric: tone}
              - {type: contains, value: answer, metric: format}
              - {type: contains, value: named}
    """)  # fmt: skip
    run_and_score(experiment)

    # promptfoo's docs: on "Goodbye world", equals (weight 2) fails and contains (weight 1)
    # passes: the score is 1/3; without a threshold the failed equals fails the test; a
    # threshold decides on the score alone (0 never fails); a test without assertions passes.
    verdicts = experiment_verdicts(experiment=experiment)
    assert [(v.passed, round(v.score, 4)) for v in verdicts] == [
        (False, 0.3333), (False, 0.3333), (True, 0.3333), (True, 0.3333), (True, 1.0), (False, round(5 / 6, 4)),
    ]
    assert verdicts[1].reason == "Weighted score 0.33 < threshold 0.5."
    assert verdicts[2].reason == "Weighted score 0.33 ≥ threshold 0.2."
    # named scores: the weighted mean per metric (3 x 1 + 1 x 0) / 4
    assert verdicts[5].named_scores == {"tone": 0.75, "format": 1.0}
    # the same grade as the comparison page's
    grades = {graded.run_id: graded.grade for graded in grading.experiment_grades(experiment)}
    assert [(grades[v.run.pk].passed, grades[v.run.pk].score) for v in verdicts] == [(v.passed, v.score) for v in verdicts]


# --- Whole suites against the fake server --------------------------------------------------------------


def test_support_bot_verdicts_match_promptfoo(imported):
    experiment = imported("support_bot")
    run_and_score(experiment)

    # Outputs: "fake answer to: <last message>". The text prompts end their message with
    # "Answer the customer of Acme: <q>" (p1) and "You work for Acme. Reply briefly to: <q>" (p2);
    # the chat prompt's last message is the question itself. defaultTest adds icontains
    # "FAKE ANSWER" and latency <= 60 s (both pass everywhere) before each test's own.
    expected_by_prompt = {
        # contains "order" passes; starts-with "fake answer to: Answer" only for p1: (1+1+1+0)/4
        1: {"p1": (True, 1.0), "p2": (False, 0.75), "chat": (False, 0.75)},
        # threshold 0.5: not-contains "Acme" (weight 3) fails for p1 and p2: (1+1+1+0)/6 = 0.5 >= 0.5
        2: {"p1": (True, 0.5), "p2": (True, 0.5), "chat": (True, 1.0)},
        # contains-all fails but has weight 0, so it passes and weighs nothing
        3: {"p1": (True, 1.0), "p2": (True, 1.0), "chat": (True, 1.0)},
        # equals and levenshtein (distance to "...pong" is 1 <= 2) pass for chat only; javascript skipped
        4: {"p1": (False, 0.5), "p2": (False, 0.5), "chat": (True, 1.0)},
        5: {"p1": (True, 1.0), "p2": (True, 1.0), "chat": (True, 1.0)},  # not-icontains "sunny"
        6: {"p1": (True, 1.0), "p2": (True, 1.0), "chat": (True, 1.0)},  # the array var's two values
        7: {"p1": (True, 1.0), "p2": (True, 1.0), "chat": (True, 1.0)},
    }
    prompts = {"p1": "prompts-answer-txt-1", "p2": "prompts-answer-txt-2", "chat": "chat"}
    expected = {
        (row, f"{prompts[key]} @ {provider}"): verdict
        for row, by_prompt in expected_by_prompt.items() for key, verdict in by_prompt.items()
        for provider in ("openai:chat:gpt-4o-mini", "warm")
    }  # fmt: skip
    assert table(experiment) == expected

    verdicts = {(v.run.item.row, v.run.variant.name): v for v in experiment_verdicts(experiment=experiment)}
    assert verdicts[(1, "prompts-answer-txt-1 @ warm")].named_scores == {"format": 1.0}
    assert verdicts[(1, "chat @ warm")].named_scores == {"format": 0.0}
    assert verdicts[(4, "chat @ warm")].named_scores == {"exactness": 1.0}
    assert verdicts[(1, "chat @ warm")].reason == "format: Expected the output to start with 'fake answer to: Answer'."
    assert verdicts[(2, "chat @ warm")].reason == "Weighted score 1.00 ≥ threshold 0.5."
    assert verdicts[(3, "chat @ warm")].components[3].passed  # the weight-0 contains-all, although it found no "Mexico"


def test_csv_suite_verdicts_match_promptfoo(imported):
    experiment = imported("capitals")
    run_and_score(experiment)

    # The output repeats "What is the capital of <country>?".
    assert table(experiment) == {
        (1, "openai:chat:gpt-4o-mini"): (True, 1.0),  # contains France, not-contains Berlin
        (2, "openai:chat:gpt-4o-mini"): (False, 0.5),  # levenshtein threshold 0.5 (from __config): distance 1 > 0.5
        (3, "openai:chat:gpt-4o-mini"): (True, 0.5),  # contains Chile fails, icontains PERU passes; __threshold 0.5
        (4, "openai:chat:gpt-4o-mini"): (True, 1.0),  # contains Chad; the fn: assertion is skipped
        (5, "openai:chat:gpt-4o-mini"): (False, 0.5),  # equals "Lomé" fails
    }
    named = [v.named_scores for v in experiment_verdicts(experiment=experiment)]
    assert named[:3] == [{"geo": 1.0}, {"geo": 0.5}, {}]


def test_json_suite_verdicts_match_promptfoo(imported, llm_server):
    experiment = imported("order_json")
    run_and_score(experiment)

    runs = {run.item.row: run for run in experiment.runs.select_related("item")}
    assert runs[1].output == '{"answer": "Order A1"}'  # response_format json_object
    b2 = runs[2]
    similarity = cosine(b2.output, "Order B2")
    cheap = b2.cost_usd <= 1e-10
    # Row 2: defaultTest's is-json and cost <= 1 pass; the status schema, not-contains-json and the
    # tiny cost ceiling fail; similar passes from 0.99 and scores the cosine (0 when negative, see
    # docs/integrations/promptfoo.md). Six assertions of weight 1.
    b2_score = (1 + 1 + 0 + 0 + max(0.0, similarity) + (1 if cheap else 0)) / 6
    assert table(experiment) == {
        (1, "openai:chat:gpt-4o-mini"): (True, 1.0),  # schema, deep-equal object, contains-json
        (2, "openai:chat:gpt-4o-mini"): (False, round(b2_score, 4)),
        (3, "openai:chat:gpt-4o-mini"): (True, 1.0),  # a YAML schema; similar to itself (cosine 1)
    }
    embeddings = [request["body"] for request in llm_server.requests if request["path"].endswith("/embeddings")]
    assert embeddings and {body["model"] for body in embeddings} == {"text-embedding-3-small"}


def test_rubric_suite_verdicts_match_promptfoo(imported, llm_server):
    experiment = imported("haiku_rubric")

    def judge_answers():
        # Runs are scored in order, each by defaultTest's "Is a poem about {{topic}}", then the
        # second by its own "not Mentions the sun".
        answers = [0.9, 0.8, 0.7, 0.3]
        llm_server.script(*[Scripted.content(json.dumps({"score": score, "reasoning": "graded"})) for score in answers])

    run_and_score(experiment, before_scoring=judge_answers)

    assert table(experiment) == {
        (1, "openai:chat:gpt-4o-mini"): (True, 0.9),
        # not-llm-rubric: the judge's 0.7 reaches its threshold 0.6, so the negation fails and scores 0.3
        (2, "openai:chat:gpt-4o-mini"): (False, 0.55),
        # 0.3 fails the rubric (a judge passes from 0.5), but the test's threshold is 0.25
        (3, "openai:chat:gpt-4o-mini"): (True, 0.3),
    }
    assert experiment_verdicts(experiment=experiment)[0].named_scores == {"quality": 0.9}
    judged = [r["body"]["messages"][-1]["content"] for r in llm_server.requests if r["body"] and r["body"].get("response_format", {}).get("type") == "json_schema"]  # fmt: skip
    assert "<Output>\nfake answer to: Write a haiku about snow.\n</Output>\n<Rubric>\nIs a poem about snow\n</Rubric>" in judged


def test_a_failed_call_or_an_errored_score_is_an_error_not_a_failure(imported, llm_server):
    experiment = imported("capitals")
    experiment_services.experiment_start(experiment=experiment, actor=None)
    llm_server.script(Scripted.error(400, "This model's maximum context length is 8192 tokens"))
    experiment_services.experiment_drain(experiment_id=experiment.pk, time_budget_s=60)
    for run in experiment.runs.filter(status="done"):
        evaluation_services.score_run(run_id=run.pk)

    first, *rest = experiment_verdicts(experiment=experiment)
    assert (first.passed, first.failure_reason, first.score) == (False, ERROR, 0.0)
    assert "maximum context length" in first.error
    assert [v.failure_reason for v in rest] == [ASSERT_FAILURE, SUCCESS, SUCCESS, ASSERT_FAILURE]


# --- The export ---------------------------------------------------------------------------------------------


def test_the_export_is_promptfoos_json_output(imported, tmp_path):
    experiment = imported("capitals")
    run_and_score(experiment)
    path = tmp_path / "results.json"

    call_command("export_promptfoo_results", str(experiment.pk), "-o", str(path))

    data = json.loads(path.read_text())
    assert set(data) >= {"evalId", "results", "config"}
    results = data["results"]
    assert results["version"] == 3 and set(results) >= {"timestamp", "prompts", "results", "stats"}
    assert results["stats"] | {"tokenUsage": None} == {"successes": 3, "failures": 2, "errors": 0, "tokenUsage": None}
    rows = results["results"]
    assert [(row["testIdx"], row["success"], row["score"], row["failureReason"]) for row in rows] == [
        (0, True, 1.0, 0), (1, False, 0.5, 1), (2, True, 0.5, 0), (3, True, 1.0, 0), (4, False, 0.5, 1),
    ]
    france, japan, peru, chad, _ = rows
    assert france["provider"] == {"id": "openai:chat:gpt-4o-mini", "label": "openai:chat:gpt-4o-mini"}
    assert france["vars"] == {"country": "France"} and france["response"]["output"] == "fake answer to: What is the capital of France?"
    assert france["prompt"]["raw"] == "What is the capital of France?" and france["latencyMs"] >= 0 and france["cost"] > 0
    grading = japan["gradingResult"]
    assert (grading["pass"], grading["score"], grading["namedScores"]) == (False, 0.5, {"geo": 0.5})
    assert [(c["pass"], c["score"], c["assertion"]["type"]) for c in grading["componentResults"]] == [(True, 1.0, "contains"), (False, 0.0, "levenshtein")]
    assert grading["componentResults"][1]["assertion"] == {
        "type": "levenshtein", "value": "fake answer to: What is the capital of Japan!", "threshold": 0.5, "metric": "geo",
    }  # fmt: skip
    assert peru["gradingResult"]["reason"] == "Weighted score 0.50 ≥ threshold 0.5." and peru["testCase"]["threshold"] == 0.5
    # __config:__expected2:threshold is also metadata, as promptfoo makes it
    assert peru["testCase"]["description"] == "graded on the score" and peru["metadata"] == {"region": "americas", "threshold": 0.5}
    assert chad["testCase"]["assert"][-1] == {"type": "javascript", "value": "output.length > 0", "threshold": 0.5}  # skipped, still listed
    (prompt,) = results["prompts"]
    assert prompt["raw"] == "What is the capital of {{country}}?" and prompt["provider"] == "openai:chat:gpt-4o-mini"
    assert (prompt["metrics"]["testPassCount"], prompt["metrics"]["testFailCount"], prompt["metrics"]["assertFailCount"]) == (3, 2, 3)


def test_the_export_waits_for_the_experiment_unless_partial(imported, capsys):
    experiment = imported("capitals")
    with pytest.raises(CommandError, match="has no runs: start it first"):
        call_command("export_promptfoo_results", str(experiment.pk))
    experiment_services.experiment_start(experiment=experiment, actor=None)

    with pytest.raises(CommandError, match="5 of 5 runs of experiment .* have no final result yet"):
        call_command("export_promptfoo_results", str(experiment.pk))
    call_command("export_promptfoo_results", str(experiment.pk), "--partial")
    data = json.loads(capsys.readouterr().out)
    assert data["results"]["stats"]["errors"] == 5
    assert {row["error"] for row in data["results"]["results"]} == {"The run is pending."}


def test_the_export_can_fail_like_promptfoo_eval(imported):
    experiment = imported("capitals")
    run_and_score(experiment)
    with pytest.raises(SystemExit) as exit:
        call_command("export_promptfoo_results", str(experiment.pk), "-o", "/dev/null", "--fail-on-error")
    assert exit.value.code == 100


def test_an_experiment_not_imported_from_promptfoo_is_graded_by_all_its_evaluators():
    run = RunFactory(output="The answer is 42.")
    evaluators = [
        evaluation_services.evaluator_create(project=run.experiment.project, actor=None, name=name, kind="contains", config={"value": value})
        for name, value in (("says-42", "42"), ("says-43", "43"))
    ]  # fmt: skip
    evaluation_services.experiment_evaluators_set(experiment=run.experiment, actor=None, evaluators=evaluators)
    evaluation_services.score_run(run_id=run.pk)

    (verdict,) = experiment_verdicts(experiment=run.experiment)
    assert (verdict.passed, verdict.score, verdict.named_scores) == (False, 0.5, {"says-42": 1.0, "says-43": 0.0})
