"""Experiments end to end through the services: start, run (in process), budget, actions."""

from decimal import Decimal

import pytest

from experiments import services
from experiments.models import DatasetItem, ExperimentStatus, Run, RunStatus
from promptlab.accounts.models import Role
from promptlab.errors import Invalid
from prompts import services as prompt_services
from tests.experiments.conftest import make
from tests.factories import MembershipFactory, ModelEndpointFactory
from tests.fake_openai import Scripted

pytestmark = pytest.mark.django_db


def test_start_freezes_labels_and_creates_every_run(setup, django_capture_on_commit_callbacks):
    owner, prompt, *_ = setup
    experiment = make(setup, repeats=2)
    with django_capture_on_commit_callbacks() as enqueued:
        services.experiment_start(experiment=experiment, actor=owner.user)

    assert {v.name: v.version for v in experiment.variants.all()} == {"prod": 1, "v2": 2}
    assert experiment.runs.count() == 5 * 2 * 2
    assert len(enqueued) == experiment.concurrency
    prompt_services.label_move(prompt=prompt, actor=owner.user, label="production", version=2)
    assert experiment.variants.get(name="prod").version == 1  # moving the label later changes nothing


def test_runs_execute_once_each_and_counts_agree(setup, llm_server):
    owner, *_ = setup
    experiment = make(setup)
    services.experiment_start(experiment=experiment, actor=owner.user)

    assert services.experiment_drain(experiment_id=experiment.pk) == 10

    experiment.refresh_from_db()
    counts = services.experiment_counts(experiment)
    assert experiment.status == ExperimentStatus.FINISHED
    assert counts["done"] == counts["total"] == 10 and len(llm_server.requests) == 10
    assert experiment.spent_usd == counts["spent_usd"] > 0 and experiment.reserved_usd == 0
    run = experiment.runs.filter(variant__name="v2").first()
    assert run.messages == [{"role": "user", "content": f"Reply briefly: {run.item.vars['question']}"}]
    assert run.output.startswith("fake answer to: Reply briefly")


def test_a_claimed_run_is_not_claimed_again_until_its_lease_expires(setup):
    owner, *_ = setup
    experiment = make(setup)
    services.experiment_start(experiment=experiment, actor=owner.user)

    first = services.run_claim(experiment_id=experiment.pk)
    second = services.run_claim(experiment_id=experiment.pk)
    assert first.pk != second.pk
    Run.objects.filter(pk=first.pk).update(lease_until="2000-01-01T00:00Z")  # its worker died
    ids = {services.run_claim(experiment_id=experiment.pk).pk for _ in range(9)}
    assert first.pk in ids


def test_a_stale_claim_cannot_overwrite_a_newer_one(setup, llm_server):
    owner, *_ = setup
    experiment = make(setup)
    services.experiment_start(experiment=experiment, actor=owner.user)
    stale = services.run_claim(experiment_id=experiment.pk)
    Run.objects.filter(pk=stale.pk).update(lease_until="2000-01-01T00:00Z")
    fresh = services.run_claim(experiment_id=experiment.pk)
    assert fresh.pk == stale.pk

    services.run_execute(run=fresh)
    services.run_execute(run=stale)  # the dead worker's late answer

    assert Run.objects.get(pk=stale.pk).claims == 2
    assert Run.objects.get(pk=stale.pk).status == RunStatus.DONE


def test_the_budget_stops_spending(setup, llm_server):
    # Without max_tokens each run holds gpt-4o-mini's longest answer (16384 tokens at 6e-7 USD: about
    # 0.00983 USD) while it costs about 4e-6: a handful of runs fit in 0.00985 USD, then none does.
    owner, *_ = setup
    experiment = make(setup, budget_usd=Decimal("0.00985"))
    services.experiment_start(experiment=experiment, actor=owner.user)

    services.experiment_drain(experiment_id=experiment.pk)

    counts = services.experiment_counts(Run.objects.first().experiment)
    experiment.refresh_from_db()
    assert counts["skipped"] > 0 and counts["done"] > 0
    assert experiment.spent_usd <= Decimal("0.00985") and experiment.reserved_usd == 0
    assert len(llm_server.requests) == counts["done"]
    assert set(experiment.runs.filter(status=RunStatus.SKIPPED).values_list("error_kind", flat=True)) == {"budget"}


def test_permanent_errors_are_recorded_and_only_errors_are_retried(setup, llm_server):
    owner, *_ = setup
    experiment = make(setup)
    services.experiment_start(experiment=experiment, actor=owner.user)
    llm_server.script(Scripted.error(400, "Invalid value for 'temperature'"))
    services.experiment_drain(experiment_id=experiment.pk)
    failed = experiment.runs.get(status=RunStatus.FAILED)
    assert failed.error_kind == "bad_request" and "Invalid value for 'temperature'" in failed.error

    services.experiment_retry_errors(experiment=experiment, actor=owner.user)
    services.experiment_drain(experiment_id=experiment.pk)

    assert services.experiment_counts(experiment)["done"] == 10 and len(llm_server.requests) == 11


