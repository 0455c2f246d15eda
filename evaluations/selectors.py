"""Reads of evaluators, scores and ratings, as plain rows for pages, exports and statistics."""

from collections import defaultdict
from collections.abc import Iterable, Iterator
from itertools import islice

from django.db.models import BooleanField, ExpressionWrapper, F, Q, QuerySet

from evaluations.models import Evaluator, ExperimentEvaluator, HumanRating, Score
from experiments import selectors as experiment_selectors
from experiments.models import DatasetItem, Experiment
from promptlab.accounts.models import Project
from promptlab.errors import Invalid
from promptlab.llm.models import COST_UNKNOWN


def evaluator_list(*, project: Project, enabled_only: bool = False) -> QuerySet[Evaluator]:
    """The project's evaluators, without those made for items' own assertions."""
    evaluators = Evaluator.objects.filter(project=project, inline=False)
    return (evaluators.filter(enabled=True) if enabled_only else evaluators).order_by("name")


def evaluators_named(*, project: Project, refs: list[str | int]) -> list[Evaluator]:
    """The project's evaluators by name (a string) or id (a number), in the order given, each
    once. Unknown ones, and another project's, are refused alike, all named at once."""
    names = {ref for ref in refs if isinstance(ref, str)}
    ids = {ref for ref in refs if isinstance(ref, int)}
    found = list(evaluator_list(project=project).filter(Q(name__in=names) | Q(pk__in=ids)))
    by_ref = {evaluator.name: evaluator for evaluator in found} | {evaluator.pk: evaluator for evaluator in found}
    if missing := [ref for ref in refs if ref not in by_ref]:
        raise Invalid(
            f"There is no evaluator {', '.join(map(repr, missing))} in this project (give evaluators by name or id).",
            details={"evaluators": missing},
        )
    return list({by_ref[ref].pk: by_ref[ref] for ref in refs}.values())


def evaluators_of_experiment(*, experiment_id: int, ids: list[int] | None = None, enabled_only: bool = True) -> QuerySet[Evaluator]:
    """The (enabled) evaluators attached to the experiment; only those of `ids`, when given."""
    evaluators = Evaluator.objects.filter(experiment_links__experiment_id=experiment_id)
    if enabled_only:
        evaluators = evaluators.filter(enabled=True)
    if ids is not None:
        evaluators = evaluators.filter(pk__in=ids)
    return evaluators.order_by("pk")


def _scores_of(experiment: Experiment) -> QuerySet[Score]:
    """Scores of the experiment's runs at each evaluator's current version: never a mix of
    versions for one evaluator."""
    return Score.objects.filter(run__experiment=experiment, evaluator_version=F("evaluator__version"))


def score_list(*, experiment: Experiment, evaluator: str = "", status: str = "", variant: str = "",
               versions: str = "current") -> QuerySet:  # fmt: skip
    """The experiment's scores as rows, by item row, variant, repeat and evaluator: at each
    evaluator's current version, or every version kept (`versions="all"`); only those of the
    evaluator, status and variant named, when given."""
    scores = _scores_of(experiment) if versions == "current" else Score.objects.filter(run__experiment=experiment)
    if evaluator:
        scores = scores.filter(evaluator__name=evaluator)
    if status:
        scores = scores.filter(status=status)
    if variant:
        scores = scores.filter(run__variant__name=variant)
    return scores.order_by("run__item__row", "run__variant_id", "run__repeat", "evaluator__name", "evaluator_version").values(
        "run_id", "status", "value", "passed", "reason", "error_kind", "cost_usd", "evaluator_version", "updated_at",
        variant=F("run__variant__name"), row=F("run__item__row"), repeat=F("run__repeat"),
        evaluator_name=F("evaluator__name"), current_version=F("evaluator__version"),
    )  # fmt: skip


