"""A budget that holds: each call made for an experiment (its runs', and the judge calls that score
them) holds the most it can cost before it is made, and settles at what it cost; what no budget
can hold is refused at start; raising the budget and resuming runs what it skipped.

Prices are chosen so that every amount is exact: the fake server counts a prompt as its words plus
3 per message and an answer as its words, and LiteLLM's bundled list gives gpt-4o-mini's longest
answer (16384 tokens)."""

import json
import time
from decimal import Decimal

import pytest
from bs4 import BeautifulSoup
from django.db.models import Q, Sum
from django.template.loader import render_to_string

from evaluations import services as evaluation_services
from evaluations.models import Score, ScoreStatus
from experiments import services
from experiments.models import DatasetItem, Experiment, Run, RunStatus, Variant
from promptlab.accounts import api_keys
from promptlab.accounts.models import Role
from promptlab.errors import Invalid
from promptlab.llm import estimates, gateway
from prompts import services as prompt_services
from tests.api.conftest import client_with, error_of
from tests.conftest import start_worker, stop
from tests.factories import DatasetFactory, MembershipFactory, ModelEndpointFactory, RunFactory
from tests.fake_openai import FakeOpenAI, Scripted

pytestmark = pytest.mark.django_db

IN, OUT = Decimal("0.0001"), Decimal("0.000001")  # USD per prompt token, per completion token
LONGEST = 16384  # gpt-4o-mini's longest answer, in LiteLLM's model info
UNLISTED = "openai/promptlab-unlisted-model"  # a model LiteLLM's list knows nothing of: no price, no longest answer
JUDGEMENT = json.dumps({"score": 4, "reasoning": "fine"})  # 4 words
RUN_COST = 6 * IN + 6 * OUT  # "Q: question 7" (3 words + 3) answered "fake answer to: Q: question 7" (6 words)


def priced(endpoint, input_usd=IN, output_usd=OUT):
    endpoint.input_cost_per_token, endpoint.output_cost_per_token = input_usd, output_usd
    endpoint.save()
    return endpoint


def another(endpoint, **fields):
    """An endpoint at the same fake server, with the same key."""
    return ModelEndpointFactory(api_base=endpoint.api_base, api_key_env=endpoint.api_key_env, **fields)


@pytest.fixture
def owner(db):
    return MembershipFactory(role=Role.OWNER)


def experiment_of(owner, endpoint, *, items=10, params=None, budget=None, evaluators=(), concurrency=8) -> Experiment:
    prompt = prompt_services.prompt_create(
        project=owner.project, actor=owner.user, name="answer", message="v1", template="Q: {{ q }}", endpoint=endpoint
    )
    dataset = DatasetFactory(project=owner.project)
    DatasetItem.objects.bulk_create([DatasetItem(dataset=dataset, row=n, vars={"q": f"question {n}"}) for n in range(1, items + 1)])
    return services.experiment_create(
        project=owner.project, actor=owner.user, name="budgeted", dataset=dataset, budget_usd=budget, concurrency=concurrency,
        variants=[{"name": "a", "prompt": prompt, "version": 1, "params": params or {}}], attach={"evaluators": list(evaluators)},
    )  # fmt: skip


def judge_of(owner, rubric_endpoint, *, params=None, judged_by=None):
    """A judge whose rubric runs on rubric_endpoint, or on the endpoint judged_by names."""
    prompt_services.prompt_create(
        project=owner.project, actor=owner.user, name="rubric", message="v1", template="Grade: {{ output }}", endpoint=rubric_endpoint,
        params=params or {},
    )  # fmt: skip
    config = {"rubric": "rubric"} | ({"endpoint": judged_by} if judged_by else {})
    return evaluation_services.evaluator_create(project=owner.project, actor=owner.user, name="judge", kind="llm_judge", config=config)


def refused(experiment, owner, match: str):
    with pytest.raises(Invalid, match=match):
        services.experiment_start(experiment=experiment, actor=owner.user)
    experiment.refresh_from_db()
    assert experiment.status == "draft" and not Run.objects.exists()


# --- Refused at start ------------------------------------------------------------------------------


