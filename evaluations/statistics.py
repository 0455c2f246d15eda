"""The statistics behind a trustworthy comparison of variants.

Plain Python in, plain dataclasses out: no models, so the comparison page, the promotion gate
and the tests feed it whatever rows they have.

- Per variant (`summarize`): pass rate with a Wilson 95% interval, mean score with a BCa
  bootstrap 95% interval, latency p50/p95, cost in total and per item. Errored runs are
  counted on their own and never enter a pass rate or a mean as a failure or a zero.
  Items are the unit: an item's repeats are averaged first (one cluster), so n is the
  number of items and repeats narrow nothing they should not.
- Per pair of variants on the same items (`compare_pass`, `compare_scores`): McNemar's exact
  test or the Wilcoxon signed-rank test, the difference with a paired 95% interval, an effect
  size, and how many items a 5-point (or 0.05) change would need; `holm_adjust` corrects for
  several comparisons and `verdict` says it in plain words.
- Between people (`krippendorff_alpha`): agreement of human ratings, tolerant of raters who
  rated only some runs.

Intervals and tests come from scipy wherever scipy has them. Bootstraps take a seed, so the
same data always gives the same interval.
"""

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Literal

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
# The power calculation behind "about N more items would be needed": a two-sided test at
# this alpha that finds a real change of the given size 80% of the time.
POWER_ALPHA = 0.05
POWER = 0.80
# Largest resample block the bootstrap builds at once (values), so a big dataset costs
# time, not gigabytes.
BOOTSTRAP_BLOCK = 2_000_000


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float


@dataclass(frozen=True)
class RunOutcome:
    """One run as the statistics see it. `errored` means no verdict: the call or the evaluator
    failed, so `passed` and `score` are ignored."""

    item: Hashable
    passed: bool | None = None
    score: float | None = None
    errored: bool = False
    latency_ms: float | None = None
    cost: Decimal | None = None


@dataclass(frozen=True)
class VariantSummary:
    runs: int
    errored: int
    graded: int  # runs with a pass/fail verdict
    passed: int
    items: int  # items with a verdict: the n of the intervals and tests (repeats are one cluster)
    pass_rate: Interval | None
    mean_score: Interval | None
    latency_p50: float | None
    latency_p95: float | None
    cost_total: Decimal | None  # None when a run's cost is unknown: never a partial sum shown as the total
    cost_per_item: Decimal | None


@dataclass(frozen=True)
class PairResult:
    """Variant b against variant a on the items both have a verdict for.

    `difference` and `effect_size` are b minus a: positive means b does better. For "pass" the
    difference is in pass-rate share (0.12 = 12 points) and the effect size is Cohen's h; for
    "score" it is in score units and the effect size is the matched-pairs rank-biserial
    correlation. `items_needed` is how many paired items would detect a change of `change`.
    """

    metric: Literal["pass", "score"]
    n_pairs: int
    a_better: int
    b_better: int
    difference: Interval | None
    p_value: float
    effect_size: float | None
    items_needed: int | None
    change: float
    adjusted_p: float | None = None
    comparisons: int = 1
    test: Literal["mcnemar_exact", "wilcoxon_signed_rank"] = "mcnemar_exact"

    @property
    def p(self) -> float:
        """The p-value to judge by: Holm-adjusted when several comparisons were made."""
        return self.p_value if self.adjusted_p is None else self.adjusted_p


def pass_rate(passed: Sequence[bool]) -> Interval | None:
    """Share passed with Wilson's score interval (good coverage even near 0% and 100%)."""
    if not passed:
        return None
    k = sum(passed)
    return Interval(k / len(passed), *_wilson(k, len(passed)))


