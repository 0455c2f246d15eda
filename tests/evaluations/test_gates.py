"""Promotion gates: production moves to a version only after its gate experiment passes, or on
an admin's written override; a rollback returns only to a version that still passes its gate."""

import pytest

from evaluations import apis, gates, services
from evaluations.models import GateDecision
from experiments import services as experiments
from experiments.models import DatasetItem, ExperimentStatus
from promptlab.accounts.models import Role
from promptlab.errors import Forbidden, Invalid
from prompts import services as prompts
from prompts.models import Label, LabelMove
from tests.factories import DatasetFactory, MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(endpoint):
    """A prompt whose production v1 says "Answer", a v2 that says "Reply", a dataset and a gate
    whose evaluator wants the answer to contain `wanted` (set per test)."""
    owner = MembershipFactory(role=Role.OWNER)
    prompt = prompts.prompt_create(project=owner.project, actor=owner.user, name="faq", message="v1", template="Answer: {{ q }}", endpoint=endpoint)
    prompts.label_move(prompt=prompt, actor=owner.user, label="production", version=1)
    prompt = prompts.prompt_update(prompt=prompt, actor=owner.user, message="v2", template="Reply: {{ q }}")
    dataset = DatasetFactory(project=owner.project)
    DatasetItem.objects.bulk_create([DatasetItem(dataset=dataset, row=n, vars={"q": f"question {n}"}) for n in range(1, 13)])
    return owner, prompt, dataset


def gate_with(shop, wanted: str, **rule):
    owner, prompt, dataset = shop
    check = services.evaluator_create(project=owner.project, actor=owner.user, name="says-it", kind="contains", config={"value": wanted})
    return gates.gate_set(prompt=prompt, actor=owner.user, dataset=dataset, evaluators=[check], **rule)


def run_gate(shop, version: int):
    """Start the gate experiment, make its calls here and score every run."""
    owner, prompt, _ = shop
    experiment = gates.gate_experiment_start(prompt=prompt, version=version, actor=owner.user)
    experiments.experiment_drain(experiment_id=experiment.pk)
    for run_id in experiment.runs.values_list("pk", flat=True):
        services.score_run(run_id=run_id)
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.FINISHED
    return experiment


def production(prompt) -> int:
    return Label.objects.get(prompt=prompt, name="production").version


def test_without_a_gate_experiment_production_does_not_move(shop, llm_server):
    owner, prompt, _ = shop
    gate_with(shop, "fake answer")

    with pytest.raises(Invalid, match="Version 2 cannot go to production: no gate experiment has been run on version 2"):
        prompts.label_move(prompt=prompt, actor=owner.user, label="production", version=2)

    assert production(prompt) == 1 and not GateDecision.objects.exists()
    prompts.label_move(prompt=prompt, actor=owner.user, label="staging", version=2)  # other labels are not gated


def test_a_passing_gate_experiment_lets_production_move_and_is_recorded(shop, llm_server):
    owner, prompt, _ = shop
    gate_with(shop, "fake answer", min_pass_rate=0.9)
    experiment = run_gate(shop, 2)

    prompts.label_move(prompt=prompt, actor=owner.user, label="production", version=2)

    assert production(prompt) == 2
    decision = GateDecision.objects.get()
    assert decision.passed and decision.version == 2 and decision.experiment == experiment
    assert "pass rate 100.0% meets the required 90.0%" in decision.reason
    assert LabelMove.objects.filter(label="production", to_version=2).get().message.startswith("Gate passed: pass rate 100.0%")


def test_a_significant_regression_fails_the_gate(shop, llm_server):
    owner, prompt, _ = shop
    gate_with(shop, "Answer", min_pass_rate=0.0)  # v1's answers echo "Answer"; v2's do not
    run_gate(shop, 2)

    result = gates.gate_result(prompt=prompt, version=2)
    assert not result.passed
    assert result.reason.startswith("regression: the baseline passes more often than the candidate: +100.0 points")
    with pytest.raises(Invalid, match="regression"):
        prompts.label_move(prompt=prompt, actor=owner.user, label="production", version=2)
    assert production(prompt) == 1


def test_a_pass_rate_below_the_minimum_fails_the_gate(shop, llm_server):
    owner, prompt, _ = shop
    gate_with(shop, "question 1", min_pass_rate=0.5)  # only items 1, 10, 11 and 12 contain it: 4 of 12
    run_gate(shop, 2)

    result = gates.gate_result(prompt=prompt, version=2)

    assert not result.passed and result.reason == "pass rate 33.3% is below the required 50.0%"


