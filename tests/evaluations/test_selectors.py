"""score_list, the scores API's read: one query at N runs and at N+20, at each evaluator's
current version or at every version kept."""

import pytest

from evaluations import selectors, services
from evaluations.models import Score, ScoreStatus
from tests.evaluations.conftest import variant_runs

pytestmark = pytest.mark.django_db


def test_score_list_reads_one_query_at_any_size(experiment, owner, django_assert_num_queries):
    first, second = experiment.checks
    old = variant_runs(experiment, "old", [True] * 30)
    services.evaluator_update(evaluator=second, actor=owner.user, message="stricter", config={"value": "sorry!"})  # a new version: old scores kept
    second.refresh_from_db()

    for size in (3, 23):
        variant = variant_runs(experiment, f"v{size}", [True] * size)  # one run per pass given
        with django_assert_num_queries(1):
            current = list(selectors.score_list(experiment=experiment, evaluator=second.name, status=ScoreStatus.OK, variant=variant.name))
        with django_assert_num_queries(1):
            every = list(selectors.score_list(experiment=experiment, evaluator=second.name, variant=old.name, versions="all"))
        assert len(current) == size and {row["evaluator_version"] for row in current} == {second.version}
        assert len(every) == 30 and {row["current_version"] for row in every} == {second.version} != {row["evaluator_version"] for row in every}
    assert Score.objects.filter(evaluator=first).count() == 30 + 3 + 23