def mean_score(scores: Sequence[float], *, seed: int = 0) -> Interval | None:
    """Mean with a BCa bootstrap interval (scipy, 9,999 resamples, seeded). One value, or
    values all equal, give a zero-width interval: there is no spread to resample."""
    values = np.asarray(scores, dtype=float)
    if values.size == 0:
        return None
    mean = float(values.mean())
    if np.ptp(values) == 0:
        return Interval(mean, mean, mean)
    result = stats.bootstrap(
        (values,),
        np.mean,
        confidence_level=CONFIDENCE,
        batch=max(1, BOOTSTRAP_BLOCK // values.size),
        rng=np.random.default_rng(seed),
    )
    return Interval(mean, float(result.confidence_interval.low), float(result.confidence_interval.high))


def percentiles(values: Iterable[float], qs: Sequence[float] = (50, 95)) -> tuple[float, ...] | None:
    """The qs-th percentiles (linear interpolation between closest ranks), None when empty."""
    data = np.asarray(list(values), dtype=float)
    if data.size == 0:
        return None
    return tuple(float(x) for x in np.percentile(data, qs))


def summarize(outcomes: Sequence[RunOutcome], *, seed: int = 0) -> VariantSummary:
    """One variant's runs in numbers, with items as the unit of the statistics: the repeats
    of an item are one cluster, averaged before anything is estimated, so n is the number of
    items, not of calls. With one verdict per item the pass rate has Wilson's interval; with
    repeats, the interval is a bootstrap over items of their pass shares (a cluster
    bootstrap), as is the mean score's. Latency and cost count every run that has them (an
    errored call still took time and may have cost money); the cost is unknown (None) when
    any run's is; cost per item divides by the distinct items, repeats included."""
    completed = [o for o in outcomes if not o.errored]
    verdicts = [o.passed for o in completed if o.passed is not None]
    shares = passes_by_item(completed)
    latency = percentiles(o.latency_ms for o in outcomes if o.latency_ms is not None)
    costs = [o.cost for o in outcomes]
    cost_total = None if any(cost is None for cost in costs) else sum(costs, Decimal(0))
    items = len({o.item for o in outcomes})
    return VariantSummary(
        runs=len(outcomes),
        errored=len(outcomes) - len(completed),
        graded=len(verdicts),
        passed=sum(verdicts),
        items=len(shares),
        pass_rate=item_pass_rate(shares, seed=seed),
        mean_score=mean_score(list(scores_by_item(completed).values()), seed=seed),
        latency_p50=latency[0] if latency else None,
        latency_p95=latency[1] if latency else None,
        cost_total=cost_total,
        cost_per_item=cost_total / items if items and cost_total is not None else None,
    )


def item_pass_rate(shares: Mapping[Hashable, float], *, seed: int = 0) -> Interval | None:
    """The pass rate over items from each item's share of passing repeats: Wilson's interval
    on the items when every share is 0 or 1, else a bootstrap over items of the shares' mean."""
    values = list(shares.values())
    if all(value in (0, 1) for value in values):
        return pass_rate([bool(value) for value in values])
    return mean_score(values, seed=seed)


def passes_by_item(outcomes: Iterable[RunOutcome]) -> dict[Hashable, float]:
    """Each item's share of passing verdicts over its non-errored repeats (1.0 or 0.0 for an
    item run once). Items with no verdict are left out, so they drop out of the comparison."""
    return {item: sum(v) / len(v) for item, v in _verdicts_by_item(outcomes, "passed").items()}


def scores_by_item(outcomes: Iterable[RunOutcome]) -> dict[Hashable, float]:
    """Each item's mean score over its non-errored repeats, for pairing."""
    return {item: float(np.mean(v)) for item, v in _verdicts_by_item(outcomes, "score").items()}


def compare_pass(
    a: Mapping[Hashable, float], b: Mapping[Hashable, float], *, change: float = 0.05
) -> PairResult:
    """Pass rates of b against a on their shared items, from each item's pass share
    (`passes_by_item`). With repeats, some shares lie between 0 and 1: the items' shares are
    compared as paired scores (`compare_scores`), so an item counts once however many times
    it ran. With one verdict per item:

    Test: McNemar's exact test, a two-sided binomial test on the discordant items.
    Difference: Newcombe's (1998) hybrid score interval for paired proportions (his method 10,
    Wilson intervals combined through the phi correlation), which stays sensible at small
    counts where a bootstrap of a few discordant items does not.
    Effect size: Cohen's h between the two pass rates (0.2 small, 0.5 medium, 0.8 large).
    Items needed: Connor's (1987) sample size for McNemar's test, taking the discordant share
    from the data, but at least `change`, the smallest share in which such a change fits.
    """
    shared = [item for item in a if item in b]
    if not shared:
        return _no_pairs("pass", change)
    if any(a[i] not in (0, 1) or b[i] not in (0, 1) for i in shared):
        return compare_scores(a, b, change=change, metric="pass")  # repeats: items' pass shares, paired
    a, b = {i: bool(a[i]) for i in shared}, {i: bool(b[i]) for i in shared}
    n = len(shared)
    a_better = sum(a[i] and not b[i] for i in shared)
    b_better = sum(b[i] and not a[i] for i in shared)
    both = sum(a[i] and b[i] for i in shared)
    discordant = a_better + b_better
    rate_a, rate_b = (both + a_better) / n, (both + b_better) / n
    z_alpha, z_power = _power_quantiles()
    share = max(discordant / n, change)
    needed = (z_alpha * math.sqrt(share) + z_power * math.sqrt(share - change**2)) ** 2 / change**2
    return PairResult(
        metric="pass",
        n_pairs=n,
        a_better=a_better,
        b_better=b_better,
        difference=_paired_difference(both, a_better, b_better, n - both - discordant),
        p_value=float(stats.binomtest(b_better, discordant).pvalue) if discordant else 1.0,
        effect_size=2 * math.asin(math.sqrt(rate_b)) - 2 * math.asin(math.sqrt(rate_a)),
        items_needed=math.ceil(needed),
        change=change,
    )


def compare_scores(
    a: Mapping[Hashable, float], b: Mapping[Hashable, float], *, change: float = 0.05, seed: int = 0,
    metric: Literal["pass", "score"] = "score",
) -> PairResult:
    """Scores of b against a on their shared items.

    Test: Wilcoxon signed-rank (scipy; items scoring the same under both are dropped, and when
    every item does, p = 1). Difference: mean of the paired differences with a BCa bootstrap
    interval (`mean_score` of the differences, seeded). Effect size: matched-pairs
    rank-biserial correlation (Kerby 2014), from -1 (a better on every item) to +1.
    Items needed: normal approximation for a paired test, n = ((z_a + z_b) sd / change)^2,
    divided by 3/pi, Wilcoxon's efficiency against the t-test; None without any spread.
    """
    shared = [item for item in a if item in b]
    if not shared:
        return _no_pairs(metric, change)
    diffs = np.array([b[i] - a[i] for i in shared], dtype=float)
    nonzero = diffs[diffs != 0]
    spread = float(np.std(diffs, ddof=1)) if diffs.size > 1 else 0.0
    z_alpha, z_power = _power_quantiles()
    return PairResult(
        metric=metric,
        n_pairs=diffs.size,
        a_better=int((nonzero < 0).sum()),
        b_better=int((nonzero > 0).sum()),
        difference=mean_score(diffs, seed=seed),
        p_value=float(stats.wilcoxon(nonzero).pvalue) if nonzero.size else 1.0,
        effect_size=_rank_biserial(nonzero),
        items_needed=math.ceil(((z_alpha + z_power) * spread / change) ** 2 * math.pi / 3) if spread else None,
        change=change,
        test="wilcoxon_signed_rank",
    )


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment: the i-th smallest p times (m - i + 1), kept monotone, capped at 1."""
    p = np.asarray(pvalues, dtype=float)
    order = np.argsort(p, kind="stable")
    steps = np.maximum.accumulate(p[order] * np.arange(p.size, 0, -1))
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(steps, 1.0)
    return adjusted.tolist()


def holm_adjust(pairs: Sequence[PairResult]) -> list[PairResult]:
    """The pairs compared on one page, each with its Holm-adjusted p and the number of comparisons."""
    adjusted = holm([pair.p_value for pair in pairs])
    return [replace(pair, adjusted_p=p, comparisons=len(pairs)) for pair, p in zip(pairs, adjusted, strict=True)]


def verdict(pair: PairResult, name_a: str, name_b: str, *, alpha: float = 0.05) -> str:
    """The comparison in plain words: who does better, by how much, how sure; or, when the
    difference is not significant, how many more items would settle it. The better variant
    (by the effect size's sign, which follows the test) is named first so the numbers read
    positive. With several comparisons the judgement uses the Holm-adjusted p; the 95%
    interval stays unadjusted."""
    if pair.difference is None:
        return f"no items in common between {name_a} and {name_b}: nothing to compare"
    if pair.p >= alpha:
        return f"no significant difference between {name_a} and {name_b} ({p_text(pair)}); {_power_text(pair)}"
    b_wins = pair.effect_size > 0
    winner, loser = (name_b, name_a) if b_wins else (name_a, name_b)
    d = pair.difference if b_wins else Interval(-pair.difference.estimate, -pair.difference.high, -pair.difference.low)
    if pair.metric == "pass":
        amount = f"{_points(d.estimate)} points (95% CI {_points(d.low)} to {_points(d.high)})"
        return f"{winner} passes more often than {loser}: {amount}, {p_text(pair)}"
    amount = f"{d.estimate:+.3g} mean score (95% CI {d.low:+.3g} to {d.high:+.3g})"
    return f"{winner} scores higher than {loser}: {amount}, {p_text(pair)}"


def gate_passes(
    candidate: VariantSummary, versus_baseline: PairResult | None, *, min_pass_rate: float, alpha: float = 0.05
) -> tuple[bool, str]:
    """The promotion rule "no significant regression in pass rate and pass rate >= X".

    `versus_baseline` is `compare_pass(baseline, candidate)`, or None when there is no
    baseline yet (a first release); a regression is the candidate passing significantly less
    often (McNemar). The pass rate is the point estimate.
    """
    if versus_baseline is not None and versus_baseline.metric != "pass":
        raise ValueError("the gate judges pass rates: compare with compare_pass")
    if candidate.pass_rate is None:
        return False, "the candidate has no graded runs"
    if versus_baseline is None:
        comparison = "no baseline to compare with"
    elif versus_baseline.difference is None:
        return False, "the candidate and the baseline have no items in common"
    else:
        comparison = verdict(versus_baseline, "the baseline", "the candidate", alpha=alpha)
        if versus_baseline.p < alpha and versus_baseline.difference.estimate < 0:
            return False, f"regression: {comparison}"
    rate = f"pass rate {candidate.pass_rate.estimate:.1%}"
    if candidate.pass_rate.estimate < min_pass_rate:
        return False, f"{rate} is below the required {min_pass_rate:.1%}"
    return True, f"{rate} meets the required {min_pass_rate:.1%}; {comparison}"


def krippendorff_alpha(
    ratings: Mapping[Hashable, Mapping[Hashable, Hashable]],
    *,
    level: Literal["nominal", "ordinal", "interval"] = "nominal",
) -> float | None:
    """Agreement between people who rated runs: {run: {rater: rating}}.

    Krippendorff's alpha rather than Cohen's or Fleiss' kappa because raters here rate only
    some runs: alpha uses every run that two or more people rated, with any number of raters,
    and handles nominal (labels), ordinal (1-5 stars) and interval ratings. 1 is perfect
    agreement, 0 is chance. None when no run has two ratings, or every rating is the same
    value (alpha is undefined without variation).
    """
    units = [list(by_rater.values()) for by_rater in ratings.values() if len(by_rater) >= 2]
    values = sorted({value for unit in units for value in unit})
    index = {value: i for i, value in enumerate(values)}
    coincidences = np.zeros((len(values), len(values)))
    for unit in units:
        counts = np.bincount([index[value] for value in unit], minlength=len(values))
        coincidences += (np.outer(counts, counts) - np.diag(counts)) / (len(unit) - 1)
    totals = coincidences.sum(axis=1)
    distance = _squared_distance(values, totals, level)
    expected = (np.outer(totals, totals) * distance).sum()
    if expected == 0:
        return None
    return float(1 - (totals.sum() - 1) * (coincidences * distance).sum() / expected)


def _wilson(k: int, n: int) -> tuple[float, float]:
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=CONFIDENCE, method="wilson")
    return float(ci.low), float(ci.high)


def _paired_difference(both: int, a_only: int, b_only: int, neither: int) -> Interval:
    """Newcombe's method 10 for p_b - p_a, with his phi that is shrunk by n/2 when positive."""
    n = both + a_only + b_only + neither
    rate_a, rate_b = (both + a_only) / n, (both + b_only) / n
    low_a, high_a = _wilson(both + a_only, n)
    low_b, high_b = _wilson(both + b_only, n)
    margins = (both + a_only) * (b_only + neither) * (both + b_only) * (a_only + neither)
    cross = both * neither - a_only * b_only
    shrunk = max(cross - n / 2, 0) if cross > 0 else cross
    phi = shrunk / math.sqrt(margins) if margins else 0.0
    down_b, up_a = rate_b - low_b, high_a - rate_a
    up_b, down_a = high_b - rate_b, rate_a - low_a
    return Interval(
        rate_b - rate_a,
        rate_b - rate_a - math.sqrt(down_b**2 - 2 * phi * down_b * up_a + up_a**2),
        rate_b - rate_a + math.sqrt(up_b**2 - 2 * phi * up_b * down_a + down_a**2),
    )


def _rank_biserial(nonzero: np.ndarray) -> float:
    if nonzero.size == 0:
        return 0.0
    ranks = stats.rankdata(np.abs(nonzero))
    return float((ranks[nonzero > 0].sum() - ranks[nonzero < 0].sum()) / ranks.sum())


def _power_quantiles() -> tuple[float, float]:
    return float(stats.norm.ppf(1 - POWER_ALPHA / 2)), float(stats.norm.ppf(POWER))


def _no_pairs(metric: Literal["pass", "score"], change: float) -> PairResult:
    return PairResult(metric, 0, 0, 0, None, 1.0, None, None, change)


def _verdicts_by_item(outcomes: Iterable[RunOutcome], field: str) -> dict[Hashable, list]:
    grouped: dict[Hashable, list] = {}
    for outcome in outcomes:
        value = getattr(outcome, field)
        if not outcome.errored and value is not None:
            grouped.setdefault(outcome.item, []).append(value)
    return grouped


def _squared_distance(values: list, totals: np.ndarray, level: str) -> np.ndarray:
    """Krippendorff's metric differences. Ordinal is interval on the values' mid-ranks in the
    pooled ratings: the sum of frequencies between two values, less half of theirs."""
    if level == "nominal":
        return 1.0 - np.eye(len(values))
    position = np.asarray(values, dtype=float) if level == "interval" else np.cumsum(totals) - totals / 2
    return np.subtract.outer(position, position) ** 2


def _points(share: float) -> str:
    return f"{share * 100:+.1f}"


def p_text(pair: PairResult) -> str:
    """The p-value as a verdict words it, with the Holm adjustment when there was one."""
    p = "p < 0.001" if pair.p < 0.001 else f"p = {pair.p:.2f}" if pair.p >= 0.1 else f"p = {pair.p:.3g}"
    return p if pair.comparisons == 1 else f"{p}, Holm-adjusted for {pair.comparisons} comparisons"


def _power_text(pair: PairResult) -> str:
    if pair.metric == "pass":
        change = f"a {pair.change * 100:g}-point change"
    else:
        change = f"a change of {pair.change:g} in mean score"
    if pair.items_needed is None:
        return f"the differences do not vary enough to estimate how many items would detect {change}"
    more = pair.items_needed - pair.n_pairs
    if more > 0:
        return f"about {more:,} more item{'s' if more != 1 else ''} would be needed to detect {change}"
    return f"{pair.n_pairs:,} items were enough to detect {change}, so any real difference is probably smaller"
