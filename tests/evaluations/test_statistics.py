"""The statistics against published reference values and scipy."""

from decimal import Decimal

import numpy as np
import pytest
from scipy import stats

from evaluations.statistics import (
    Interval,
    RunOutcome,
    compare_pass,
    compare_scores,
    gate_passes,
    holm,
    holm_adjust,
    krippendorff_alpha,
    mean_score,
    pass_rate,
    passes_by_item,
    percentiles,
    scores_by_item,
    summarize,
    verdict,
)


def paired_table(both: int, a_only: int, b_only: int, neither: int) -> tuple[dict, dict]:
    """Pass/fail of variants a and b on items 0..n-1, from the four cells of a paired 2x2 table."""
    a, b = {}, {}
    cells = [(True, True, both), (True, False, a_only), (False, True, b_only), (False, False, neither)]
    for passed_a, passed_b, count in cells:
        for _ in range(count):
            a[len(a)], b[len(b)] = passed_a, passed_b
    return a, b


# Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table II,
# method 3 (Wilson score without continuity correction).
@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)],
)
def test_pass_rate_is_the_wilson_interval_from_newcombe_1998(k, n, low, high):
    rate = pass_rate([True] * k + [False] * (n - k))

    assert rate.estimate == pytest.approx(k / n)
    assert (round(rate.low, 4), round(rate.high, 4)) == (low, high)


def test_pass_rate_of_nothing_is_none_and_of_one_run_is_a_wide_interval():
    assert pass_rate([]) is None
    one = pass_rate([True])
    assert one.estimate == 1.0 and one.high == 1.0 and one.low == pytest.approx(0.2065, abs=1e-4)


def test_mean_score_bootstrap_is_reproducible_and_agrees_with_the_t_interval_on_normal_data():
    scores = np.random.default_rng(7).normal(0.7, 0.1, 400)

    interval = mean_score(scores, seed=3)
    t_low, t_high = stats.t.interval(0.95, scores.size - 1, loc=scores.mean(), scale=stats.sem(scores))

    assert interval == mean_score(scores, seed=3)
    assert interval.estimate == pytest.approx(scores.mean())
    assert interval.low == pytest.approx(t_low, abs=0.002)
    assert interval.high == pytest.approx(t_high, abs=0.002)


def test_mean_score_of_one_value_or_equal_values_is_a_zero_width_interval():
    assert mean_score([]) is None
    assert mean_score([0.4]) == Interval(0.4, 0.4, 0.4)
    assert mean_score([1.0, 1.0, 1.0]) == Interval(1.0, 1.0, 1.0)


def test_percentiles_interpolate_between_ranks():
    assert percentiles([10, 20, 30, 40, 100]) == (30.0, pytest.approx(88.0))
    assert percentiles([]) is None


def test_summarize_counts_errored_runs_apart_never_as_failures_or_zeros():
    outcomes = [
        RunOutcome(item=1, passed=True, score=1.0, latency_ms=100, cost=Decimal("0.002")),
        RunOutcome(item=1, passed=False, score=0.5, latency_ms=300, cost=Decimal("0.002")),
        RunOutcome(item=2, passed=True, score=0.75, latency_ms=200, cost=Decimal("0.002")),
        RunOutcome(item=2, passed=None, score=0.25, latency_ms=250, cost=Decimal("0.002")),
        RunOutcome(item=3, errored=True, passed=False, score=0.0, latency_ms=5000, cost=Decimal("0.001")),
    ]

    summary = summarize(outcomes)

    assert (summary.runs, summary.errored, summary.graded, summary.passed, summary.items) == (5, 1, 3, 2, 2)
    # Items are the unit: item 1 passes half its repeats, item 2 its one verdict.
    assert summary.pass_rate.estimate == pytest.approx(0.75)
    assert summary.pass_rate.low < 0.75 < summary.pass_rate.high
    assert summary.mean_score.estimate == pytest.approx(0.625)  # (0.75 + 0.5) / 2
    assert summary.latency_p50 == 250 and summary.latency_p95 == pytest.approx(np.percentile([100, 300, 200, 250, 5000], 95))
    assert summary.cost_total == Decimal("0.009")
    assert summary.cost_per_item == Decimal("0.003")