def test_an_admin_overrides_a_gate_with_a_written_reason_and_a_rollback_is_gated_too(shop, llm_server):
    owner, prompt, _ = shop
    gate_with(shop, "fake answer")

    prompts.label_move(prompt=prompt, actor=owner.user, label="production", version=2, override_reason="Hotfix for the outage")

    assert production(prompt) == 2
    decision = GateDecision.objects.get()
    assert not decision.passed and decision.override_reason == "Hotfix for the outage" and decision.actor == owner.user
    assert "Gate overridden (no gate experiment has been run on version 2): Hotfix for the outage" in LabelMove.objects.first().message

    with pytest.raises(Invalid, match="cannot roll back to version 1: it no longer passes its gate"):
        prompts.label_rollback(prompt=prompt, actor=owner.user, label="production")
    assert production(prompt) == 2 and GateDecision.objects.count() == 1


def test_an_unfinished_gate_experiment_does_not_count(shop, llm_server):
    owner, prompt, _ = shop
    gate_with(shop, "fake answer")
    gates.gate_experiment_start(prompt=prompt, version=2, actor=owner.user)

    with pytest.raises(Invalid, match="the gate experiment on version 2 is running, not finished"):
        prompts.label_move(prompt=prompt, actor=owner.user, label="production", version=2)


def test_a_first_release_is_gated_on_its_pass_rate_alone(shop, llm_server):
    owner, prompt, _ = shop
    Label.objects.filter(prompt=prompt).delete()
    gate_with(shop, "fake answer")
    experiment = run_gate(shop, 2)

    assert [variant.name for variant in experiment.variants.all()] == ["candidate"]
    assert gates.gate_result(prompt=prompt, version=2).reason == "pass rate 100.0% meets the required 90.0%; no baseline to compare with"


def test_only_admins_set_gates(shop):
    owner, prompt, dataset = shop
    editor = MembershipFactory(project=owner.project, role=Role.EDITOR).user
    check = services.evaluator_create(project=owner.project, actor=owner.user, name="c", kind="contains", config={"value": "x"})

    with pytest.raises(Forbidden):
        gates.gate_set(prompt=prompt, actor=editor, dataset=dataset, evaluators=[check])
    with pytest.raises(Invalid, match="at least one evaluator"):
        gates.gate_set(prompt=prompt, actor=owner.user, dataset=dataset, evaluators=[])


def test_the_admin_sets_a_gate_and_ships_only_with_a_passing_gate_or_a_reason(shop, client, llm_server):
    owner, prompt, dataset = shop
    check = services.evaluator_create(project=owner.project, actor=owner.user, name="says-it", kind="contains", config={"value": "x"})
    client.force_login(owner.user)

    response = client.post("/admin/evaluations/promotiongate/add/", {
        "prompt": prompt.pk, "dataset": dataset.pk, "evaluators": [check.pk], "baseline_label": "production",
        "min_pass_rate": "0.8", "alpha": "0.05",
    })  # fmt: skip
    assert response.status_code == 302
    assert prompt.gate.min_pass_rate == 0.8 and list(prompt.gate.evaluators.all()) == [check]

    label_url = f"/admin/prompts/prompt/{prompt.pk}/label/"
    refused = client.post(label_url, {"label": "production", "version": 2}, follow=True)
    assert "Version 2 cannot go to production: no gate experiment has been run on version 2" in refused.content.decode()
    assert production(prompt) == 1

    client.post(label_url, {"label": "production", "version": 2, "override_reason": "Legal asked for the new wording"})
    assert production(prompt) == 2
    assert GateDecision.objects.get().override_reason == "Legal asked for the new wording"


def test_a_regression_on_one_evaluator_fails_the_gate_even_when_the_overall_rate_hides_it(shop, llm_server):
    # v1 echoes "Answer", v2 "Reply": each fails one of the two checks on every item, so the
    # overall pass rate (every check must pass) is 0% for both and shows no regression.
    owner, prompt, dataset = shop
    checks = [
        services.evaluator_create(project=owner.project, actor=owner.user, name=name, kind="contains", config={"value": value})
        for name, value in (("says-answer", "Answer"), ("says-reply", "Reply"))
    ]
    gate = gates.gate_set(prompt=prompt, actor=owner.user, dataset=dataset, evaluators=checks, min_pass_rate=0.0)
    experiment = run_gate(shop, 2)

    result = gates.gate_result(prompt=prompt, version=2)

    assert not result.passed
    assert apis.comparison_document(experiment)["gate"] == {"passed": False, "reason": result.reason}  # promptlab-eval reads it
    assert result.reason.startswith("significantly worse than the baseline on says-answer (100% → 0%, p < 0.001")
    assert "says-reply" not in result.reason  # an improvement is no regression
    gate.no_evaluator_regression = False
    gate.save()
    assert gates.gate_result(prompt=prompt, version=2).passed
