"""Evaluators, experiments created with evaluators, scores and comparisons through the API."""

from datetime import timedelta

import httpx
import pytest
import schemathesis

from evaluations import comparison
from evaluations import services as evaluation_services
from evaluations.models import ExperimentEvaluator, Score, ScoreStatus
from experiments.models import DatasetItem, Experiment
from promptlab.accounts.models import Role
from tests.api.conftest import client_with, error_of
from tests.factories import DatasetFactory, DatasetItemFactory, ExperimentFactory, MembershipFactory, RunFactory, VariantFactory

pytestmark = pytest.mark.django_db


def evaluator(owner, name: str, value: str | None = None, project=None):
    return evaluation_services.evaluator_create(
        project=project or owner.project, actor=owner.user, name=name, kind="contains", config={"value": value or name}
    )


@pytest.fixture
def scored(owner):
    """A finished experiment with two evaluators and two variants over twenty items: `prod`
    passes both on every item, `v2` fails `sorry` on items 11 to 20 and errored on item 1."""
    experiment = ExperimentFactory(project=owner.project, status="finished")
    refund, sorry = evaluator(owner, "refund"), evaluator(owner, "sorry")
    evaluation_services.experiment_evaluators_set(experiment=experiment, actor=owner.user, evaluators=[refund, sorry])
    items = [DatasetItemFactory(dataset=experiment.dataset, row=row) for row in range(1, 21)]
    for name in ("prod", "v2"):
        variant = VariantFactory(experiment=experiment, name=name)
        for item in items:
            run = RunFactory(experiment=experiment, variant=variant, item=item, latency_ms=100 + item.row)
            Score.objects.create(run=run, evaluator=refund, evaluator_version=1, status=ScoreStatus.OK, value=1.0, passed=True,
                                 reason="has refund")  # fmt: skip
            if name == "v2" and item.row == 1:
                Score.objects.create(run=run, evaluator=sorry, evaluator_version=1, status=ScoreStatus.ERRORED, reason="judge down",
                                     error_kind="llm_unavailable")  # fmt: skip
                continue
            passed = name == "prod" or item.row <= 10
            Score.objects.create(run=run, evaluator=sorry, evaluator_version=1, status=ScoreStatus.OK, value=float(passed),
                                 passed=passed, reason="says sorry" if passed else "no apology")  # fmt: skip
    experiment.evaluators = {"refund": refund, "sorry": sorry}
    return experiment


# --- Evaluators ---------------------------------------------------------------------------------


def test_evaluators_are_listed_by_name_and_paged(api, owner):
    for name in ("tone", "refund", "sorry"):
        evaluator(owner, name)
    other = MembershipFactory(role=Role.OWNER)
    evaluator(other, "elsewhere", project=other.project)

    first = api.get("/api/v1/evaluators/?page_size=2").json()
    second = api.get(first["next"]).json()

    assert first["count"] == 3
    assert [e["name"] for e in first["results"] + second["results"]] == ["refund", "sorry", "tone"]
    assert first["results"][0] | {"id": 0, "updated_at": ""} == {
        "id": 0, "name": "refund", "description": "", "kind": "contains", "config": {"value": "refund"}, "weight": 1.0,
        "threshold": None, "inverted": False, "enabled": True, "version": 1, "updated_at": "",
    }  # fmt: skip


# --- Creating an experiment with evaluators -------------------------------------------------------


@pytest.fixture
def cases(owner, prompt):
    dataset = DatasetFactory(project=owner.project, name="cases")
    DatasetItem.objects.create(dataset=dataset, row=1, vars={"name": "Ada"})
    return dataset


def create(api, **fields):
    return api.post("/api/v1/experiments/", {"name": "e", "dataset": "cases", "variants": [{"prompt": "greet"}], **fields}, format="json")


def test_an_experiment_is_created_with_its_evaluators_by_name_or_id(api, owner, cases):
    refund, sorry = evaluator(owner, "refund"), evaluator(owner, "sorry")
    evaluator(owner, "unused")

    response = create(api, evaluators=["refund", sorry.pk, refund.pk])

    assert response.status_code == 201, response.content
    experiment = Experiment.objects.get(pk=response.json()["id"])
    assert experiment.status == "draft"
    assert set(ExperimentEvaluator.objects.filter(experiment=experiment).values_list("evaluator__name", flat=True)) == {"refund", "sorry"}
    assert create(api).status_code == 201  # evaluators are optional


