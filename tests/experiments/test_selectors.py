"""N+1 guards for the dataset, experiment and run selectors the pages and the API share: the
same queries at N rows and at N+20, with everything their callers read from each row; and
the by-name reads the API answers 404 with."""

import pytest

from experiments import selectors
from experiments.models import DatasetItem, RunStatus
from promptlab.accounts.models import Role
from promptlab.errors import NotFound
from tests.factories import DatasetFactory, ExperimentFactory, MembershipFactory, ProjectFactory, RunFactory, VariantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def project():
    return MembershipFactory(role=Role.OWNER).project


def test_dataset_list_and_items_read_the_same_queries_at_any_size(project, django_assert_num_queries):
    dataset = DatasetFactory(project=project, name="cases")
    DatasetFactory(project=ProjectFactory())  # another project's: never listed

    for size in (3, 23):
        while selectors.dataset_list(project=project).count() < size:
            DatasetItem.objects.create(dataset=DatasetFactory(project=project), row=1, vars={})
        DatasetItem.objects.bulk_create([DatasetItem(dataset=dataset, row=row, vars={}) for row in range(dataset.items.count() + 1, size + 1)])
        with django_assert_num_queries(2):  # the datasets with their item counts and project; the items
            datasets = [(d.name, d.item_count, d.project.slug) for d in selectors.dataset_list(project=project)]
            rows = [item.row for item in selectors.dataset_items(dataset=dataset)]
        assert len(datasets) == size and ("cases", size, project.slug) in datasets
        assert rows == list(range(1, size + 1))


def test_experiment_and_run_lists_read_the_same_queries_at_any_size(project, django_assert_num_queries):
    experiment = ExperimentFactory(project=project)
    variant = VariantFactory(experiment=experiment, name="a")

    for size in (3, 23):
        while selectors.experiment_list(project=project).count() < size:
            ExperimentFactory(project=project)
        for _ in range(experiment.runs.count(), size):
            RunFactory(experiment=experiment, variant=variant, status=RunStatus.DONE)
        with django_assert_num_queries(2):  # the experiments with their datasets and counts; the runs with variant and item
            experiments = [(e.dataset.name, e.run_count, e.finished_count) for e in selectors.experiment_list(project=project)]
            runs = [(run.variant.name, run.item.row) for run in selectors.run_list(experiment=experiment, status=RunStatus.DONE, variant="a")]
        assert len(experiments) == size and (experiment.dataset.name, size, size) in experiments
        assert len(runs) == size


def test_the_api_reads_by_name_and_id_are_not_found_in_another_project(project):
    theirs = ExperimentFactory(project=ProjectFactory())

    with pytest.raises(NotFound) as dataset:
        selectors.dataset_get(project=project, name=theirs.dataset.name)
    with pytest.raises(NotFound) as experiment:
        selectors.experiment_get(project=project, pk=theirs.pk)

    assert dataset.value.details == {"dataset": theirs.dataset.name} and experiment.value.details == {"experiment": theirs.pk}
    assert selectors.experiment_get(project=theirs.project, pk=theirs.pk).dataset == theirs.dataset
