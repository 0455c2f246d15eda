"""An experiment's variants compared: per variant numbers, per pair a paired test and a verdict
in plain words, the same per evaluator (and named metric), and how well human raters agree.
Runs are graded by evaluations.grading; the numbers come from evaluations.statistics; this
module only turns grades and ratings into their inputs and the results into words."""

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from itertools import combinations

from evaluations import grading, selectors, statistics
from evaluations.grading import PENDING, RunGrade
from evaluations.models import RatingScale, ScoreStatus
from evaluations.statistics import PairResult, RunOutcome, VariantSummary
from experiments import selectors as experiment_selectors
from experiments.models import Experiment, RunStatus

ALPHA = 0.05


@dataclass(frozen=True)
class VariantResult:
    id: int
    name: str  # Variant.display: prompt, frozen version, the label it came from
    summary: VariantSummary


@dataclass(frozen=True)
class CheckVariant:
    """One evaluator (or metric) on one variant: its runs' verdicts by that check alone."""

    variant: VariantResult
    summary: VariantSummary
    pending: int  # runs whose score by this check is still to come


@dataclass(frozen=True)
class CheckPair:
    a: VariantResult
    b: VariantResult
    passing: PairResult  # Holm-adjusted across every evaluator x pair test of the experiment
    significant: bool


@dataclass(frozen=True)
class CheckComparison:
    """An evaluator attached to the experiment, or a metric of items' own assertions."""

    name: str
    variants: list[CheckVariant]
    pairs: list[CheckPair]


@dataclass(frozen=True)
class PairVerdict:
    a: VariantResult
    b: VariantResult
    passing: PairResult
    scores: PairResult
    pass_verdict: str
    score_verdict: str
    changes: list[str]  # each evaluator on which b differs significantly from a, in words

    @property
    def headline(self) -> str:
        """The overall verdict, then every significant change by evaluator: a variant that is
        better overall but worse on one evaluator is never called simply better."""
        return "; ".join([self.pass_verdict, *self.changes])


@dataclass(frozen=True)
class Agreement:
    alpha: float | None  # Krippendorff's alpha; None when no run has two raters or nothing varies
    raters: int
    runs_rated_twice: int


@dataclass(frozen=True)
class Comparison:
    variants: list[VariantResult]
    pairs: list[PairVerdict]
    checks: list[CheckComparison]  # per evaluator or metric, by name
    agreement: Agreement | None  # None until two people rated
    grades_anything: bool  # False: no evaluator is attached and no item has assertions
    pending: int  # answered runs still being scored: their verdicts are not in the numbers yet

    def variant(self, variant_id: int) -> VariantResult:
        return next(result for result in self.variants if result.id == variant_id)

    def pair(self, a_id: int, b_id: int) -> PairVerdict:
        return next(pair for pair in self.pairs if (pair.a.id, pair.b.id) == (a_id, b_id))

    def regressions(self, a_id: int, b_id: int) -> list[str]:
        """The evaluators on which b is significantly worse than a: 'tone (92% → 71%, p = 0.003)'."""
        return [f"{change.name} ({change.rates}, {change.p})" for change in _check_changes(self.checks, a_id, b_id) if not change.better]

    @property
    def tests(self) -> int:
        """How many evaluator x pair tests the Holm adjustment covered."""
        return sum(len(check.pairs) for check in self.checks)


def experiment_comparison(*, experiment: Experiment) -> Comparison:
    """Every variant of the experiment against every other on the same items, overall (by the
    grading rule) and per evaluator. Items are the unit: repeats of an item are averaged
    before any test. A run whose call or any check errored counts as errored, never as a
    failure or a zero; a run still being scored has no verdict yet. With several pairs, the
    overall p-values are Holm-adjusted across pairs; per-evaluator p-values across every
    evaluator x pair test; the verdicts say so."""
    checks = grading.experiment_checks(experiment)
    grades = grading.experiment_grades(experiment, checks=checks)
    by_variant = defaultdict(list)
    for run in grades:
        if run.grade is not None:
            by_variant[run.variant_id].append(run_outcome(run))
    variants = [
        VariantResult(id=variant.pk, name=variant.display, summary=statistics.summarize(by_variant.get(variant.pk, [])))
        for variant in experiment_selectors.variant_list(experiment=experiment)
    ]  # fmt: skip
    pairs = list(combinations(variants, 2))
    passing = [statistics.compare_pass(*_by_item(by_variant, a, b, statistics.passes_by_item)) for a, b in pairs]
    scores = [statistics.compare_scores(*_by_item(by_variant, a, b, statistics.scores_by_item)) for a, b in pairs]
    if len(pairs) > 1:
        passing, scores = statistics.holm_adjust(passing), statistics.holm_adjust(scores)
    per_check = _check_comparisons(grades, variants, pairs)
    return Comparison(
        variants=variants,
        pairs=[
            PairVerdict(a=a, b=b, passing=p, scores=s, pass_verdict=statistics.verdict(p, a.name, b.name, alpha=ALPHA),
                        score_verdict=statistics.verdict(s, a.name, b.name, alpha=ALPHA), changes=_changes(per_check, a, b))
            for (a, b), p, s in zip(pairs, passing, scores, strict=True)
        ],  # fmt: skip
        checks=per_check,
        agreement=_agreement(experiment),
        grades_anything=checks.grades_anything,
        pending=sum(1 for run in grades if run.grade is not None and run.grade.pending),
    )


