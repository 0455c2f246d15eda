from django.db.models import Count, Q, QuerySet
from django.shortcuts import get_object_or_404

from experiments.models import Dataset, DatasetItem, Experiment, RunStatus
from promptlab.accounts import selectors as account_selectors
from promptlab.accounts.models import Project


def experiment_for(*, user, pk: int) -> Experiment:
    """The experiment if the user may see its project, else 404 (existence is not revealed)."""
    visible = account_selectors.project_list_for(user=user).values("pk")
    return get_object_or_404(Experiment.objects.select_related("project", "dataset"), pk=pk, project__in=visible)


def dataset_list(*, project: Project) -> QuerySet[Dataset]:
    """The project's datasets by name, each annotated with `item_count`."""
    return Dataset.objects.filter(project=project).annotate(item_count=Count("items")).order_by("name")


def dataset_for(*, project: Project, name: str) -> Dataset:
    """The project's dataset by name, else 404 (another project's is not found either)."""
    return get_object_or_404(Dataset.objects.select_related("project"), project=project, name=name)


def dataset_items(*, dataset: Dataset) -> QuerySet[DatasetItem]:
    """The dataset's items in row order, as the items page lists them."""
    return dataset.items.order_by("row")


def experiment_list(*, project: Project) -> QuerySet[Experiment]:
    """The project's experiments, newest first, each with `run_count` and `finished_count`."""
    finished = Q(runs__status__in=[RunStatus.DONE, RunStatus.FAILED, RunStatus.SKIPPED, RunStatus.CANCELLED])
    return (
        Experiment.objects.filter(project=project).select_related("dataset")
        .annotate(run_count=Count("runs"), finished_count=Count("runs", filter=finished)).order_by("-created_at")
    )  # fmt: skip
