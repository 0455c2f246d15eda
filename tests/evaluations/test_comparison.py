"""An experiment's variants compared from its runs, scores and ratings."""

from decimal import Decimal

import pytest
from bs4 import BeautifulSoup

from evaluations import comparison, services, statistics
from evaluations.models import Score, ScoreStatus
from experiments.models import RunStatus
from promptlab.accounts.models import Role
from tests.evaluations.conftest import variant_runs
from tests.factories import DatasetItemFactory, MembershipFactory, RunFactory, VariantFactory

pytestmark = pytest.mark.django_db


def test_a_clear_winner_gets_a_significant_verdict_with_its_numbers(experiment):
    old = variant_runs(experiment, "v3", [i < 12 for i in range(30)])
    new = variant_runs(experiment, "v4", [i < 27 for i in range(30)])

    result = comparison.experiment_comparison(experiment=experiment)

    assert result.variant(old.pk).summary.passed == 12 and result.variant(new.pk).summary.passed == 27
    expected = statistics.pass_rate([True] * 27 + [False] * 3)
    assert result.variant(new.pk).summary.pass_rate == expected
    pair = result.pair(old.pk, new.pk)
    assert pair.passing.n_pairs == 30 and pair.passing.b_better == 15 and pair.passing.a_better == 0
    assert pair.passing.p_value == pytest.approx(2 * 0.5**15)  # McNemar exact on 15 discordant items, all one way
    assert pair.pass_verdict.startswith(f"{new.display} passes more often than {old.display}: +50.0 points")
    assert "p < 0.001" in pair.pass_verdict
    assert result.agreement is None


def test_errored_and_failed_runs_are_counted_apart_never_as_failures(experiment):
    variant = variant_runs(experiment, "v1", [True] * 10, errored={0, 1}, failed={2})

    summary = comparison.experiment_comparison(experiment=experiment).variant(variant.pk).summary

    assert summary.runs == 10 and summary.errored == 3
    assert summary.graded == 7 and summary.passed == 7
    assert summary.pass_rate.estimate == 1.0
    assert summary.cost_total == Decimal("0.0010") * 10


def test_runs_still_being_scored_have_no_verdict_yet(experiment):
    variant = variant_runs(experiment, "v1", [True] * 5)
    Score.objects.filter(run__variant=variant, evaluator=experiment.checks[1]).first().delete()

    summary = comparison.experiment_comparison(experiment=experiment).variant(variant.pk).summary

    assert summary.runs == 5 and summary.graded == 4 and summary.errored == 0


def test_several_variants_are_holm_adjusted_and_say_so(experiment):
    a = variant_runs(experiment, "a", [i < 15 for i in range(30)])
    b = variant_runs(experiment, "b", [i < 20 for i in range(30)])
    c = variant_runs(experiment, "c", [i < 16 for i in range(30)])

    result = comparison.experiment_comparison(experiment=experiment)

    assert len(result.pairs) == 3
    raw = [pair.passing.p_value for pair in result.pairs]
    assert [pair.passing.adjusted_p for pair in result.pairs] == pytest.approx(statistics.holm(raw))
    assert all("Holm-adjusted for 3 comparisons" in pair.pass_verdict for pair in result.pairs)
    assert result.pair(a.pk, b.pk).passing.b_better == 5 and result.pair(b.pk, c.pk).passing.a_better == 4


