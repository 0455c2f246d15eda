"""The one grading rule: each run graded by its experiment's evaluators and its item's own
assertions, with the item's threshold; and the same verdicts on every surface that shows them."""

import pytest
from bs4 import BeautifulSoup

from evaluations import comparison, grading, services
from evaluations.grading import CheckResult, CheckSpec
from evaluations.models import Evaluator, Score, ScoreStatus
from experiments import extensions
from promptlab.accounts.models import Role
from promptlab.errors import Invalid
from tests.factories import DatasetItemFactory, ExperimentFactory, MembershipFactory, RunFactory, VariantFactory

pytestmark = pytest.mark.django_db


def check(passed, value, weight=1.0, status=ScoreStatus.OK, name="c"):
    return CheckResult(CheckSpec(name=name, weight=weight, evaluator_id=1), status, value, passed, "why")


# --- The rule in the small --------------------------------------------------------------------------


def test_every_check_must_pass_and_the_score_is_the_weighted_mean():
    # promptfoo's documented example: equals (weight 2) fails, contains (weight 1) passes: 1/3.
    result = grading.grade([check(False, 0.0, weight=2, name="equals"), check(True, 1.0)], None)

    assert (result.passed, result.score) == (False, pytest.approx(1 / 3))
    assert result.reason == "equals: why"


def test_a_threshold_decides_by_the_weighted_score_instead():
    parts = [check(False, 0.0, weight=2), check(True, 1.0)]

    assert grading.grade(parts, 0.3).passed is True
    assert grading.grade(parts, 0.5).passed is False
    assert grading.grade(parts, 0.5).reason == "Weighted score 0.33 < threshold 0.5."


def test_weight_zero_always_passes_and_zero_total_weight_scores_zero():
    assert grading.grade([check(False, 0.0, weight=0), check(True, 1.0)], None).passed is True
    assert grading.grade([check(False, 0.0, weight=0)], None).score == 0.0


def test_errored_pending_failed_call_and_nothing_to_grade_give_no_verdict():
    errored = grading.grade([check(None, None, status=ScoreStatus.ERRORED), check(False, 0.0)], None)
    assert (errored.passed, errored.errored) == (None, True)
    pending = grading.grade([check(None, None, status=grading.PENDING), check(True, 1.0)], None)
    assert (pending.passed, pending.pending) == (None, True)
    assert grading.grade([check(True, 1.0)], None, call_failed=True).errored
    assert grading.grade([], None, empty_passes=False).passed is None
    assert grading.grade([], None).passed is True  # promptfoo: a test without assertions passes


# --- Items' own assertions ------------------------------------------------------------------------


@pytest.fixture
def owner():
    return MembershipFactory(role=Role.OWNER)


def test_item_assertions_are_validated_with_the_path_and_normalized(owner):
    normalized = extensions.item_assertions_normalize(
        project=owner.project, assertions=[{"kind": "contains", "config": {"value": "Paris"}, "metric": "geo"}], where="row 2"
    )
    assert normalized == [{"kind": "contains", "config": {"value": "Paris"}, "weight": 1.0, "metric": "geo", "threshold": None,
                           "inverted": False}]  # fmt: skip

    with pytest.raises(Invalid, match=r"^row 3: assert\[1\]: Invalid regular expression"):
        extensions.item_assertions_normalize(
            project=owner.project, assertions=[{"kind": "is_json"}, {"kind": "regex", "config": {"value": "("}}], where="row 3"
        )
    with pytest.raises(Invalid, match=r"row 4: assert\[0\]: unknown keys value"):
        extensions.item_assertions_normalize(project=owner.project, assertions=[{"kind": "contains", "value": "x"}], where="row 4")
    with pytest.raises(Invalid, match=r"row 5: assert\[0\]: The weight must be a number of 0 or more"):
        extensions.item_assertions_normalize(project=owner.project, assertions=[{"kind": "is_json", "weight": -1}], where="row 5")


def test_the_inline_evaluator_prefix_is_kept_from_people(owner):
    with pytest.raises(Invalid, match="kept for items' own assertions"):
        services.evaluator_create(project=owner.project, actor=owner.user, name="assert-mine", kind="is_json")


