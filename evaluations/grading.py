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
all grade through `run_grades` (or `experiment_grades`), so they never disagree.
"""

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import QuerySet

from evaluations import selectors
from evaluations.models import Evaluator, ScoreStatus
from experiments.models import Experiment, Run, RunStatus

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
    return checks_of([experiment.pk])[experiment.pk]


def checks_of(experiment_ids: Iterable[int]) -> dict[int, ExperimentChecks]:
    """The checks of several experiments' runs, in four queries however many there are."""
    experiments = list(Experiment.objects.filter(pk__in=list(experiment_ids)).values("pk", "dataset_id", "project_id"))
    attached = defaultdict(list)
    for link in selectors.attached_evaluators(experiment_ids=[e["pk"] for e in experiments]):
        attached[link["experiment_id"]].append(
            CheckSpec(name=link["name"], weight=link["weight"], evaluator_id=link["evaluator_id"], version=link["version"])
        )
    items = selectors.graded_items(dataset_ids={e["dataset_id"] for e in experiments})
    names = {inline_name(assertion) for _, assertions, _ in items.values() for assertion in assertions}
    inline = {
        (project_id, name): pk
        for pk, project_id, name in Evaluator.objects.filter(inline=True, name__in=names).values_list("pk", "project_id", "name")
    }
    checks = {}
    for experiment in experiments:
        found = checks[experiment["pk"]] = ExperimentChecks(attached=attached[experiment["pk"]])
        for item_id, (dataset_id, assertions, threshold) in items.items():
            if dataset_id != experiment["dataset_id"]:
                continue
            specs = [
                CheckSpec(name=item_check_name(a), weight=a.get("weight", 1.0), assertion=a,
                          evaluator_id=inline.get((experiment["project_id"], inline_name(a))))
                for a in assertions
            ]  # fmt: skip
            found.items[item_id] = (specs, threshold)
    return checks


@dataclass(frozen=True)
class RunGrade:
    run_id: int
    experiment_id: int
    variant_id: int
    item_id: int
    repeat: int
    status: str  # the run's
    latency_ms: float | None
    cost_usd: Decimal | None
    cost_known: bool  # False when the call was answered (tokens counted) by a model without a price
    grade: Grade | None  # None for a run that did not run (yet): pending, skipped, cancelled


def experiment_grades(experiment: Experiment, *, run_ids: Iterable[int] | None = None,
                      checks: ExperimentChecks | None = None) -> list[RunGrade]:  # fmt: skip
    """Every run of the experiment (or those of `run_ids`) with its grade, in run order."""
    runs = experiment.runs.all() if run_ids is None else experiment.runs.filter(pk__in=list(run_ids))
    return run_grades(runs, checks={experiment.pk: checks} if checks else None)


def run_grades(runs: QuerySet[Run], *, checks: dict[int, ExperimentChecks] | None = None) -> list[RunGrade]:
    """The runs with their grades, in run order: a fixed number of queries for any number of
    runs and experiments."""
    rows = list(selectors.run_rows(runs=runs))
    checks = checks or checks_of({row["experiment_id"] for row in rows})
    scores = selectors.score_map(runs=runs)
    graded = []
    for run in rows:
        result = None
        if run["status"] in (RunStatus.DONE, RunStatus.FAILED):
            experiment = checks[run["experiment_id"]]
            specs, threshold = experiment.for_item(run["item_id"])
            results = [_result(spec, scores.get((run["id"], spec.evaluator_id, spec.version))) for spec in specs]
            result = grade(results, threshold, call_failed=run["status"] == RunStatus.FAILED, empty_passes=experiment.grades_anything)
        graded.append(RunGrade(run_id=run["id"], experiment_id=run["experiment_id"], variant_id=run["variant_id"], item_id=run["item_id"],
                               repeat=run["repeat"], status=run["status"], latency_ms=run["latency_ms"], cost_usd=run["cost_usd"],
                               cost_known=run["cost_usd"] is not None or run["prompt_tokens"] is None,
                               grade=result))  # fmt: skip
    return graded


def _result(spec: CheckSpec, row: dict | None) -> CheckResult:
    if row is None or row["status"] == ScoreStatus.PENDING:
        return CheckResult(spec, PENDING)
    return CheckResult(spec, row["status"], row["value"], row["passed"], row["reason"])