def test_agreement_is_shown_once_two_people_rated(experiment, owner):
    variant = variant_runs(experiment, "v1", [True] * 6)
    runs = list(variant.runs.order_by("pk"))
    reviewer = MembershipFactory(project=owner.project, role=Role.VIEWER).user
    for run, mine in zip(runs, [1, 1, 0, 0, 1, 0], strict=True):
        services.rating_set(run=run, actor=owner.user, scale="thumbs", value=mine)
    assert comparison.experiment_comparison(experiment=experiment).agreement is None  # one rater: nothing to agree on
    for run, theirs in zip(runs, [1, 1, 0, 0, 1, 1], strict=True):
        services.rating_set(run=run, actor=reviewer, scale="thumbs", value=theirs)

    agreement = comparison.experiment_comparison(experiment=experiment).agreement

    expected = statistics.krippendorff_alpha(
        {run.pk: {owner.user.pk: m, reviewer.pk: t} for run, m, t in zip(runs, [1, 1, 0, 0, 1, 0], [1, 1, 0, 0, 1, 1], strict=True)}
    )
    assert agreement.raters == 2 and agreement.runs_rated_twice == 6
    assert agreement.alpha == pytest.approx(expected) and 0 < agreement.alpha < 1


def test_the_comparison_reads_a_constant_number_of_queries(experiment, django_assert_num_queries):
    variant_runs(experiment, "a", [True] * 5)
    variant_runs(experiment, "b", [False] * 5)
    with django_assert_num_queries(7) as small:
        comparison.experiment_comparison(experiment=experiment)
    experiment.items += [DatasetItemFactory(dataset=experiment.dataset) for _ in range(20)]
    variant_runs(experiment, "c", [True] * 25)
    with django_assert_num_queries(len(small.captured_queries)):
        comparison.experiment_comparison(experiment=experiment)


def test_the_statistics_panel_shows_the_numbers_and_verdicts_to_members_only(experiment, owner, client):
    old = variant_runs(experiment, "v3", [i < 12 for i in range(30)])
    new = variant_runs(experiment, "v4", [i < 27 for i in range(30)])
    url = f"/experiments/{experiment.pk}/comparison/stats/"

    client.force_login(MembershipFactory(role=Role.OWNER).user)  # someone else's project
    assert client.get(url).status_code == 404

    client.force_login(owner.user)
    html = BeautifulSoup(client.get(url).content, "html.parser")
    v4 = html.select_one(f'#variant-summary tr[data-variant-id="{new.pk}"] td.pass-rate').get_text()
    assert v4.startswith("90% (") and v4.endswith("27/30 runs, n = 30 items")
    verdict = html.select_one(f'li[data-pair="{old.pk}|{new.pk}"] li.pass-verdict').get_text()
    assert verdict.startswith(f"Pass rate: {new.display} passes more often than {old.display}: +50.0 points")
    assert "once two people have rated" in html.select_one("#agreement").get_text()


def scored_variant(experiment, name: str, verdicts: dict[str, list[bool]], *, repeats: int = 1):
    """A variant whose runs each evaluator (by name) passes or fails item by item, every repeat alike."""
    variant = VariantFactory(experiment=experiment, name=name)
    evaluators = {evaluator.name: evaluator for evaluator in experiment.checks}
    for index, item in enumerate(experiment.items):
        for repeat in range(1, repeats + 1):
            run = RunFactory(experiment=experiment, variant=variant, item=item, repeat=repeat, status=RunStatus.DONE)
            for evaluator_name, passes in verdicts.items():
                evaluator = evaluators[evaluator_name]
                Score.objects.create(run=run, evaluator=evaluator, evaluator_version=evaluator.version, status=ScoreStatus.OK,
                                     value=float(passes[index]), passed=passes[index])  # fmt: skip
    return variant


