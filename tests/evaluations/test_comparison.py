"""An experiment's variants compared from its runs, scores and ratings."""

from decimal import Decimal

import pytest
from bs4 import BeautifulSoup

from evaluations import comparison, services, statistics
from evaluations.models import Score
from promptlab.accounts.models import Role
from tests.evaluations.conftest import variant_runs
from tests.factories import DatasetItemFactory, MembershipFactory

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
    assert pair.pass_verdict.startswith("v4 passes more often than v3: +50.0 points")
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
    with django_assert_num_queries(6) as small:
        comparison.experiment_comparison(experiment=experiment)
    experiment.items += [DatasetItemFactory(dataset=experiment.dataset) for _ in range(20)]
    variant_runs(experiment, "c", [True] * 25)
    with django_assert_num_queries(len(small.captured_queries)):
        comparison.experiment_comparison(experiment=experiment)


def test_the_statistics_panel_shows_the_numbers_and_verdicts_to_members_only(experiment, owner, client):
    variant_runs(experiment, "v3", [i < 12 for i in range(30)])
    variant_runs(experiment, "v4", [i < 27 for i in range(30)])
    url = f"/experiments/{experiment.pk}/comparison/stats/"

    client.force_login(MembershipFactory(role=Role.OWNER).user)  # someone else's project
    assert client.get(url).status_code == 404

    client.force_login(owner.user)
    html = BeautifulSoup(client.get(url).content, "html.parser")
    v4 = html.select_one('tr[data-variant="v4"] td.pass-rate').get_text()
    assert v4.startswith("90% (") and v4.endswith("27/30")
    verdict = html.select_one('li[data-pair="v3|v4"] li.pass-verdict').get_text()
    assert verdict.startswith("Pass rate: v4 passes more often than v3: +50.0 points")
    assert "once two people have rated" in html.select_one("#agreement").get_text()
