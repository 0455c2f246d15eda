from django.db.models import Case, Count, Exists, F, OuterRef, Q, QuerySet, When
from django.shortcuts import get_object_or_404

from experiments.models import Dataset, DatasetItem, Experiment, Run, RunStatus, Variant, display_apart
from promptlab.accounts import selectors as account_selectors
from promptlab.accounts.models import Project
from promptlab.errors import NotFound
from promptlab.llm.models import COST_UNKNOWN


def experiment_for(*, user, pk: int) -> Experiment:
    """The experiment if the user may see its project, else 404 (existence is not revealed)."""
    visible = account_selectors.project_list_for(user=user).values("pk")
    return get_object_or_404(Experiment.objects.select_related("project", "dataset"), pk=pk, project__in=visible)


def dataset_list(*, project: Project) -> QuerySet[Dataset]:
    """The project's datasets by name, each annotated with `item_count`."""
    return Dataset.objects.filter(project=project).select_related("project").annotate(item_count=Count("items")).order_by("name")


def dataset_get(*, project: Project, name: str) -> Dataset:
    """The project's dataset by name with its `item_count`; NotFound otherwise (another
    project's is not found either)."""
    dataset = dataset_list(project=project).filter(name=name).first()
    if dataset is None:
        raise NotFound(f"There is no dataset named {name!r} in this project.", details={"dataset": name})
    return dataset


def dataset_items(*, dataset: Dataset) -> QuerySet[DatasetItem]:
    """The dataset's items in row order."""
    return dataset.items.order_by("row")


def dataset_item(*, dataset: Dataset, row: int) -> DatasetItem:
    """The dataset's item at this row; NotFound otherwise."""
    item = dataset.items.filter(row=row).select_related("dataset__project").first()
    if item is None:
        raise NotFound(f"The dataset {dataset.name} has no row {row}.", details={"row": row})
    return item


def experiment_list(*, project: Project) -> QuerySet[Experiment]:
    """The project's experiments, newest first, each with `run_count`, `finished_count` and `spent`."""
    finished = Q(runs__status__in=[RunStatus.DONE, RunStatus.FAILED, RunStatus.SKIPPED, RunStatus.CANCELLED])
    return with_spent(
        Experiment.objects.filter(project=project).select_related("dataset")
        .annotate(run_count=Count("runs"), finished_count=Count("runs", filter=finished))
        .order_by("-created_at", "-id")  # the id breaks ties, so pages of the list never overlap
    )  # fmt: skip


def with_spent(experiments: QuerySet[Experiment]) -> QuerySet[Experiment]:
    """Each experiment with `spent`: what its runs cost, None when one's cost is unknown."""
    unknown = Run.objects.filter(COST_UNKNOWN, experiment=OuterRef("pk"))
    return experiments.annotate(spent=Case(When(Exists(unknown), then=None), default=F("spent_usd")))


def variant_list(*, experiment: Experiment) -> list[Variant]:
    """The experiment's variants in order, with their prompts and models, each `display`
    telling it from the others."""
    return display_apart(list(experiment.variants.select_related("prompt", "endpoint").order_by("pk")))


def experiment_get(*, project: Project, pk: int) -> Experiment:
    """The project's experiment with its dataset and variants (their prompts and models);
    NotFound otherwise."""
    experiment = (
        Experiment.objects.filter(project=project, pk=pk).select_related("project", "dataset")
        .prefetch_related("variants__prompt", "variants__endpoint").first()
    )  # fmt: skip
    if experiment is None:
        raise NotFound(f"There is no experiment {pk} in this project.", details={"experiment": pk})
    return experiment


def run_list(*, experiment: Experiment, status: str = "", variant: str = "") -> QuerySet[Run]:
    """The experiment's runs by item row, variant and repeat, with their variant and item;
    only those of `status` and of the variant named `variant`, when given."""
    runs = Run.objects.filter(experiment=experiment).select_related("variant", "item").order_by("item__row", "variant_id", "repeat", "id")
    if status:
        runs = runs.filter(status=status)
    if variant:
        runs = runs.filter(variant__name=variant)
    return runs