def test_summarize_all_errored_and_empty():
    errored = summarize([RunOutcome(item=1, errored=True), RunOutcome(item=2, errored=True)])
    empty = summarize([])

    assert (errored.runs, errored.errored, errored.graded, errored.pass_rate, errored.mean_score) == (2, 2, 0, None, None)
    # Their costs are unknown, so the total is unknown: never shown as $0.
    assert (errored.latency_p50, errored.cost_total, errored.cost_per_item) == (None, None, None)
    free = summarize([RunOutcome(item=1, errored=True, cost=Decimal(0)), RunOutcome(item=2, passed=True, cost=Decimal("0.5"))])
    assert (free.cost_total, free.cost_per_item) == (Decimal("0.5"), Decimal("0.25"))
    assert (empty.runs, empty.pass_rate, empty.cost_per_item) == (0, None, None)


def test_items_collapse_repeats_into_their_pass_share_and_mean_and_drop_errored_runs():
    outcomes = [
        RunOutcome(item="a", passed=True, score=1.0),
        RunOutcome(item="a", passed=True, score=0.5),
        RunOutcome(item="a", passed=False, score=0.0),
        RunOutcome(item="b", passed=True, score=1.0),
        RunOutcome(item="b", passed=False, score=0.0),
        RunOutcome(item="c", errored=True, passed=True, score=1.0),
    ]

    assert passes_by_item(outcomes) == {"a": pytest.approx(2 / 3), "b": 0.5}
    assert scores_by_item(outcomes) == {"a": 0.5, "b": 0.5}


def test_repeats_are_one_cluster_so_n_is_the_items_not_the_calls():
    # 10 items, each run 5 times with every repeat agreeing: the interval is Wilson's on 10
    # items, exactly as wide as with one run per item, not narrowed by 50 calls.
    once = [RunOutcome(item=i, passed=i < 7) for i in range(10)]
    five = [RunOutcome(item=i, passed=i < 7) for i in range(10) for _ in range(5)]

    assert summarize(five).pass_rate == summarize(once).pass_rate == pass_rate([True] * 7 + [False] * 3)
    assert (summarize(five).items, summarize(five).graded) == (10, 50)


def test_repeats_that_disagree_are_compared_as_paired_item_shares():
    a = {i: 1.0 for i in range(12)}
    b = {i: (0.2 if i < 10 else 1.0) for i in range(12)}  # b passes 1 repeat of 5 on 10 items

    result = compare_pass(a, b)

    assert (result.metric, result.n_pairs, result.a_better, result.b_better) == ("pass", 12, 10, 0)
    assert result.difference.estimate == pytest.approx(-0.8 * 10 / 12)
    assert result.p_value < 0.01
    assert "passes more often" in verdict(result, "A", "B")


def test_mcnemar_exact_p_for_discordant_10_against_2():
    # The classic exact McNemar example: 2 * P(X <= 2 | 12, 1/2) = 158/4096.
    pair = compare_pass(*paired_table(both=30, a_only=2, b_only=10, neither=8))

    assert pair.p_value == pytest.approx(158 / 4096)
    assert round(pair.p_value, 4) == 0.0386
    assert (pair.n_pairs, pair.a_better, pair.b_better) == (50, 2, 10)


def test_paired_difference_is_newcombes_interval_from_fagerland_lydersen_laake():
    # Cavo et al. (2012) complete response before (b) and after (a) consolidation therapy, as
    # worked in Fagerland, Lydersen & Laake (2014), Stat Med 33:2850, and their book, ch. 8:
    # Newcombe square-and-add -0.0621 (95% CI -0.1186 to -0.0046); exact McNemar p = 0.0525.
    pair = compare_pass(*paired_table(both=59, a_only=16, b_only=6, neither=80))

    assert round(pair.difference.estimate, 4) == -0.0621
    assert (round(pair.difference.low, 4), round(pair.difference.high, 4)) == (-0.1186, -0.0046)
    assert round(pair.p_value, 4) == 0.0525
    rate_a, rate_b = 75 / 161, 65 / 161
    assert pair.effect_size == pytest.approx(2 * np.arcsin(np.sqrt(rate_b)) - 2 * np.arcsin(np.sqrt(rate_a)))


def test_compare_pass_pairs_on_shared_items_only():
    a = {1: True, 2: False, 3: True}
    b = {2: True, 3: True, 4: False}

    pair = compare_pass(a, b)

    assert (pair.n_pairs, pair.a_better, pair.b_better) == (2, 0, 1)
    assert pair.difference.estimate == pytest.approx(0.5)


