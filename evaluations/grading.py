"""The grading rule, written once: which checks grade a run, and whether it passes.

A run's checks are every enabled evaluator attached to its experiment (they apply to every
item, as promptfoo's `defaultTest` does) and its dataset item's own assertions. Each check
scores the run from 0 to 1 and passes or fails it. Then, as promptfoo grades a test:

- the run's score is the weighted mean of its checks' scores (0 when the weights sum to 0);
- with the item's threshold, the run passes when its score is at least the threshold;
- without one, it passes when every check passes (a check of weight 0 always passes).

A run whose call failed, or one of whose checks errored, is errored: neither a pass nor a
failure. A run with a check still to be scored has no verdict yet. In an experiment that has
no evaluator and no item assertion at all, nothing is graded; otherwise a run with no check
passes with a score of 1, as promptfoo's test without assertions does.

Scoring, the comparison, matrix filters, analytics, gates, the API and the promptfoo export
all grade through `experiment_grades`, so they never disagree.
"""

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from evaluations import selectors
from evaluations.models import Evaluator, ScoreStatus
from experiments.models import Experiment, RunStatus

INLINE_PREFIX = "assert-"
PENDING = "pending"  # a check with no score yet


@dataclass(frozen=True)
class CheckSpec:
    """One check that grades a run, before any score."""

    name: str  # what it reports under: the evaluator's name, or the item assertion's metric (else its kind)
    weight: float
    evaluator_id: int | None  # None: an item assertion that has not been scored anywhere yet
    version: int = 1
    assertion: dict | None = None  # the item's assertion, for an item check


@dataclass(frozen=True)
class CheckResult:
    spec: CheckSpec
    status: str  # ok, errored or pending
    value: float | None = None
    passed: bool | None = None
    reason: str = ""

    @property
    def counts_as_passed(self) -> bool:
        return bool(self.passed) or self.spec.weight == 0


@dataclass(frozen=True)
class Grade:
    passed: bool | None  # None: errored, pending, or nothing grades it
    score: float | None
    errored: bool = False
    pending: bool = False
    reason: str = ""
    checks: tuple[CheckResult, ...] = ()

    @property
    def graded(self) -> bool:
        return self.passed is not None


def grade(checks: Sequence[CheckResult], threshold: float | None, *, call_failed: bool = False,
          empty_passes: bool = True) -> Grade:  # fmt: skip
    """The rule itself (see the module's docstring)."""
    checks = tuple(checks)
    if call_failed:
        return Grade(None, None, errored=True, reason="The call failed.", checks=checks)
    if errored := [check for check in checks if check.status == ScoreStatus.ERRORED]:
        return Grade(None, None, errored=True, reason=f"{errored[0].spec.name} errored: {errored[0].reason}", checks=checks)
    if any(check.status == PENDING for check in checks):
        return Grade(None, None, pending=True, reason="Still being scored.", checks=checks)
    if not checks:
        return Grade(True, 1.0, reason="No assertions.") if empty_passes else Grade(None, None, reason="Nothing grades this run.")
    total = sum(check.spec.weight for check in checks)
    score = sum(check.value * check.spec.weight for check in checks) / total if total > 0 else 0.0
    if threshold is not None:
        passed = score >= threshold
        return Grade(passed, score, reason=f"Weighted score {score:.2f} {'≥' if passed else '<'} threshold {threshold:g}.", checks=checks)
    failed = [check for check in checks if not check.counts_as_passed]
    reason = f"{failed[0].spec.name}: {failed[0].reason}" if failed else "Every check passed."
    return Grade(not failed, score, reason=reason, checks=checks)


def assertion_digest(assertion: dict) -> str:
    """What makes two item assertions the same check: kind, config, threshold and inversion
    (weight and metric are the item's, not the check's)."""
    identity = {key: assertion.get(key) for key in ("kind", "config", "threshold", "inverted")}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:24]


def inline_name(assertion: dict) -> str:
    return f"{INLINE_PREFIX}{assertion_digest(assertion)}"


def item_check_name(assertion: dict) -> str:
    return assertion.get("metric") or assertion["kind"]


@dataclass
class ExperimentChecks:
    """What grades each run of one experiment: its attached evaluators and each item's assertions."""

    attached: list[CheckSpec]
    items: dict[int, tuple[list[CheckSpec], float | None]] = field(default_factory=dict)  # item id -> (specs, threshold)

    @property
    def grades_anything(self) -> bool:
        return bool(self.attached) or any(specs for specs, _ in self.items.values())

    def for_item(self, item_id: int) -> tuple[list[CheckSpec], float | None]:
        specs, threshold = self.items.get(item_id, ([], None))
        return [*self.attached, *specs], threshold


def experiment_checks(experiment: Experiment) -> ExperimentChecks:
    """The checks of the experiment's runs, read in three queries."""
    attached = [
        CheckSpec(name=name, weight=weight, evaluator_id=pk, version=version)
        for pk, name, weight, version in selectors.evaluators_of_experiment(experiment_id=experiment.pk).values_list(
            "pk", "name", "weight", "version"
        )
    ]
    items = selectors.graded_items(dataset_id=experiment.dataset_id)
    names = {inline_name(assertion) for assertions, _ in items.values() for assertion in assertions}
    inline = dict(
        Evaluator.objects.filter(project_id=experiment.project_id, inline=True, name__in=names).values_list("name", "pk")
    )
    checks = ExperimentChecks(attached=attached)
    for item_id, (assertions, threshold) in items.items():
        specs = [
            CheckSpec(name=item_check_name(a), weight=a.get("weight", 1.0), evaluator_id=inline.get(inline_name(a)), assertion=a)
            for a in assertions
        ]
        checks.items[item_id] = (specs, threshold)
    return checks


@dataclass(frozen=True)
class RunGrade:
    run_id: int
    variant_id: int
    item_id: int
    repeat: int
    status: str  # the run's
    latency_ms: float | None
    cost_usd: Decimal | None
    grade: Grade | None  # None for a run that did not run (yet): pending, skipped, cancelled


def experiment_grades(experiment: Experiment, *, run_ids: Iterable[int] | None = None) -> list[RunGrade]:
    """Every run of the experiment (or those of `run_ids`) with its grade, in run order."""
    checks = experiment_checks(experiment)
    scores = selectors.experiment_score_map(experiment=experiment, run_ids=run_ids)
    graded = []
    for run in selectors.experiment_run_rows(experiment=experiment, run_ids=run_ids):
        result = None
        if run["status"] in (RunStatus.DONE, RunStatus.FAILED):
            specs, threshold = checks.for_item(run["item_id"])
            results = [_result(spec, scores.get((run["id"], spec.evaluator_id, spec.version))) for spec in specs]
            result = grade(results, threshold, call_failed=run["status"] == RunStatus.FAILED, empty_passes=checks.grades_anything)
        graded.append(
            RunGrade(run_id=run["id"], variant_id=run["variant_id"], item_id=run["item_id"], repeat=run["repeat"], status=run["status"],
                     latency_ms=run["latency_ms"], cost_usd=run["cost_usd"], grade=result)  # fmt: skip
        )
    return graded


def _result(spec: CheckSpec, row: dict | None) -> CheckResult:
    if row is None or row["status"] == ScoreStatus.PENDING:
        return CheckResult(spec, PENDING)
    return CheckResult(spec, row["status"], row["value"], row["passed"], row["reason"])
