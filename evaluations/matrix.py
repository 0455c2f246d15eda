"""The comparison matrix: dataset items as rows, variants as columns, each cell the item's
runs under that variant with their scores and ratings. Filters and the sort run in the
database, and a page reads a fixed number of queries however large the experiment."""

import json
from collections import defaultdict
from dataclasses import dataclass, field

from django.core.paginator import Page, Paginator
from django.db.models import Avg, Count, Exists, OuterRef, Q, QuerySet, TextField
from django.db.models.functions import Cast

from evaluations import grading
from evaluations.models import Evaluator, HumanRating, RatingScale, Score, ScoreStatus
from experiments.models import DatasetItem, Experiment, Run, Variant
from promptlab.errors import Invalid
from promptlab.money import usd

PAGE_SIZE = 50


@dataclass(frozen=True)
class MatrixQuery:
    """What the matrix shows: filters, sort and page, read from the page's query string."""

    failures: bool = False  # items where some run failed, errored or did not pass
    disagree: bool = False  # items where one variant passes and another does not
    search: str = ""  # in the item's variables, expected output, or any run's output
    below: Evaluator | None = None  # items some run of which scores below this evaluator's threshold
    sort: str = ""  # "" = dataset order; "diff" = largest score difference b - a first
    a: Variant | None = None
    b: Variant | None = None
    page: int = 1


def matrix_query_from(params, *, variants: list[Variant], evaluators: list[Evaluator]) -> MatrixQuery:
    """Parse the query string; Invalid naming the parameter when one is malformed."""
    by_id = {str(variant.pk): variant for variant in variants}
    evaluators_by_id = {str(evaluator.pk): evaluator for evaluator in evaluators}

    def choice(name, options):
        value = params.get(name) or None
        if value is not None and value not in options:
            raise Invalid(f"Unknown {name} {value!r} for this experiment.", details={name: value})
        return options.get(value) if value is not None else None

    sort = params.get("sort", "")
    if sort not in ("", "diff"):
        raise Invalid(f"Unknown sort {sort!r}: use sort=diff or leave it out.", details={"sort": sort})
    a, b = choice("a", by_id), choice("b", by_id)
    if sort == "diff":
        if len(variants) < 2:
            raise Invalid("Sorting by score difference needs two variants.", details={"sort": sort})
        a, b = a or variants[0], b or variants[1]
    page = params.get("page", "1")
    if not page.isdigit() or int(page) < 1:
        raise Invalid(f"The page must be a positive number, not {page!r}.", details={"page": page})
    search = params.get("q", "").strip()
    if len(search) > 200:
        raise Invalid("The search text is at most 200 characters.", details={"q": len(search)})
    return MatrixQuery(
        failures=params.get("failures") == "1", disagree=params.get("disagree") == "1", search=search,
        below=choice("below", evaluators_by_id), sort=sort, a=a, b=b, page=int(page),
    )  # fmt: skip


@dataclass
class Cell:
    variant: Variant
    runs: list[Run] = field(default_factory=list)  # one per repeat; each carries .badges and .rating_summary


@dataclass
class Row:
    item: DatasetItem
    cells: list[Cell]


def _items(experiment: Experiment, query: MatrixQuery) -> QuerySet[DatasetItem] | list[int]:
    """The items to show, in order: a query in dataset order, or, when a filter or the sort
    needs verdicts, the ids in order. Verdicts come from the grading rule, as everywhere."""
    items = DatasetItem.objects.filter(dataset_id=experiment.dataset_id)
    runs = Run.objects.filter(experiment=experiment, item=OuterRef("pk"))
    if query.search:
        items = items.annotate(vars_text=Cast("vars", TextField())).filter(
            Q(vars_text__icontains=query.search) | Q(expected__icontains=query.search)
            | Q(Exists(runs.filter(output__icontains=query.search)))
        )  # fmt: skip
    if query.below is not None:
        scores = Score.objects.filter(run__experiment=experiment, evaluator=query.below, evaluator_version=query.below.version)
        low = Q(value__lt=query.below.threshold) if query.below.threshold is not None else Q(passed=False)
        items = items.filter(Exists(scores.filter(low, status=ScoreStatus.OK, run__item=OuterRef("pk"))))
    if not (query.failures or query.disagree or query.sort == "diff"):
        return items.order_by("row")
    verdicts = _item_verdicts(experiment)
    if query.failures:
        items = items.filter(pk__in=[item for item, found in verdicts.items() if found.failing])
    if query.disagree:
        items = items.filter(pk__in=[item for item, found in verdicts.items() if found.failing and found.passing])
    ids = list(items.order_by("row").values_list("pk", flat=True))
    if query.sort == "diff":
        def gain(item_id):
            found = verdicts.get(item_id)
            a, b = (found.mean_score(query.a.pk), found.mean_score(query.b.pk)) if found else (None, None)
            return (0, -(b - a)) if a is not None and b is not None else (1, 0)

        ids.sort(key=gain)  # stable: ties keep dataset order
    return ids


@dataclass
class _ItemVerdicts:
    failing: bool = False  # some run failed, errored or did not pass
    passing: bool = False  # some run passed
    scores: dict = field(default_factory=lambda: defaultdict(list))  # variant id -> graded runs' scores

    def mean_score(self, variant_id: int) -> float | None:
        values = self.scores.get(variant_id)
        return sum(values) / len(values) if values else None


