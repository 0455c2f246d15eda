"""An experiment's variants compared: per variant numbers, per pair a paired test and a verdict
in plain words, and how well human raters agree. The numbers come from evaluations.statistics;
this module only turns runs, scores and ratings into its inputs."""

from collections import defaultdict
from dataclasses import dataclass
from itertools import combinations

from evaluations import selectors, statistics
from evaluations.models import RatingScale
from evaluations.statistics import PairResult, RunOutcome, VariantSummary
from experiments.models import Experiment, RunStatus

ALPHA = 0.05


@dataclass(frozen=True)
class VariantResult:
    id: int
    name: str
    summary: VariantSummary


@dataclass(frozen=True)
class PairVerdict:
    a: VariantResult
    b: VariantResult
    passing: PairResult
    scores: PairResult
    pass_verdict: str
    score_verdict: str


@dataclass(frozen=True)
class Agreement:
    alpha: float | None  # Krippendorff's alpha; None when no run has two raters or nothing varies
    raters: int
    runs_rated_twice: int


@dataclass(frozen=True)
class Comparison:
    variants: list[VariantResult]
    pairs: list[PairVerdict]
    evaluators: list[dict]  # per (variant, evaluator): counts and mean, from the selector
    agreement: Agreement | None  # None until two people rated

    def variant(self, variant_id: int) -> VariantResult:
        return next(result for result in self.variants if result.id == variant_id)

    def pair(self, a_id: int, b_id: int) -> PairVerdict:
        return next(pair for pair in self.pairs if (pair.a.id, pair.b.id) == (a_id, b_id))


def experiment_comparison(*, experiment: Experiment) -> Comparison:
    """Every variant of the experiment against every other on the same items. A run passes when
    every evaluator passes it (as a promptfoo test does) and scores the weighted mean of its
    evaluators' scores; a run whose call or any evaluator errored counts as errored, never as a
    failure or a zero; a run still being scored (or with no evaluator) has no verdict. With several pairs, p-values
    are Holm-adjusted and the verdicts say so."""
    outcomes = _outcomes(experiment)
    variants = [
        VariantResult(id=variant.pk, name=variant.name, summary=statistics.summarize(outcomes.get(variant.pk, [])))
        for variant in experiment.variants.order_by("pk")
    ]  # fmt: skip
    pairs = list(combinations(variants, 2))
    passing = [statistics.compare_pass(*_by_item(outcomes, a, b, statistics.passes_by_item)) for a, b in pairs]
    scores = [statistics.compare_scores(*_by_item(outcomes, a, b, statistics.scores_by_item)) for a, b in pairs]
    if len(pairs) > 1:
        passing, scores = statistics.holm_adjust(passing), statistics.holm_adjust(scores)
    return Comparison(
        variants=variants,
        pairs=[
            PairVerdict(a=a, b=b, passing=p, scores=s, pass_verdict=statistics.verdict(p, a.name, b.name, alpha=ALPHA),
                        score_verdict=statistics.verdict(s, a.name, b.name, alpha=ALPHA))
            for (a, b), p, s in zip(pairs, passing, scores, strict=True)
        ],  # fmt: skip
        evaluators=selectors.experiment_score_summary(experiment=experiment),
        agreement=_agreement(experiment),
    )


def _by_item(outcomes, a: VariantResult, b: VariantResult, collapse):
    return collapse(outcomes.get(a.id, [])), collapse(outcomes.get(b.id, []))


def _outcomes(experiment: Experiment) -> dict[int, list[RunOutcome]]:
    """Each variant's runs as the statistics see them."""
    evaluators = set(selectors.evaluators_of_experiment(experiment_id=experiment.pk).values_list("pk", flat=True))
    verdicts = defaultdict(list)
    for row in selectors.experiment_score_rows(experiment=experiment):
        if row["evaluator_id"] in evaluators:
            verdicts[row["run_id"]].append(row)
    outcomes = defaultdict(list)
    for run in selectors.experiment_run_rows(experiment=experiment):
        if (outcome := run_outcome(run, verdicts.get(run["id"], []), evaluators=len(evaluators))) is not None:
            outcomes[run["variant_id"]].append(outcome)
    return outcomes


def run_outcome(run: dict, rows: list[dict], *, evaluators: int) -> RunOutcome | None:
    """One run as the statistics see it: from its row (status, item_id, latency_ms, cost_usd),
    its scores by its experiment's enabled evaluators at their current versions (rows with
    errored, passed, value and weight; pending scores left out) and the number of those
    evaluators. None for a run that did not run (yet): pending, skipped by the budget, or
    cancelled."""
    if run["status"] not in (RunStatus.DONE, RunStatus.FAILED):
        return None
    errored = run["status"] == RunStatus.FAILED or any(row["errored"] for row in rows)
    graded = bool(evaluators) and len(rows) == evaluators and not errored  # else still being scored
    return RunOutcome(
        item=run["item_id"], errored=errored, latency_ms=run["latency_ms"], cost=run["cost_usd"],
        passed=all(row["passed"] is not False for row in rows) if graded else None,
        score=_weighted_mean(rows) if graded else None,
    )  # fmt: skip


def _weighted_mean(rows: list[dict]) -> float | None:
    values = [(row["value"], row["weight"]) for row in rows if row["value"] is not None]
    total = sum(weight for _, weight in values)
    if not values:
        return None
    if not total:
        return sum(value for value, _ in values) / len(values)
    return sum(value * weight for value, weight in values) / total


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