def attached_evaluators(*, experiment_ids: Iterable[int]) -> QuerySet:
    """The enabled evaluators attached to the experiments, as rows: experiment_id, evaluator_id, name, weight, version."""
    return (
        ExperimentEvaluator.objects.filter(experiment_id__in=list(experiment_ids), evaluator__enabled=True)
        .order_by("experiment_id", "evaluator_id")
        .values("experiment_id", "evaluator_id", name=F("evaluator__name"), weight=F("evaluator__weight"), version=F("evaluator__version"))
    )  # fmt: skip


def run_rows(*, runs: QuerySet) -> QuerySet:
    """Runs as plain rows: id, experiment, variant, item, repeat, status, latency, cost and prompt tokens."""
    return runs.order_by("pk").values(
        "id", "experiment_id", "variant_id", "item_id", "repeat", "status", "latency_ms", "cost_usd", "prompt_tokens"
    )


def score_map(*, runs: QuerySet) -> dict[tuple, dict]:
    """{(run id, evaluator id, evaluator version): status, value, passed, reason} of the runs'
    scores, every version kept (the grading picks the versions it needs)."""
    scores = Score.objects.filter(run__in=runs.values("pk")).values(
        "run_id", "evaluator_id", "evaluator_version", "status", "value", "passed", "reason"
    )
    return {(row["run_id"], row["evaluator_id"], row["evaluator_version"]): row for row in scores.iterator(chunk_size=5000)}


def graded_items(*, dataset_ids: Iterable[int]) -> dict[int, tuple[int, list[dict], float | None]]:
    """{item id: (its dataset, its assertions, its threshold)} of the datasets' items that have either."""
    items = DatasetItem.objects.filter(dataset_id__in=list(dataset_ids)).exclude(assertions=[], threshold__isnull=True)
    return {pk: (dataset, assertions or [], threshold) for pk, dataset, assertions, threshold in items.values_list("pk", "dataset_id", "assertions", "threshold")}  # fmt: skip


def experiment_export_rows(*, experiment: Experiment, chunk: int = 500) -> Iterator[dict]:
    """Every run of the experiment in dataset order with its item and its scores at the
    current evaluator versions ({evaluator: {status, value, passed, reason}}), read in chunks
    so a large experiment streams in bounded memory. `variant` is what people read (its
    display), `variant_name` the name the API knows it by; `cost_unknown` says a null cost is
    unknown (an answer from a model without a price) rather than nothing billed."""
    names = dict(evaluators_of_experiment(experiment_id=experiment.pk).values_list("pk", "name"))
    displays = {variant.pk: variant.display for variant in experiment_selectors.variant_list(experiment=experiment)}
    runs = (
        experiment.runs.order_by("item__row", "variant_id", "repeat")
        .values("id", "repeat", "status", "output", "error", "latency_ms", "cost_usd", "variant_id",
                cost_unknown=ExpressionWrapper(COST_UNKNOWN, output_field=BooleanField()),
                row=F("item__row"), vars=F("item__vars"), expected=F("item__expected"), variant_name=F("variant__name"))
        .iterator(chunk_size=chunk)
    )  # fmt: skip
    while batch := list(islice(runs, chunk)):
        scores = defaultdict(dict)
        for score in _scores_of(experiment).filter(run_id__in=[run["id"] for run in batch], evaluator_id__in=names).values(
            "run_id", "evaluator_id", "status", "value", "passed", "reason"
        ):
            scores[score["run_id"]][names[score["evaluator_id"]]] = {key: score[key] for key in ("status", "value", "passed", "reason")}
        for run in batch:
            yield {**run, "variant": displays[run.pop("variant_id")], "scores": scores[run.pop("id")]}


def experiment_ratings(*, experiment: Experiment) -> list[dict]:
    """One row per (run, rater): the run's variant, item and repeat, the rater, scale, value and comment."""
    return list(
        HumanRating.objects.filter(run__experiment=experiment)
        .order_by("run__variant_id", "run__item__row", "run__repeat", "user_id")
        .values(
            "run_id", "user_id", "scale", "value", "comment", "updated_at",
            variant_id=F("run__variant_id"), item_id=F("run__item_id"), row=F("run__item__row"), repeat=F("run__repeat"),
            rater=F("user__email"),
        )  # fmt: skip
    )