def test_a_model_without_a_price_is_refused_at_start_naming_the_variant(owner, endpoint):
    experiment = experiment_of(owner, another(endpoint, model=UNLISTED), budget=Decimal("1"))

    refused(experiment, owner, r"variant 'a': the model endpoint 'endpoint-\d+' has no price, so a budget cannot hold its calls: "
                               r"set its prices per token in the model catalog")  # fmt: skip

    services.experiment_budget_set(experiment=experiment, actor=owner.user, budget_usd=None)
    assert services.experiment_start(experiment=experiment, actor=owner.user).status == "running"  # without a budget it may run


def test_a_model_whose_longest_answer_is_unknown_is_refused_until_max_tokens_is_set(owner, endpoint):
    unlisted = priced(another(endpoint, model=UNLISTED))
    experiment = experiment_of(owner, unlisted, budget=Decimal("1"))

    refused(experiment, owner, "variant 'a': LiteLLM does not know the longest answer of 'openai/promptlab-unlisted-model', "
                               "so a budget cannot hold its calls: set max_tokens")  # fmt: skip

    capped = experiment_of(MembershipFactory(role=Role.OWNER), unlisted, budget=Decimal("1"), params={"max_tokens": 100})
    assert services.experiment_start(experiment=capped, actor=capped.created_by).status == "running"


def test_a_judge_without_a_price_is_refused_at_start(owner, endpoint):
    judge = judge_of(owner, priced(endpoint), judged_by=another(endpoint, model=UNLISTED).name)
    experiment = experiment_of(owner, endpoint, budget=Decimal("1"), evaluators=[judge])

    refused(experiment, owner, r"evaluator 'judge': the model endpoint 'endpoint-\d+' has no price")


def test_a_judge_in_an_items_own_assertions_without_a_price_is_refused_at_start(owner, endpoint):
    judge_of(owner, priced(endpoint))
    experiment = experiment_of(owner, endpoint, budget=Decimal("1"))
    unpriced = another(endpoint, model=UNLISTED)
    assertions = evaluation_services.item_assertions_validate(
        owner.project, [{"kind": "llm_judge", "config": {"rubric": "rubric", "endpoint": unpriced.name}}], "row 3"
    )
    DatasetItem.objects.filter(dataset=experiment.dataset, row=3).update(assertions=assertions)

    refused(experiment, owner, rf"row 3: its llm_judge assertion: the model endpoint '{unpriced.name}' has no price")


# --- What is held ------------------------------------------------------------------------------------


@pytest.mark.parametrize("params, hold", [({"max_tokens": 20}, Decimal("0.00002")), ({}, LONGEST * OUT)], ids=["max_tokens", "longest"])
def test_a_run_holds_its_max_tokens_else_the_models_longest_answer(owner, endpoint, llm_server, monkeypatch, params, hold):
    # Prompts are free here, so a run holds exactly its answer's cap at 1e-6 USD a token.
    priced(endpoint, input_usd=Decimal(0))
    held_during_call = []
    complete = gateway.complete

    def spy(**kwargs):
        held_during_call.append(Experiment.objects.get().reserved_usd)
        return complete(**kwargs)

    monkeypatch.setattr(gateway, "complete", spy)
    experiment = experiment_of(owner, endpoint, items=1, params=params, budget=hold)
    services.experiment_start(experiment=experiment, actor=owner.user)
    services.experiment_drain(experiment_id=experiment.pk)

    run = Run.objects.get()
    experiment.refresh_from_db()
    assert run.status == RunStatus.DONE and held_during_call == [hold]
    assert experiment.spent_usd == run.cost_usd == 6 * OUT and experiment.reserved_usd == run.reserved_usd == 0

    tighter = experiment_of(MembershipFactory(role=Role.OWNER), endpoint, items=1, params=params, budget=hold - Decimal("0.00000001"))
    services.experiment_start(experiment=tighter, actor=tighter.created_by)
    services.experiment_drain(experiment_id=tighter.pk)

    skipped = tighter.runs.get()
    assert (skipped.status, skipped.error_kind) == (RunStatus.SKIPPED, "budget")
    assert skipped.error == (f"The experiment's budget is reached: this call could cost up to ${hold:.8f}, more than is left. "
                             "Raise the budget and resume the experiment to make it.")  # fmt: skip
    assert len(llm_server.requests) == 1  # the tighter one called nothing


