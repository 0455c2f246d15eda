"""The comparison matrix: dataset items as rows, variants as columns, each cell the item's
runs under that variant with their scores and ratings. Filters and the sort run in the
database, and a page reads a fixed number of queries however large the experiment."""

import json
from collections import defaultdict
from dataclasses import dataclass, field

from django.core.paginator import Page, Paginator
from django.db.models import Avg, Count, Exists, F, OuterRef, Q, QuerySet, Subquery, Sum, TextField
from django.db.models.functions import Cast

from evaluations.models import Evaluator, HumanRating, RatingScale, Score, ScoreStatus
from experiments.models import DatasetItem, Experiment, Run, RunStatus, Variant
from promptlab.errors import Invalid

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


def _current_scores(experiment: Experiment, evaluators: list[Evaluator]) -> QuerySet[Score]:
    """Scores at each attached evaluator's current version."""
    return Score.objects.filter(run__experiment=experiment, evaluator__in=evaluators, evaluator_version=F("evaluator__version"))


def _items(experiment: Experiment, query: MatrixQuery, evaluators: list[Evaluator]) -> QuerySet[DatasetItem]:
    items = DatasetItem.objects.filter(dataset_id=experiment.dataset_id)
    runs = Run.objects.filter(experiment=experiment, item=OuterRef("pk"))
    scores = _current_scores(experiment, evaluators)
    not_passed = scores.filter(Q(status=ScoreStatus.ERRORED) | Q(status=ScoreStatus.OK, passed=False), run=OuterRef("pk"))
    failing = Q(status=RunStatus.FAILED) | Q(Exists(not_passed))
    if query.failures:
        items = items.filter(Exists(runs.filter(failing)))
    if query.disagree:
        passing = Q(status=RunStatus.DONE) & ~Q(Exists(not_passed))
        items = items.filter(Exists(runs.filter(passing)), Exists(runs.filter(failing)))
    if query.search:
        items = items.annotate(vars_text=Cast("vars", TextField())).filter(
            Q(vars_text__icontains=query.search) | Q(expected__icontains=query.search)
            | Q(Exists(runs.filter(output__icontains=query.search)))
        )  # fmt: skip
    if query.below is not None:
        low = Q(value__lt=query.below.threshold) if query.below.threshold is not None else Q(passed=False)
        items = items.filter(Exists(scores.filter(low, evaluator=query.below, status=ScoreStatus.OK, run__item=OuterRef("pk"))))
    if query.sort == "diff":
        items = items.annotate(score_a=_item_score(scores, query.a), score_b=_item_score(scores, query.b)).order_by(
            (F("score_b") - F("score_a")).desc(nulls_last=True), "row"
        )
    else:
        items = items.order_by("row")
    return items


def _item_score(scores: QuerySet[Score], variant: Variant) -> Subquery:
    """The item's weighted mean score under the variant (over its repeats and evaluators)."""
    weighted = (
        scores.filter(run__item=OuterRef("pk"), run__variant=variant, status=ScoreStatus.OK)
        .values("run__item")
        .annotate(score=Sum(F("value") * F("evaluator__weight")) / Sum("evaluator__weight"))
        .values("score")
    )
    return Subquery(weighted)


def matrix_page(*, experiment: Experiment, query: MatrixQuery, variants: list[Variant], evaluators: list[Evaluator],
                user) -> tuple[Page, list[Row]]:  # fmt: skip
    """One page of rows (a page past the end shows the last one)."""
    page = Paginator(_items(experiment, query, evaluators), PAGE_SIZE).get_page(query.page)
    return page, matrix_rows(experiment=experiment, items=list(page.object_list), variants=variants, evaluators=evaluators, user=user)


def matrix_rows(*, experiment: Experiment, items: list[DatasetItem], variants: list[Variant], evaluators: list[Evaluator],
                user) -> list[Row]:  # fmt: skip
    """For each item and variant, the item's runs with their score badges (evaluator, status,
    value, passed, reason) and ratings (count, mean, the user's own): four queries in all."""
    runs = list(
        Run.objects.filter(experiment=experiment, item__in=items, variant__in=variants).order_by("variant_id", "item_id", "repeat").only(
            "id", "variant_id", "item_id", "repeat", "status", "output", "latency_ms", "cost_usd", "error", "error_kind"
        )
    )  # fmt: skip
    badges = defaultdict(list)
    names = {evaluator.pk: evaluator.name for evaluator in evaluators}
    for score in _current_scores(experiment, evaluators).filter(run__in=runs).values(
        "run_id", "evaluator_id", "status", "value", "passed", "reason"
    ):
        badges[score["run_id"]].append(_badge(score, names[score["evaluator_id"]]))
    ratings = defaultdict(list)
    for rating in HumanRating.objects.filter(run__in=runs).values("run_id", "user_id", "value"):
        ratings[rating["run_id"]].append(rating)
    cells = {(item.pk, variant.pk): Cell(variant) for item in items for variant in variants}
    for run in runs:
        run.badges = sorted(badges[run.pk], key=lambda badge: badge["label"])
        run.rating_summary = rating_summary(ratings[run.pk], user)
        run.summary = _shorten(run.output, 140)
        run.meta = " · ".join(
            ([f"{run.latency_ms:.0f} ms"] if run.latency_ms is not None else []) + ([f"${run.cost_usd:.5f}"] if run.cost_usd is not None else [])
        )  # fmt: skip
        cells[(run.item_id, run.variant_id)].runs.append(run)
    for item in items:
        item.shown_vars = [(name, _shorten(value if isinstance(value, str) else json.dumps(value), 80)) for name, value in item.vars.items()]
    return [Row(item, [cells[(item.pk, variant.pk)] for variant in variants]) for item in items]


def _badge(score: dict, evaluator: str) -> dict:
    """A score as the cell shows it (text prepared here: a page has hundreds of them)."""
    if score["status"] == ScoreStatus.ERRORED:
        return {"label": f"{evaluator} errored", "css": "errored", "reason": score["reason"]}
    value = f" {score['value']:.2f}" if score["value"] is not None else ""
    return {"label": f"{evaluator}{value}", "css": "pass" if score["passed"] else "fail", "reason": score["reason"]}


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