def _item_verdicts(experiment: Experiment) -> dict[int, _ItemVerdicts]:
    verdicts = defaultdict(_ItemVerdicts)
    for run in grading.experiment_grades(experiment):
        grade = run.grade
        if grade is None or grade.pending or (grade.passed is None and not grade.errored):
            continue
        found = verdicts[run.item_id]
        found.failing |= grade.errored or grade.passed is False
        found.passing |= grade.passed is True
        if grade.score is not None:
            found.scores[run.variant_id].append(grade.score)
    return verdicts


def matrix_page(*, experiment: Experiment, query: MatrixQuery, variants: list[Variant], user) -> tuple[Page, list[Row]]:
    """One page of rows (a page past the end shows the last one)."""
    page = Paginator(_items(experiment, query), PAGE_SIZE).get_page(query.page)
    items = list(page.object_list)
    if items and not isinstance(items[0], DatasetItem):
        by_id = DatasetItem.objects.in_bulk(items)
        items = [by_id[pk] for pk in items]
    return page, matrix_rows(experiment=experiment, items=items, variants=variants, user=user)


def matrix_rows(*, experiment: Experiment, items: list[DatasetItem], variants: list[Variant], user) -> list[Row]:
    """For each item and variant, the item's runs with their verdict and check badges (name,
    status, value, passed, reason) and ratings (count, mean, the user's own): a fixed number
    of queries."""
    runs = list(
        Run.objects.filter(experiment=experiment, item__in=items, variant__in=variants).order_by("variant_id", "item_id", "repeat").only(
            "id", "variant_id", "item_id", "repeat", "status", "output", "latency_ms", "cost_usd", "prompt_tokens", "error", "error_kind"
        )
    )  # fmt: skip
    grades = {run.run_id: run.grade for run in grading.experiment_grades(experiment, run_ids=[run.pk for run in runs])}
    ratings = defaultdict(list)
    for rating in HumanRating.objects.filter(run__in=runs).values("run_id", "user_id", "value"):
        ratings[rating["run_id"]].append(rating)
    cells = {(item.pk, variant.pk): Cell(variant) for item in items for variant in variants}
    for run in runs:
        run.badges = _badges(grades.get(run.pk))
        run.rating_summary = rating_summary(ratings[run.pk], user)
        run.summary = _shorten(run.output, 140)
        run.meta = " · ".join(
            ([f"{run.latency_ms:.0f} ms"] if run.latency_ms is not None else [])
            + ([usd(run.cost_usd, 5)] if run.cost_usd is not None or run.prompt_tokens is not None else [])
        )  # fmt: skip
        cells[(run.item_id, run.variant_id)].runs.append(run)
    for item in items:
        item.shown_vars = [(name, _shorten(value if isinstance(value, str) else json.dumps(value), 80)) for name, value in item.vars.items()]
    return [Row(item, [cells[(item.pk, variant.pk)] for variant in variants]) for item in items]


def _badges(grade) -> list[dict]:
    """The run's verdict, then each check's score, as the cell shows them (text prepared here:
    a page has hundreds of them)."""
    if grade is None or (not grade.checks and grade.passed is None and not grade.errored):
        return []
    if grade.errored:
        verdict = {"label": "errored", "css": "errored", "reason": grade.reason}
    elif grade.pending:
        verdict = {"label": "scoring", "css": "pending", "reason": grade.reason}
    else:
        verdict = {"label": f"{'pass' if grade.passed else 'fail'} {grade.score:.2f}", "css": "pass" if grade.passed else "fail",
                   "reason": grade.reason}  # fmt: skip
    checks = sorted((_badge(check) for check in grade.checks if check.status != grading.PENDING), key=lambda badge: badge["label"])
    return [verdict | {"verdict": True}, *checks]


def _badge(check) -> dict:
    name = check.spec.name
    if check.status == ScoreStatus.ERRORED:
        return {"label": f"{name} errored", "css": "errored", "reason": check.reason}
    return {"label": f"{name} {check.value:.2f}", "css": "pass" if check.counts_as_passed else "fail", "reason": check.reason}


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def rating_summary(ratings: list[dict], user) -> dict:
    values = [rating["value"] for rating in ratings]
    mine = next((rating["value"] for rating in ratings if rating["user_id"] == user.pk), None)
    return {"count": len(values), "mean": sum(values) / len(values) if values else None, "mine": mine}


def variant_ratings(*, experiment: Experiment) -> dict[int, dict]:
    """Per variant: how many ratings and their mean, for the aggregate above the matrix."""
    rows = HumanRating.objects.filter(run__experiment=experiment).values("run__variant_id").annotate(n=Count("pk"), mean=Avg("value"))
    return {row["run__variant_id"]: {"count": row["n"], "mean": row["mean"]} for row in rows}


def rating_scale(*, experiment: Experiment) -> str:
    """The scale the experiment is rated on: the one its first rating used, else thumbs."""
    return HumanRating.objects.filter(run__experiment=experiment).values_list("scale", flat=True).first() or RatingScale.THUMBS