def test_items_needed_for_a_5_point_change_is_connors_mcnemar_sample_size():
    # Connor (1987): n = (z_.975 sqrt(psi) + z_.80 sqrt(psi - d^2))^2 / d^2 with psi = 22/161.
    pair = compare_pass(*paired_table(both=59, a_only=16, b_only=6, neither=80))
    psi = 22 / 161

    expected = (1.959964 * np.sqrt(psi) + 0.841621 * np.sqrt(psi - 0.05**2)) ** 2 / 0.05**2

    assert pair.items_needed == int(np.ceil(expected)) == 427


def test_compare_pass_with_no_discordant_items_or_no_shared_items():
    same = compare_pass({1: True, 2: False}, {1: True, 2: False})
    apart = compare_pass({1: True}, {2: True})

    assert same.p_value == 1.0 and same.difference.estimate == 0.0
    assert same.difference.low < 0 < same.difference.high
    assert (apart.n_pairs, apart.difference, apart.p_value) == (0, None, 1.0)


def test_wilcoxon_and_rank_biserial_on_darwins_maize():
    # Darwin's cross- against self-fertilised Zea mays, height differences in eighths of an
    # inch (Fisher 1935): Wilcoxon T = 24, two-sided exact p = 0.0413; rank-biserial r = 0.6.
    differences = [6, 8, 14, 16, 23, 24, 28, 29, 41, -48, 49, 56, 60, -67, 75]
    self_fertilised = {i: 100.0 for i in range(15)}
    cross_fertilised = {i: 100.0 + d for i, d in enumerate(differences)}

    pair = compare_scores(self_fertilised, cross_fertilised)

    assert pair.p_value == pytest.approx(stats.wilcoxon(differences).pvalue)
    assert round(pair.p_value, 4) == 0.0413
    assert pair.effect_size == pytest.approx(0.6)
    assert pair.difference.estimate == pytest.approx(np.mean(differences))
    assert (pair.n_pairs, pair.a_better, pair.b_better) == (15, 2, 13)


def test_compare_scores_when_every_difference_is_zero_is_p_1_not_a_crash():
    pair = compare_scores({1: 0.5, 2: 0.7, 3: 0.1}, {1: 0.5, 2: 0.7, 3: 0.1})

    assert pair.p_value == 1.0
    assert pair.effect_size == 0.0
    assert pair.difference == Interval(0.0, 0.0, 0.0)
    assert pair.items_needed is None
    assert "no significant difference" in verdict(pair, "v3", "v4")


def test_compare_scores_with_a_single_item():
    pair = compare_scores({1: 0.2}, {1: 0.9})

    assert pair.n_pairs == 1 and pair.p_value == 1.0
    assert pair.difference == Interval(pytest.approx(0.7), pytest.approx(0.7), pytest.approx(0.7))


def test_holm_against_the_hand_worked_example():
    # Sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> monotone 0.06.
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == [1.0, 1.0]
    assert holm([]) == []


def test_verdict_for_a_significant_pass_rate_difference():
    pair = compare_pass(*paired_table(both=60, a_only=3, b_only=15, neither=22))

    assert verdict(pair, "v3", "v4") == "v4 passes more often than v3: +12.0 points (95% CI +3.7 to +20.1), p = 0.00754"


def test_verdict_names_the_winner_first_when_a_is_better():
    pair = compare_pass(*paired_table(both=60, a_only=15, b_only=3, neither=22))

    assert verdict(pair, "v3", "v4") == "v3 passes more often than v4: +12.0 points (95% CI +3.7 to +20.1), p = 0.00754"


def test_verdict_for_no_significant_difference_says_how_many_more_items_would_settle_it():
    pair = compare_pass(*paired_table(both=59, a_only=16, b_only=6, neither=80))

    assert verdict(pair, "v3", "v4") == (
        "no significant difference between v3 and v4 (p = 0.0525); "
        "about 266 more items would be needed to detect a 5-point change"
    )


def test_verdict_when_the_items_were_already_enough():
    pair = compare_pass(*paired_table(both=700, a_only=10, b_only=12, neither=278))

    assert verdict(pair, "v3", "v4") == (
        "no significant difference between v3 and v4 (p = 0.83); "
        "1,000 items were enough to detect a 5-point change, so any real difference is probably smaller"
    )