def test_unknown_or_another_projects_evaluators_refuse_the_create_alike_and_save_nothing(api, owner, cases):
    evaluator(owner, "refund")
    other = MembershipFactory(role=Role.OWNER)
    theirs = evaluator(other, "their-check", project=other.project)

    foreign = create(api, evaluators=["refund", "their-check", theirs.pk])
    unknown = create(api, evaluators=["refund", "nobodys-check", theirs.pk + 1000])

    assert foreign.status_code == unknown.status_code == 400
    assert error_of(foreign)["details"] == {"evaluators": ["their-check", theirs.pk]}
    named_like_unknown = error_of(foreign)["message"].replace("their", "nobodys").replace(str(theirs.pk), str(theirs.pk + 1000))
    assert named_like_unknown == error_of(unknown)["message"]
    assert not Experiment.objects.filter(name="e").exists()


@pytest.mark.parametrize("ref", [True, 1.5, 0, "two words", "", {"name": "refund"}, None])
def test_an_evaluator_is_a_name_or_a_positive_id(api, owner, cases, ref):
    response = create(api, evaluators=[ref])

    assert response.status_code == 400
    assert "evaluators" in error_of(response)["details"]


def test_a_refused_variant_attaches_no_evaluators(api, owner, cases):
    evaluator(owner, "refund")

    response = create(api, evaluators=["refund"], variants=[{"prompt": "greet", "model": "nope"}])

    assert response.status_code == 400 and "nope" in error_of(response)["message"]
    assert not Experiment.objects.filter(name="e").exists() and not ExperimentEvaluator.objects.exists()


def test_creating_needs_the_run_scope(make_key, owner, cases):
    evaluator(owner, "refund")

    response = create(client_with(make_key("read", "write")), evaluators=["refund"])

    assert response.status_code == 403 and error_of(response)["code"] == "forbidden"


# --- Scores ---------------------------------------------------------------------------------------


def test_scores_are_paged_by_row_variant_and_evaluator(api, scored):
    page = api.get(f"/api/v1/experiments/{scored.pk}/scores/?page_size=4").json()

    assert page["count"] == 80 and page["next"]
    assert [(s["row"], s["variant"], s["evaluator"]) for s in page["results"]] == [
        (1, "prod", "refund"), (1, "prod", "sorry"), (1, "v2", "refund"), (1, "v2", "sorry"),
    ]  # fmt: skip
    errored = page["results"][3]
    assert errored | {"run": 0, "updated_at": ""} == {
        "run": 0, "variant": "v2", "row": 1, "repeat": 1, "evaluator": "sorry", "evaluator_version": 1, "current": True,
        "status": "errored", "value": None, "passed": None, "reason": "judge down", "error_kind": "llm_unavailable",
        "cost_usd": None, "updated_at": "",
    }  # fmt: skip
    assert errored["run"] == scored.runs.get(variant__name="v2", item__row=1).pk


def test_scores_filter_by_evaluator_status_and_variant(api, scored):
    url = f"/api/v1/experiments/{scored.pk}/scores/"

    failed = api.get(url, {"evaluator": "sorry", "variant": "v2", "status": "ok"}).json()["results"]

    expected = [(row, row <= 10, "says sorry" if row <= 10 else "no apology") for row in range(2, 21)]
    assert [(s["row"], s["passed"], s["reason"]) for s in failed] == expected
    assert api.get(url, {"status": "errored"}).json()["count"] == 1
    assert api.get(url, {"evaluator": "nobody"}).json()["count"] == 0
    assert error_of(api.get(url, {"status": "great"}))["code"] == "invalid"


def test_scores_of_an_earlier_evaluator_version_show_only_when_asked(api, scored, owner):
    sorry = scored.evaluators["sorry"]
    evaluation_services.evaluator_update(evaluator=sorry, actor=owner.user, message="stricter", config={"value": "so sorry"})
    run = scored.runs.get(variant__name="prod", item__row=1)
    Score.objects.create(run=run, evaluator=sorry, evaluator_version=2, status=ScoreStatus.OK, value=0.0, passed=False)
    url = f"/api/v1/experiments/{scored.pk}/scores/?evaluator=sorry"

    current = api.get(url).json()
    every = api.get(url + "&versions=all&page_size=200").json()

    assert [(s["run"], s["evaluator_version"], s["current"]) for s in current["results"]] == [(run.pk, 2, True)]
    assert every["count"] == 41
    assert [(s["evaluator_version"], s["current"]) for s in every["results"][:2]] == [(1, False), (2, True)]


# --- Comparison -----------------------------------------------------------------------------------