@pytest.fixture
def suite(owner):
    """A promptfoo-like suite: item 1 wants JSON, item 2 wants anything but JSON, item 3 has a
    threshold over two weighted checks; no evaluator is attached. One variant answers JSON on
    every item, the other plain text."""
    experiment = ExperimentFactory(project=owner.project, status="finished")
    normalize = lambda assertions: extensions.item_assertions_normalize(project=owner.project, assertions=assertions, where="test")  # noqa: E731
    items = [
        DatasetItemFactory(dataset=experiment.dataset, assertions=normalize([{"kind": "is_json"}])),
        DatasetItemFactory(dataset=experiment.dataset, assertions=normalize([{"kind": "is_json", "inverted": True}])),
        DatasetItemFactory(
            dataset=experiment.dataset, threshold=0.6,
            assertions=normalize([{"kind": "contains", "config": {"value": "ok"}, "weight": 2}, {"kind": "is_json", "metric": "format"}]),
        ),  # fmt: skip
    ]
    json_variant = VariantFactory(experiment=experiment, name="json")
    text_variant = VariantFactory(experiment=experiment, name="text")
    for item in items:
        for variant, output in ((json_variant, '{"status": "ok"}'), (text_variant, "all ok")):
            run = RunFactory(experiment=experiment, variant=variant, item=item, output=output)
            outcome = services.score_run(run_id=run.pk)
            assert outcome.errored == 0
    experiment.owner, experiment.json, experiment.text = owner, json_variant, text_variant
    return experiment


def test_each_run_is_graded_by_its_own_items_assertions_not_the_union(suite):
    grades = {(run.variant_id, run.item_id): run.grade for run in grading.experiment_grades(suite)}
    items = list(suite.dataset.items.order_by("row"))

    # JSON answers: item 1 passes, item 2 fails, item 3 scores (2*1 + 1*1)/3 = 1 >= 0.6.
    assert [grades[(suite.json.pk, item.pk)].passed for item in items] == [True, False, True]
    # Text answers: item 1 fails, item 2 passes, item 3 scores (2*1 + 0)/3 = 0.67 >= 0.6: passes on the threshold.
    assert [grades[(suite.text.pk, item.pk)].passed for item in items] == [False, True, True]
    assert grades[(suite.text.pk, items[2].pk)].score == pytest.approx(2 / 3)
    # Identical assertions share one hidden evaluator; none is listed or attached.
    assert Evaluator.objects.filter(project=suite.project, inline=True).count() == 3
    assert not services.selectors.evaluator_list(project=suite.project).exists()


def test_the_comparison_api_page_and_matrix_agree_on_the_counts(suite, client):
    result = comparison.experiment_comparison(experiment=suite)
    assert [(v.summary.passed, v.summary.graded) for v in result.variants] == [(2, 3), (2, 3)]
    names = {check.name for check in result.checks}
    assert names == {"is_json", "contains", "format"}

    client.force_login(suite.owner.user)
    api = client.get(f"/api/v1/experiments/{suite.pk}/comparison/").json()
    assert [(v["passed"], v["graded"]) for v in api["variants"]] == [(2, 3), (2, 3)]

    stats = BeautifulSoup(client.get(f"/experiments/{suite.pk}/comparison/stats/").content, "html.parser")
    shown = [stats.select_one(f'#variant-summary tr[data-variant-id="{v.pk}"] .passed-graded').get_text() for v in (suite.json, suite.text)]
    assert shown == ["2/3", "2/3"]

    matrix = BeautifulSoup(client.get(f"/experiments/{suite.pk}/comparison/", {"failures": "1"}).content, "html.parser")
    failing_rows = [int(tr["data-row"]) for tr in matrix.select("#matrix tbody tr[data-row]")]
    rows = list(suite.dataset.items.order_by("row").values_list("row", flat=True))
    assert failing_rows == rows[:2]  # each fails under one variant; the third item passes under both


def test_editing_an_items_assertions_regrades_with_the_new_ones_only(suite):
    item = suite.dataset.items.get(row=suite.dataset.items.order_by("row").first().row)
    item.assertions = extensions.item_assertions_normalize(
        project=suite.project, assertions=[{"kind": "contains", "config": {"value": "status"}}], where="edit"
    )
    item.save()
    text_run = item.runs.get(variant=suite.text)

    assert grading.experiment_grades(suite, run_ids=[text_run.pk])[0].grade.pending  # the new check is not scored yet
    services.score_run(run_id=text_run.pk)
    assert grading.experiment_grades(suite, run_ids=[text_run.pk])[0].grade.passed is False
    assert Score.objects.filter(run=text_run).count() == 2  # the old score is kept, but no longer counts