def test_estimates_cap_the_answer_at_max_tokens_else_the_longest_from_litellm(endpoint):
    assert estimates.answer_tokens(endpoint, {"max_tokens": 20}) == 20
    assert estimates.answer_tokens(endpoint, {}) == LONGEST
    assert estimates.answer_tokens(another(endpoint, model=UNLISTED), {}) is None


def test_a_judge_call_is_held_and_its_cost_spent_from_the_budget(owner, endpoint, llm_server):
    judge = judge_of(owner, priced(endpoint), params={"max_tokens": 10})
    run = RunFactory(experiment__project=owner.project, experiment__budget_usd=Decimal("1"), output="The answer is 42.")
    evaluation_services.experiment_evaluators_set(experiment=run.experiment, actor=owner.user, evaluators=[judge])
    llm_server.script(Scripted.content(JUDGEMENT))

    evaluation_services.score_run(run_id=run.pk)

    score = Score.objects.get()
    run.experiment.refresh_from_db()
    assert score.status == ScoreStatus.OK and score.reserved_usd == 0
    assert score.cost_usd == 8 * IN + 4 * OUT  # "Grade: The answer is 42." (5 words + 3), answered in 4 words
    assert run.experiment.spent_usd == score.cost_usd and run.experiment.reserved_usd == 0


def test_a_judge_call_the_budget_cannot_hold_is_not_made_and_errors_for_the_budget(owner, endpoint, llm_server):
    judge = judge_of(owner, priced(endpoint))  # no max_tokens: it holds 16384 answer tokens, 0.016384 USD and more
    run = RunFactory(experiment__project=owner.project, experiment__budget_usd=Decimal("0.01"))
    evaluation_services.experiment_evaluators_set(experiment=run.experiment, actor=owner.user, evaluators=[judge])

    outcome = evaluation_services.score_run(run_id=run.pk)

    score = Score.objects.get()
    assert (score.status, score.error_kind, score.retryable, outcome.retry_ids) == (ScoreStatus.ERRORED, "budget", False, ())
    assert score.reason.startswith("The experiment's budget is reached: this call could cost up to $0.01")
    assert llm_server.requests == []
    run.experiment.refresh_from_db()
    assert run.experiment.spent_usd == run.experiment.reserved_usd == 0


# --- The forecast --------------------------------------------------------------------------------------


def test_the_forecast_counts_the_judge_calls(owner, endpoint):
    priced(endpoint, input_usd=Decimal(0))  # answers only: 20 tokens a run, 50 a judgement, at 1e-6 USD
    judge = judge_of(owner, endpoint, params={"max_tokens": 50})
    experiment = experiment_of(owner, endpoint, params={"max_tokens": 20}, evaluators=[judge])

    forecast = services.experiment_forecast(experiment)

    (part,) = forecast.parts
    assert (part.name, part.calls, part.summary, part.usd) == ("scoring", 10, "10 judge calls", Decimal("0.0005"))
    assert forecast.calls == 10 and forecast.usd == Decimal("0.0002") + Decimal("0.0005")
    html = render_to_string("experiments/partials/forecast.html", {"forecast": forecast})
    assert "scoring: 10 judge calls, ~$0.0005" in html and "$0.0007" in html

    # The new-experiment form forecasts a draft not saved yet, with the evaluators ticked.
    variant = Variant(name="a", prompt=experiment.variants.get().prompt, version=1, endpoint=endpoint, params={"max_tokens": 20})
    unsaved = services.variants_forecast(dataset=experiment.dataset, variants=[variant], repeats=2, attach={"evaluators": [judge]})
    assert unsaved.parts[0].summary == "20 judge calls" and unsaved.usd == Decimal("0.0014")