def test_cancel_then_resume(setup, llm_server):
    owner, *_ = setup
    experiment = make(setup)
    services.experiment_start(experiment=experiment, actor=owner.user)
    services.experiment_cancel(experiment=experiment, actor=owner.user)
    assert services.experiment_drain(experiment_id=experiment.pk) == 0
    assert services.experiment_counts(experiment)["cancelled"] == 10

    services.experiment_resume(experiment=experiment, actor=owner.user)
    services.experiment_drain(experiment_id=experiment.pk)
    assert services.experiment_counts(experiment)["done"] == 10


def test_starting_with_a_missing_variable_is_refused_naming_row_and_variable(setup):
    owner, _, dataset, _ = setup
    DatasetItem.objects.create(dataset=dataset, row=6, vars={"other": "x"})
    experiment = make(setup)

    with pytest.raises(Invalid, match=r"row 6: question \(variant prod\)"):
        services.experiment_start(experiment=experiment, actor=owner.user)
    assert not Run.objects.exists()
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.DRAFT


def test_starting_with_a_disabled_model_is_refused(setup):
    owner, *_, endpoint = setup
    experiment = make(setup)
    endpoint.enabled = False
    endpoint.save()
    with pytest.raises(Invalid, match="is disabled"):
        services.experiment_start(experiment=experiment, actor=owner.user)
    assert not Run.objects.exists()


def test_viewers_cannot_start(setup):
    from promptlab.errors import Forbidden

    experiment = make(setup)
    viewer = MembershipFactory(project=experiment.project, role=Role.VIEWER)
    with pytest.raises(Forbidden):
        services.experiment_start(experiment=experiment, actor=viewer.user)


def test_an_endpoint_override_is_used(setup, llm_server):
    owner, prompt, dataset, endpoint = setup
    other = ModelEndpointFactory(model="openai/gpt-4o", api_base=endpoint.api_base, api_key_env=endpoint.api_key_env)
    experiment = services.experiment_create(
        project=owner.project, actor=owner.user, name="x", dataset=dataset,
        variants=[{"prompt": prompt, "version": 2, "endpoint": other, "params": {"temperature": 0.5}}],
    )  # fmt: skip
    services.experiment_start(experiment=experiment, actor=owner.user)
    services.experiment_drain(experiment_id=experiment.pk)
    assert {r["body"]["model"] for r in llm_server.requests} == {"gpt-4o"}
    assert {r["body"]["temperature"] for r in llm_server.requests} == {0.5}


def test_an_open_breaker_gives_the_run_back_without_calling(setup, llm_server, settings):
    from promptlab.llm import limits

    owner, *_, endpoint = setup
    settings.GATEWAY_BREAKER_FAILURES = 1
    settings.GATEWAY_BREAKER_COOLDOWN_SECONDS = 60
    limits.breaker_record_failure(endpoint)
    experiment = make(setup)
    services.experiment_start(experiment=experiment, actor=owner.user)
    run = services.run_claim(experiment_id=experiment.pk)

    services.run_execute(run=run)

    run.refresh_from_db()
    assert run.status == RunStatus.PENDING and llm_server.requests == []
    experiment.refresh_from_db()
    assert experiment.reserved_usd == 0


def test_the_forecast_counts_calls_tokens_and_dollars(setup, llm_server):
    owner, *_ = setup
    experiment = make(setup, repeats=2)

    forecast = services.experiment_forecast(experiment)

    assert forecast.calls == 5 * 2 * 2
    # "Answer: qN" / "Reply briefly: qN" in one user message: a handful of tokens each
    assert 5 * 2 * 2 * 5 <= forecast.prompt_tokens <= 5 * 2 * 2 * 15
    assert forecast.completion_tokens == 20 * 16384  # no max_tokens: gpt-4o-mini's longest answer, as a budget would hold
    expected = Decimal("1.5e-07") * forecast.prompt_tokens + Decimal("6e-07") * forecast.completion_tokens
    assert forecast.usd == expected

    services.experiment_start(experiment=experiment, actor=owner.user)
    services.experiment_drain(experiment_id=experiment.pk)
    again = services.experiment_forecast(experiment)
    assert again.completion_tokens < forecast.completion_tokens  # learnt from the runs just made


def test_an_unexpected_error_fails_the_run_instead_of_stranding_it(setup, monkeypatch):
    owner, *_ = setup
    experiment = make(setup)
    services.experiment_start(experiment=experiment, actor=owner.user)
    monkeypatch.setattr(services, "run_execute", lambda run, versions: 1 / 0)

    services.experiment_drain(experiment_id=experiment.pk)

    counts = services.experiment_counts(experiment)
    assert counts["failed"] == 10 and counts["running"] == 0
    assert experiment.runs.first().error == "internal error: ZeroDivisionError: division by zero"


def test_a_large_dataset_is_forecast_from_a_sample_scaled_up(setup, llm_server, monkeypatch):
    experiment = make(setup)
    exact = services.experiment_forecast(experiment)
    monkeypatch.setattr(services, "FORECAST_SAMPLE", 2)

    sampled = services.experiment_forecast(experiment)

    assert exact.sampled is None and sampled.sampled == 2
    assert sampled.calls == exact.calls == 10
    assert sampled.prompt_tokens == pytest.approx(exact.prompt_tokens, rel=0.2)
