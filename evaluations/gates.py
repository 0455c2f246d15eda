"""Promotion gates: `production` moves to a version only after a gate experiment on that
version passes, or when an admin overrides the gate with a written reason, which is recorded.

The gate experiment compares the version against the one the gate's baseline label points
at, on the gate's dataset, scored by its evaluators (and the items' own assertions). It
passes when the version's pass rate is at least the gate's minimum, McNemar's test finds no
significant regression overall and, unless the gate allows it, none on any one evaluator
(Holm-adjusted across every evaluator).
"""

from dataclasses import dataclass

import structlog
from django.db import transaction

from evaluations import comparison, services, statistics
from evaluations.models import Evaluator, GateDecision, GateRun, PromotionGate
from experiments import services as experiments
from experiments.models import Dataset, Experiment, ExperimentStatus
from promptlab.accounts.access import Action, authorize
from promptlab.errors import Invalid
from prompts import selectors as prompt_selectors
from prompts.models import Prompt

logger = structlog.get_logger(__name__)


@transaction.atomic
def gate_set(*, prompt: Prompt, actor, dataset: Dataset, evaluators: list[Evaluator], baseline_label: str = "production",
             min_pass_rate: float = 0.9, alpha: float = 0.05, no_evaluator_regression: bool = True) -> PromotionGate:  # fmt: skip
    """Require a passing gate experiment before `production` moves to a new version of the prompt."""
    authorize(actor, prompt.project, Action.MANAGE)
    if dataset.project_id != prompt.project_id or any(e.project_id != prompt.project_id for e in evaluators):
        raise Invalid("The gate's dataset and evaluators must belong to the prompt's project.")
    if not evaluators:
        raise Invalid("A gate needs at least one evaluator to decide what passing means.")
    if not 0 <= min_pass_rate <= 1:
        raise Invalid("The minimum pass rate is a share between 0 and 1 (0.9 = 90%).", details={"min_pass_rate": min_pass_rate})
    if not 0 < alpha < 1:
        raise Invalid("The significance level must be between 0 and 1 (usually 0.05).", details={"alpha": alpha})
    gate, _ = PromotionGate.objects.update_or_create(
        prompt=prompt, defaults={"dataset": dataset, "baseline_label": baseline_label, "min_pass_rate": min_pass_rate, "alpha": alpha,
                                 "no_evaluator_regression": no_evaluator_regression}
    )  # fmt: skip
    gate.evaluators.set(evaluators)
    logger.info("evaluations.gate_set", prompt_id=prompt.pk, dataset_id=dataset.pk)
    return gate


@transaction.atomic
def gate_experiment_start(*, prompt: Prompt, version: int, actor) -> Experiment:
    """Start the gate experiment for a version: baseline (the label, frozen at start) against it."""
    gate = _gate_of(prompt)
    if gate is None:
        raise Invalid(f"The prompt {prompt.name!r} has no promotion gate.")
    prompt_selectors.prompt_version(prompt=prompt, version=version)  # NotFound for a version that does not exist
    variants = [{"name": "candidate", "prompt": prompt, "version": version}]
    if prompt.labels.filter(name=gate.baseline_label).exists():  # else a first release: nothing to compare with
        variants.insert(0, {"name": "baseline", "prompt": prompt, "label": gate.baseline_label})
    experiment = experiments.experiment_create(
        project=prompt.project, actor=actor, name=f"gate: {prompt.name} v{version}", dataset=gate.dataset, variants=variants
    )
    services.experiment_evaluators_set(experiment=experiment, actor=actor, evaluators=list(gate.evaluators.all()))
    GateRun.objects.create(gate=gate, experiment=experiment, version=version)
    return experiments.experiment_start(experiment=experiment, actor=actor)


@dataclass(frozen=True)
class GateResult:
    passed: bool
    reason: str
    experiment: Experiment | None


def gate_result(*, prompt: Prompt, version: int) -> GateResult:
    """The verdict of the newest finished gate experiment on the version, once fully scored."""
    gate = _gate_of(prompt)
    if gate is None:
        return GateResult(True, "no gate", None)
    run = GateRun.objects.filter(gate=gate, version=version).select_related("experiment").first()
    if run is None:
        return GateResult(False, f"no gate experiment has been run on version {version}", None)
    experiment = run.experiment
    if experiment.status != ExperimentStatus.FINISHED:
        return GateResult(False, f"the gate experiment on version {version} is {experiment.status}, not finished", experiment)
    result = comparison.experiment_comparison(experiment=experiment)
    if result.pending:
        return GateResult(False, f"the gate experiment on version {version} is still being scored", experiment)
    *baseline, candidate = result.variants  # the candidate is the last variant
    versus = result.pair(baseline[0].id, candidate.id).passing if baseline else None
    passed, reason = statistics.gate_passes(candidate.summary, versus, min_pass_rate=gate.min_pass_rate, alpha=gate.alpha)
    if passed and baseline and gate.no_evaluator_regression and (worse := result.regressions(baseline[0].id, candidate.id)):
        return GateResult(False, f"significantly worse than the baseline on {'; '.join(worse)}", experiment)
    return GateResult(passed, reason, experiment)


def experiment_gate(*, experiment: Experiment) -> GateResult | None:
    """The verdict of the gate an experiment was started for; None when it is no gate experiment."""
    run = GateRun.objects.filter(experiment=experiment).select_related("gate__prompt").first()
    return None if run is None else gate_result(prompt=run.gate.prompt, version=run.version)


def check_promotion(*, prompt: Prompt, label: str, version: int, actor, override_reason: str, rollback: bool) -> str | None:
    """A prompts.checks label-move check: `production` needs a passing gate, or an admin's written override.
    A rollback too returns only to a version that still passes: it has no override (shipping a version
    that fails its gate is a move, whose override is written down)."""
    if label != "production" or _gate_of(prompt) is None:
        return None
    result = gate_result(prompt=prompt, version=version)
    if not result.passed and rollback:
        raise Invalid(
            f"Production cannot roll back to version {version}: it no longer passes its gate ({result.reason}). Move production "
            "to a version instead: a move may override the gate with a written reason.",
            details={"gate": result.reason, "experiment": result.experiment and result.experiment.pk},
        )  # fmt: skip
    if not result.passed and not override_reason:
        raise Invalid(
            f"Version {version} cannot go to production: {result.reason}. Run the gate experiment, or, as an admin, "
            "override the gate with a written reason.",
            details={"gate": result.reason, "experiment": result.experiment and result.experiment.pk},
        )  # fmt: skip
    if not result.passed:
        authorize(actor, prompt.project, Action.MANAGE)  # only an admin or owner overrides a gate
    GateDecision.objects.create(
        prompt=prompt, version=version, passed=result.passed, reason=result.reason, experiment=result.experiment,
        override_reason="" if result.passed else override_reason, actor=actor,
    )  # fmt: skip
    logger.info("evaluations.gate_decided", prompt_id=prompt.pk, version=version, passed=result.passed)
    return f"Gate passed: {result.reason}." if result.passed else f"Gate overridden ({result.reason}): {override_reason}"


def _gate_of(prompt: Prompt) -> PromotionGate | None:
    return PromotionGate.objects.filter(prompt=prompt).first()