def test_verdict_for_scores():
    differences = [6, 8, 14, 16, 23, 24, 28, 29, 41, -48, 49, 56, 60, -67, 75]
    pair = compare_scores({i: 0.0 for i in range(15)}, {i: float(d) for i, d in enumerate(differences)})

    assert verdict(pair, "self", "cross") == "cross scores higher than self: +20.9 mean score (95% CI -1.8 to +36.5), p = 0.0413"


def test_verdict_with_several_comparisons_uses_holm_adjusted_p():
    significant_alone = compare_pass(*paired_table(both=30, a_only=2, b_only=10, neither=8))
    others = [compare_pass(*paired_table(both=30, a_only=5, b_only=5, neither=10)) for _ in range(2)]

    adjusted = holm_adjust([significant_alone, *others])

    assert verdict(significant_alone, "v3", "v4").startswith("v4 passes more often than v3: +16.0 points")
    assert adjusted[0].p == pytest.approx(3 * 158 / 4096)
    assert verdict(adjusted[0], "v3", "v4").startswith(
        "no significant difference between v3 and v4 (p = 0.12, Holm-adjusted for 3 comparisons); about"
    )


def test_verdict_formats_small_p_and_no_shared_items():
    pair = compare_pass(*paired_table(both=10, a_only=0, b_only=40, neither=10))

    assert verdict(pair, "v3", "v4").endswith("p < 0.001")
    assert verdict(compare_pass({}, {1: True}), "v3", "v4") == "no items in common between v3 and v4: nothing to compare"


def gate_candidate(passed: int, failed: int):
    return summarize([RunOutcome(item=i, passed=i < passed) for i in range(passed + failed)])


def test_gate_fails_on_a_significant_regression():
    baseline, candidate = paired_table(both=80, a_only=12, b_only=1, neither=7)

    ok, reason = gate_passes(gate_candidate(81, 19), compare_pass(baseline, candidate), min_pass_rate=0.8)

    assert not ok
    assert reason.startswith("regression: the baseline passes more often than the candidate: +11.0 points")


def test_gate_fails_below_the_required_pass_rate_even_without_a_regression():
    baseline, candidate = paired_table(both=85, a_only=2, b_only=3, neither=10)

    ok, reason = gate_passes(gate_candidate(88, 12), compare_pass(baseline, candidate), min_pass_rate=0.9)

    assert (ok, reason) == (False, "pass rate 88.0% is below the required 90.0%")


def test_gate_passes_without_regression_at_the_required_rate():
    baseline, candidate = paired_table(both=88, a_only=2, b_only=3, neither=7)

    ok, reason = gate_passes(gate_candidate(91, 9), compare_pass(baseline, candidate), min_pass_rate=0.9)

    assert ok
    assert reason.startswith("pass rate 91.0% meets the required 90.0%; no significant difference between the baseline")


def test_gate_refuses_without_shared_items_or_graded_runs_and_rejects_a_score_comparison():
    pair = compare_pass({1: True}, {1: True})

    assert gate_passes(gate_candidate(1, 0), compare_pass({1: True}, {2: True}), min_pass_rate=0.9)[0] is False
    assert gate_passes(summarize([]), pair, min_pass_rate=0.9) == (False, "the candidate has no graded runs")
    with pytest.raises(ValueError):
        gate_passes(gate_candidate(1, 0), compare_scores({1: 1.0}, {1: 1.0}), min_pass_rate=0.9)


# Krippendorff (2011), "Computing Krippendorff's alpha-reliability", section C: four observers,
# twelve units, missing values; nominal 0.743, ordinal 0.815, interval 0.849.
RELIABILITY_DATA = {
    "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    "C": [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
}


@pytest.mark.parametrize(("level", "alpha"), [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)])
def test_krippendorff_alpha_against_krippendorffs_published_example(level, alpha):
    ratings = {unit: {} for unit in range(12)}
    for rater, values in RELIABILITY_DATA.items():
        for unit, value in enumerate(values):
            if value is not None:
                ratings[unit][rater] = value

    assert round(krippendorff_alpha(ratings, level=level), 3) == alpha


def test_krippendorff_alpha_needs_two_raters_on_a_run_and_some_variation():
    assert krippendorff_alpha({}) is None
    assert krippendorff_alpha({1: {"ann": "good"}, 2: {"bob": "bad"}}) is None
    assert krippendorff_alpha({1: {"ann": "good", "bob": "good"}, 2: {"ann": "good", "bob": "good"}}) is None
    assert krippendorff_alpha({1: {"ann": "good", "bob": "good"}, 2: {"ann": "bad", "bob": "bad"}}) == 1.0