def test_the_forecast_says_what_has_no_price(owner, endpoint):
    judge = judge_of(owner, priced(endpoint), params={"max_tokens": 50}, judged_by=another(endpoint, model=UNLISTED).name)
    experiment = experiment_of(owner, endpoint, evaluators=[judge])

    forecast = services.experiment_forecast(experiment)

    assert forecast.usd is None and forecast.parts[0].usd is None
    assert forecast.unpriced == (f"evaluator 'judge': the model endpoint '{judge.config['endpoint']}' has no price, so a budget "
                                 "cannot hold its calls: set its prices per token in the model catalog",)  # fmt: skip


# --- Raising the budget --------------------------------------------------------------------------------


def test_a_budget_is_never_set_below_what_is_spent(owner, endpoint):
    experiment = experiment_of(owner, endpoint, budget=Decimal("1"))
    services.experiment_start(experiment=experiment, actor=owner.user)
    Experiment.objects.filter(pk=experiment.pk).update(spent_usd=Decimal("0.5"))

    with pytest.raises(Invalid, match=r"The experiment has spent \$0.50000000 already: a budget cannot be less"):
        services.experiment_budget_set(experiment=experiment, actor=owner.user, budget_usd=Decimal("0.4"))

    assert services.experiment_budget_set(experiment=experiment, actor=owner.user, budget_usd=Decimal("0.6")).budget_usd == Decimal("0.6")


def test_raising_the_budget_through_the_api_and_resuming_runs_what_it_skipped(owner, endpoint, llm_server, client):
    # Each run holds 12 prompt tokens (LiteLLM's count) and 16384 answer tokens: 0.017584 USD; it costs 0.000606.
    experiment = experiment_of(owner, priced(endpoint), items=5, budget=Decimal("0.019"))
    services.experiment_start(experiment=experiment, actor=owner.user)
    services.experiment_drain(experiment_id=experiment.pk)
    counts = services.experiment_counts(experiment)
    experiment.refresh_from_db()
    assert (counts["done"], counts["skipped"]) == (3, 2)  # a fourth would leave 0.019 - 3 x 0.000606 < 0.017584
    assert experiment.spent_usd == 3 * RUN_COST
    client.force_login(owner.user)
    shown = BeautifulSoup(client.get(f"/experiments/{experiment.pk}/").content, "html.parser").select_one("#experiment-progress .budget")
    assert shown.get_text().startswith("Budget $0.0190: $0.0018 spent on runs and scoring, $0.0000 held by calls in flight. Raise it")
    api = client_with(api_keys.api_key_create(project=owner.project, actor=owner.user, name="ci", scopes=["read", "run"])[1])

    too_low = api.post(f"/api/v1/experiments/{experiment.pk}/budget/", {"budget_usd": "0.001"}, format="json")
    raised = api.post(f"/api/v1/experiments/{experiment.pk}/budget/", {"budget_usd": "0.05"}, format="json")
    resumed = api.post(f"/api/v1/experiments/{experiment.pk}/resume/")

    assert too_low.status_code == 400 and "a budget cannot be less" in error_of(too_low)["message"]
    assert raised.status_code == 200 and raised.json()["budget_usd"] == "0.05000000"
    assert resumed.json()["status"] == "running" and resumed.json()["counts"]["pending"] == 2
    services.experiment_drain(experiment_id=experiment.pk)
    experiment.refresh_from_db()
    assert services.experiment_counts(experiment)["done"] == 5 and experiment.spent_usd == 5 * RUN_COST
    assert len(llm_server.requests) == 5


def test_the_admin_raises_the_budget_of_a_started_experiment(owner, endpoint, client):
    experiment = experiment_of(owner, endpoint, budget=Decimal("1"))
    services.experiment_start(experiment=experiment, actor=owner.user)
    Experiment.objects.filter(pk=experiment.pk).update(spent_usd=Decimal("0.5"))
    client.force_login(owner.user)
    url = f"/admin/experiments/experiment/{experiment.pk}/change/"

    below = client.post(url, {"budget_usd": "0.25", "name": "renamed"})
    raised = client.post(url, {"budget_usd": "2", "name": "renamed"})

    assert below.status_code == 200 and "a budget cannot be less" in below.content.decode()
    assert raised.status_code == 302
    experiment.refresh_from_db()
    assert experiment.budget_usd == Decimal("2") and experiment.name == "budgeted"  # the rest stays read-only


