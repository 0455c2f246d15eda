"""Human ratings: one per (run, person), several people per run, one scale per experiment."""

import pytest
from django.db import IntegrityError, transaction

from evaluations import selectors, services
from evaluations.models import HumanRating
from promptlab.accounts.models import Role
from promptlab.errors import Forbidden, Invalid
from tests.factories import MembershipFactory, RunFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def run():
    return RunFactory()


def member(run, role=Role.VIEWER):
    return MembershipFactory(project=run.experiment.project, role=role).user


def test_a_second_rating_by_the_same_person_replaces_the_first(run):
    reviewer = member(run)
    services.rating_set(run=run, actor=reviewer, scale="five", value=2, comment="Too long")
    services.rating_set(run=run, actor=reviewer, scale="five", value=4, comment="  Better on reread  ")

    rating = HumanRating.objects.get()
    assert (rating.user, rating.value, rating.comment) == (reviewer, 4, "Better on reread")


def test_several_people_rate_one_run_and_the_selector_returns_one_row_per_run_and_rater(run):
    other_run = RunFactory(experiment=run.experiment, variant=run.variant)
    alice, bob = member(run), member(run, Role.EDITOR)
    services.rating_set(run=run, actor=alice, scale="pass_fail", value=1)
    services.rating_set(run=run, actor=bob, scale="pass_fail", value=0, comment="Wrong unit")
    services.rating_set(run=other_run, actor=alice, scale="pass_fail", value=1)

    rows = selectors.experiment_ratings(experiment=run.experiment)
    assert {(row["run_id"], row["rater"], row["value"], row["comment"]) for row in rows} == {
        (run.pk, alice.email, 1, ""), (run.pk, bob.email, 0, "Wrong unit"), (other_run.pk, alice.email, 1, ""),
    }  # fmt: skip
    assert {row["variant_id"] for row in rows} == {run.variant_id}


def test_the_database_keeps_one_rating_per_run_and_person(run):
    reviewer = member(run)
    HumanRating.objects.create(run=run, user=reviewer, scale="thumbs", value=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        HumanRating.objects.create(run=run, user=reviewer, scale="thumbs", value=0)


@pytest.mark.parametrize(
    ("scale", "value", "message"),
    [
        ("five", 0, "is one of 1, 2, 3, 4, 5, not 0"),
        ("five", 6, "not 6"),
        ("thumbs", 2, "is one of 0, 1, not 2"),
        ("pass_fail", True, "not True"),
        ("stars", 3, "'stars' is not a rating scale: choose one of thumbs, five, pass_fail"),
    ],
)
def test_a_value_outside_the_scale_is_refused(run, scale, value, message):
    with pytest.raises(Invalid, match=message):
        services.rating_set(run=run, actor=member(run), scale=scale, value=value)
    assert not HumanRating.objects.exists()


def test_an_experiment_is_rated_on_one_scale(run):
    services.rating_set(run=run, actor=member(run), scale="five", value=3)
    with pytest.raises(Invalid, match="This experiment is rated on the 1 to 5 scale"):
        services.rating_set(run=run, actor=member(run), scale="thumbs", value=1)
    only = member(run)
    services.rating_set(run=RunFactory(), actor=UserFactory(is_superuser=True), scale="thumbs", value=1)  # another experiment
    services.rating_set(run=run, actor=only, scale="five", value=5)
    assert HumanRating.objects.filter(run=run).count() == 2


def test_only_members_rate_and_only_answered_runs(run):
    with pytest.raises(Forbidden):
        services.rating_set(run=run, actor=UserFactory(), scale="five", value=3)
    with pytest.raises(Invalid, match="sign in"):
        services.rating_set(run=run, actor=None, scale="five", value=3)
    failed = RunFactory(experiment=run.experiment, variant=run.variant, status="failed")
    with pytest.raises(Invalid, match="Only answered runs can be rated; this one is failed"):
        services.rating_set(run=failed, actor=member(run), scale="five", value=3)


def test_people_remove_their_own_rating_and_admins_anyones(run):
    alice, bob, admin = member(run), member(run), member(run, Role.ADMIN)
    services.rating_set(run=run, actor=alice, scale="thumbs", value=1)
    services.rating_set(run=run, actor=bob, scale="thumbs", value=0)

    with pytest.raises(Forbidden):
        services.rating_delete(run=run, actor=bob, user=alice)
    services.rating_delete(run=run, actor=bob)
    services.rating_delete(run=run, actor=admin, user=alice)
    assert not HumanRating.objects.exists()