def test_the_comparison_gives_each_variants_numbers_and_the_pairs_verdicts(api, scored):
    body = api.get(f"/api/v1/experiments/{scored.pk}/comparison/").json()

    expected = comparison.experiment_comparison(experiment=scored)
    names = [variant.name for variant in expected.variants]
    assert names[0].startswith("prod: ") and names[1].startswith("v2: ")  # Variant.display
    prod, v2 = body["variants"]
    assert (prod["name"], prod["runs"], prod["graded"], prod["passed"], prod["errored"], prod["items"]) == (names[0], 20, 20, 20, 0, 20)
    assert (v2["name"], v2["runs"], v2["graded"], v2["passed"], v2["errored"], v2["items"]) == (names[1], 20, 19, 9, 1, 19)
    assert v2["pass_rate"] == vars(expected.variants[1].summary.pass_rate)
    assert prod["latency_p50_ms"] == 110.5 and prod["cost_usd"] == "0.02000000" and prod["cost_per_item_usd"] == "0.00100000"
    [pair] = body["pairs"]
    assert (pair["a"], pair["b"]) == tuple(names)
    assert pair["passing"]["test"] == "mcnemar_exact" and pair["passing"]["items"] == 19 and pair["passing"]["a_better"] == 10
    assert pair["passing"]["p_value"] == pytest.approx(expected.pairs[0].passing.p_value)
    assert pair["passing"]["adjusted_p_value"] is None  # one pair: nothing to adjust
    assert pair["pass_verdict"] == expected.pairs[0].pass_verdict and pair["pass_verdict"].startswith(f"{names[0]} passes more often than {names[1]}")
    assert pair["score_verdict"] == expected.pairs[0].score_verdict
    assert pair["changes"] == expected.pairs[0].changes and pair["headline"].startswith(pair["pass_verdict"])
    sorry = next(row for row in body["evaluators"] if row["evaluator"] == "sorry")
    sorry_v2 = sorry["variants"][1]
    assert {key: sorry_v2[key] for key in ("variant", "graded", "passed", "errored", "pending", "items")} == {
        "variant": names[1], "graded": 19, "passed": 9, "errored": 1, "pending": 0, "items": 19}
    assert sorry_v2["mean_value"]["estimate"] == pytest.approx(9 / 19)
    [sorry_pair] = sorry["pairs"]
    assert sorry_pair["passing"]["a_better"] == 10 and sorry_pair["significant"] is True
    assert body["agreement"] is None and body["significance"] == 0.05 and body["experiment"] == scored.pk and body["pending"] == 0


def test_an_experiment_without_runs_compares_to_nothing(api, project):
    experiment = ExperimentFactory(project=project, status="draft")

    body = api.get(f"/api/v1/experiments/{experiment.pk}/comparison/").json()

    assert body == {"experiment": experiment.pk, "significance": 0.05, "variants": [], "pairs": [], "evaluators": [], "pending": 0,
                    "gate": None, "agreement": None}  # fmt: skip


def test_scores_and_comparison_answers_conform_to_the_schema(api, scored):
    """Checked with real numbers in them (the schema fuzz sees an experiment without runs)."""
    schema = schemathesis.openapi.from_dict(api.get("/api/schema/?format=json").json())

    for path in ("/api/v1/experiments/{id}/comparison/", "/api/v1/experiments/{id}/scores/", "/api/v1/evaluators/"):
        url = path.format(id=scored.pk)
        response = api.get(url)
        assert response.status_code == 200, response.content
        answer = httpx.Response(response.status_code, headers=dict(response.headers), content=response.content,
                                request=httpx.Request("GET", f"http://testserver{url}"))  # fmt: skip
        answer.elapsed = timedelta(0)
        schema[path]["GET"].validate_response(answer)


# --- Every list makes as many queries at N rows as at N+20 -------------------------------------------

EVALUATOR_LIST_QUERIES = 3
SCORE_LIST_QUERIES = 6


def test_evaluator_list_queries(read, owner):
    for n in range(3):
        evaluator(owner, f"e{n}")
    read("/api/v1/evaluators/?page_size=100", EVALUATOR_LIST_QUERIES)
    for n in range(3, 23):
        evaluator(owner, f"e{n}")

    read("/api/v1/evaluators/?page_size=100", EVALUATOR_LIST_QUERIES)


@pytest.mark.parametrize("filters", ["", "&versions=all&evaluator=sorry&status=ok&variant=v2"])
def test_score_list_queries(read, scored, owner, filters):
    url = f"/api/v1/experiments/{scored.pk}/scores/?page_size=200{filters}"
    read(url, SCORE_LIST_QUERIES)
    sorry, v2 = scored.evaluators["sorry"], scored.variants.get(name="v2")
    for row in range(21, 41):
        run = RunFactory(experiment=scored, variant=v2, item=DatasetItemFactory(dataset=scored.dataset, row=row))
        Score.objects.create(run=run, evaluator=sorry, evaluator_version=1, status=ScoreStatus.OK, value=1.0, passed=True)

    read(url, SCORE_LIST_QUERIES)