def run_outcome(run: RunGrade) -> RunOutcome:
    """A graded run as the statistics see it. A call that billed nothing costs 0; an answered
    call of a model without a price costs an unknown amount (promptlab.llm.models.COST_UNKNOWN)."""
    grade = run.grade
    cost = None if not run.cost_known else run.cost_usd if run.cost_usd is not None else Decimal(0)
    return RunOutcome(item=run.item_id, passed=grade.passed, score=grade.score, errored=grade.errored,
                      latency_ms=run.latency_ms, cost=cost)  # fmt: skip


def _by_item(outcomes, a: VariantResult, b: VariantResult, collapse):
    return collapse(outcomes.get(a.id, [])), collapse(outcomes.get(b.id, []))


def _check_comparisons(grades: list[RunGrade], variants: list[VariantResult], pairs: list) -> list[CheckComparison]:
    """Per check name: each variant's verdicts by that check alone, and a paired test per pair
    of variants, Holm-adjusted across all of them. Checks of one name on one run (item
    assertions sharing a metric) count as one: passed when all pass, their weighted mean score."""
    outcomes = defaultdict(lambda: defaultdict(list))  # name -> variant id -> outcomes
    pending = defaultdict(int)  # (name, variant id) -> runs
    names = set()
    for run in grades:
        if run.grade is None or run.status != RunStatus.DONE:
            continue
        by_name = defaultdict(list)
        for check in run.grade.checks:
            by_name[check.spec.name].append(check)
        for name, checks in by_name.items():
            names.add(name)
            if any(check.status == PENDING for check in checks):
                pending[(name, run.variant_id)] += 1
            elif any(check.status == ScoreStatus.ERRORED for check in checks):
                outcomes[name][run.variant_id].append(RunOutcome(item=run.item_id, errored=True))
            else:
                combined = grading.grade(checks, None)
                outcomes[name][run.variant_id].append(RunOutcome(item=run.item_id, passed=combined.passed, score=combined.score))
    names = sorted(names)
    tests = [
        statistics.compare_pass(statistics.passes_by_item(outcomes[name][a.id]), statistics.passes_by_item(outcomes[name][b.id]))
        for name in names for a, b in pairs
    ]  # fmt: skip
    tests = iter(statistics.holm_adjust(tests) if len(tests) > 1 else tests)
    return [
        CheckComparison(
            name=name,
            variants=[CheckVariant(v, statistics.summarize(outcomes[name][v.id]), pending[(name, v.id)]) for v in variants],
            pairs=[CheckPair(a, b, test, test.p < ALPHA and test.difference is not None) for (a, b), test in zip(pairs, tests)],
        )
        for name in names
    ]


@dataclass(frozen=True)
class _Change:
    name: str
    better: bool  # b better than a
    rates: str  # "92% → 71%"
    p: str


def _check_changes(checks: list[CheckComparison], a_id: int, b_id: int) -> list[_Change]:
    """The evaluators on which b differs significantly from a."""
    changes = []
    for check in checks:
        pair = next(pair for pair in check.pairs if (pair.a.id, pair.b.id) == (a_id, b_id))
        if pair.significant:
            rates = {numbers.variant.id: numbers.summary.pass_rate for numbers in check.variants}
            shown = " → ".join(f"{rates[v].estimate:.0%}" if rates[v] else "—" for v in (a_id, b_id))
            changes.append(_Change(check.name, pair.passing.difference.estimate > 0, shown, statistics.p_text(pair.passing)))
    return changes


def _changes(checks: list[CheckComparison], a: VariantResult, b: VariantResult) -> list[str]:
    """'B is worse than A on tone: 92% → 71% (p = 0.003, Holm-adjusted for 6 comparisons)'."""
    return [
        f"{b.name} is {'better' if change.better else 'worse'} than {a.name} on {change.name}: {change.rates} ({change.p})"
        for change in _check_changes(checks, a.id, b.id)
    ]


def _agreement(experiment: Experiment) -> Agreement | None:
    by_run = defaultdict(dict)
    scales = set()
    for rating in selectors.experiment_ratings(experiment=experiment):
        by_run[rating["run_id"]][rating["user_id"]] = rating["value"]
        scales.add(rating["scale"])
    raters = {rater for ratings in by_run.values() for rater in ratings}
    if len(raters) < 2:
        return None
    level = "ordinal" if scales == {RatingScale.FIVE} else "nominal"
    return Agreement(
        alpha=statistics.krippendorff_alpha(by_run, level=level),
        raters=len(raters),
        runs_rated_twice=sum(1 for ratings in by_run.values() if len(ratings) > 1),
    )