def test_evaluators_moving_in_opposite_directions_are_both_named_in_the_verdict(experiment, owner, client):
    # Every run fails overall (it needs both), so the overall verdict sees no difference at all;
    # per evaluator, b loses refund (100% -> 0%) and gains sorry (0% -> 100%).
    a = scored_variant(experiment, "a", {"refund": [True] * 30, "sorry": [False] * 30})
    b = scored_variant(experiment, "b", {"refund": [False] * 30, "sorry": [True] * 30})

    result = comparison.experiment_comparison(experiment=experiment)
    pair = result.pair(a.pk, b.pk)

    assert pair.pass_verdict.startswith("no significant difference")
    assert pair.changes == [
        f"{b.display} is worse than {a.display} on refund: 100% → 0% (p < 0.001, Holm-adjusted for 2 comparisons)",
        f"{b.display} is better than {a.display} on sorry: 0% → 100% (p < 0.001, Holm-adjusted for 2 comparisons)",
    ]
    assert pair.headline.count(" on ") == 2
    assert result.regressions(a.pk, b.pk) == ["refund (100% → 0%, p < 0.001, Holm-adjusted for 2 comparisons)"]
    client.force_login(owner.user)
    html = BeautifulSoup(client.get(f"/experiments/{experiment.pk}/comparison/stats/").content, "html.parser")
    named = [li.get_text() for li in html.select(f'li[data-pair="{a.pk}|{b.pk}"] li.check-change')]
    assert named == pair.changes
    refund_b = html.select_one(f'#evaluator-summary tr[data-check="refund"][data-variant-id="{b.pk}"]').get_text()
    assert "0% (" in refund_b and "0/30" in refund_b


def test_holm_covers_every_evaluator_and_pair_so_a_lone_small_change_is_not_called_significant(experiment):
    # sorry: 6 of 30 items flip one way: McNemar p = 0.031 alone, but adjusted for 2 tests 0.062.
    a = scored_variant(experiment, "a", {"refund": [True] * 30, "sorry": [True] * 30})
    b = scored_variant(experiment, "b", {"refund": [True] * 30, "sorry": [i >= 6 for i in range(30)]})

    result = comparison.experiment_comparison(experiment=experiment)

    sorry = next(check for check in result.checks if check.name == "sorry")
    assert sorry.pairs[0].passing.p_value == pytest.approx(2 * 0.5**6)
    assert sorry.pairs[0].passing.adjusted_p == pytest.approx(min(1, 2 * 2 * 0.5**6))
    assert not sorry.pairs[0].significant and result.pair(a.pk, b.pk).changes == []


def test_repeats_are_averaged_per_item_so_n_is_the_items(experiment):
    variant = scored_variant(experiment, "a", {"refund": [True] * 30, "sorry": [i < 21 for i in range(30)]}, repeats=5)

    summary = comparison.experiment_comparison(experiment=experiment).variant(variant.pk).summary

    assert (summary.runs, summary.graded, summary.passed, summary.items) == (150, 150, 105, 30)
    assert summary.pass_rate == statistics.pass_rate([True] * 21 + [False] * 9)  # Wilson on 30 items, not 150 calls


def test_an_answered_call_without_a_price_makes_the_cost_unknown_and_a_call_that_billed_nothing_costs_nothing(experiment, owner, client):
    variant = variant_runs(experiment, "v1", [True] * 4, failed={3})
    variant.runs.filter(status=RunStatus.FAILED).update(cost_usd=None, prompt_tokens=None)  # never answered: nothing billed

    summary = comparison.experiment_comparison(experiment=experiment).variant(variant.pk).summary
    assert summary.cost_total == Decimal("0.0010") * 3

    unpriced = variant.runs.filter(status=RunStatus.DONE).first()
    variant.runs.filter(pk=unpriced.pk).update(cost_usd=None, prompt_tokens=12)  # answered by a model without a price

    summary = comparison.experiment_comparison(experiment=experiment).variant(variant.pk).summary
    assert (summary.cost_total, summary.cost_per_item) == (None, None)
    client.force_login(owner.user)
    stats = BeautifulSoup(client.get(f"/experiments/{experiment.pk}/comparison/stats/").content, "html.parser")
    assert stats.select_one(f'#variant-summary tr[data-variant-id="{variant.pk}"]').find_all("td")[-1].get_text() == "unknown"
    matrix = BeautifulSoup(client.get(f"/experiments/{experiment.pk}/comparison/").content, "html.parser")
    assert matrix.select_one(f'[data-run="{unpriced.pk}"] .meta').get_text().endswith("unknown")