# --- On a real worker ------------------------------------------------------------------------------------


def settled(experiment) -> bool:
    """No run left to make, and every answered run scored for good (a budget error counts)."""
    runs = Run.objects.filter(experiment=experiment)
    scores = Score.objects.filter(run__experiment=experiment)
    if runs.filter(status__in=[RunStatus.PENDING, RunStatus.RUNNING]).exists():
        return False
    unsettled = scores.filter(Q(status=ScoreStatus.PENDING) | Q(status=ScoreStatus.ERRORED, retryable=True))
    return scores.count() == runs.filter(status=RunStatus.DONE).count() and not unsettled.exists()


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} after {timeout}s"
        time.sleep(0.3)


def spent_on_calls(experiment) -> Decimal:
    runs = Run.objects.filter(experiment=experiment).aggregate(total=Sum("cost_usd"))["total"] or 0
    scores = Score.objects.filter(run__experiment=experiment).aggregate(total=Sum("cost_usd"))["total"] or 0
    return runs + scores


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_runs_and_judge_calls_stay_within_the_budget_and_resume_once_it_is_raised(owner, endpoint, llm_server):
    # Without max_tokens a run holds 0.017584 USD and costs 0.000606; its judgement holds 0.018184 and
    # costs 0.001004. In 0.025 USD at most a dozen of the twenty runs fit (fewer as judgements are
    # made between them), then no call does.
    judge_server = FakeOpenAI().start()
    judge_server.script(*[Scripted.content(JUDGEMENT)] * 60)
    judge = judge_of(owner, priced(ModelEndpointFactory(api_base=judge_server.base_url, api_key_env=endpoint.api_key_env)))
    budget = Decimal("0.025")
    experiment = experiment_of(owner, priced(endpoint), items=20, budget=budget, evaluators=[judge], concurrency=2)
    worker = start_worker(concurrency=3, name="budget")
    try:
        services.experiment_start(experiment=experiment, actor=owner.user)
        wait_until(lambda: settled(experiment), 180, "runs or scores still open")

        experiment.refresh_from_db()
        counts = services.experiment_counts(experiment)
        assert counts["done"] > 0 and counts["skipped"] > 0 and counts["done"] + counts["skipped"] == 20
        assert set(experiment.runs.filter(status=RunStatus.SKIPPED).values_list("error_kind", flat=True)) == {"budget"}
        assert experiment.spent_usd == spent_on_calls(experiment) <= budget and experiment.reserved_usd == 0
        judged = Score.objects.filter(run__experiment=experiment, status=ScoreStatus.OK).count()
        # The runs stop once more than 0.007416 is spent; had every run been judged, the last judgement would
        # have been held with more than 0.006816 spent: so one at least was refused for the budget.
        unjudged = Score.objects.filter(run__experiment=experiment).exclude(status=ScoreStatus.OK)
        assert unjudged.exists() and set(unjudged.values_list("error_kind", flat=True)) == {"budget"}
        assert len(judge_server.requests) == judged and len(llm_server.requests) == counts["done"]

        services.experiment_budget_set(experiment=experiment, actor=owner.user, budget_usd=Decimal("0.06"))
        services.experiment_resume(experiment=experiment, actor=owner.user)
        wait_until(lambda: settled(experiment) and Score.objects.filter(run__experiment=experiment, status=ScoreStatus.OK).count() == 20,
                   180, "not every run answered and judged")  # fmt: skip
    finally:
        stop(worker)
        judge_server.stop()

    experiment.refresh_from_db()
    assert services.experiment_counts(experiment)["done"] == 20
    assert experiment.spent_usd == spent_on_calls(experiment) == 20 * (RUN_COST + 10 * IN + 4 * OUT) <= Decimal("0.06")
    assert experiment.reserved_usd == 0 and not Score.objects.filter(reserved_usd__gt=0).exists()
    assert len(llm_server.requests) == 20 and len(judge_server.requests) == 20  # no call made twice
