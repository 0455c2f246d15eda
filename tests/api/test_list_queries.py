"""N+1 guards: every list endpoint makes the same number of queries at N and N+20 rows."""

import pytest

from experiments.models import DatasetItem, Run
from prompts import services as prompt_services
from tests.factories import DatasetFactory, ExperimentFactory, VariantFactory

pytestmark = pytest.mark.django_db


def add_prompts(owner, endpoint, start, count):
    for n in range(start, start + count):
        prompt = prompt_services.prompt_create(
            project=owner.project, actor=owner.user, name=f"p{n}", message="m", template="Hi {{ x }}", endpoint=endpoint, tags=["t"]
        )
        prompt_services.label_move(prompt=prompt, actor=owner.user, label="production", version=1)


@pytest.mark.parametrize("filters", ["", "&tag=t&label=production&name=p"])
def test_prompt_list(read, owner, endpoint, filters):
    url = f"/api/v1/prompts/?page_size=100{filters}"
    add_prompts(owner, endpoint, 0, 3)
    read(url, 4)
    add_prompts(owner, endpoint, 3, 20)
    read(url, 4)


def test_version_list(read, prompt, owner):
    read("/api/v1/prompts/greet/versions/?page_size=100", 5)
    for n in range(20):
        prompt_services.prompt_update(prompt=prompt, actor=owner.user, message=f"v{n}", template=f"Hi {{{{ name }}}} {n}")
        prompt_services.label_move(prompt=prompt, actor=owner.user, label=f"l{n}", version=n + 3)
    read("/api/v1/prompts/greet/versions/?page_size=100", 5)


def test_dataset_and_item_lists(read, project):
    dataset = DatasetFactory(project=project, name="cases")
    DatasetItem.objects.bulk_create([DatasetItem(dataset=dataset, row=n, vars={"q": n}) for n in range(1, 4)])
    read("/api/v1/datasets/?page_size=100", 3)
    read("/api/v1/datasets/cases/items/?page_size=100", 4)
    for n in range(20):
        DatasetItem.objects.create(dataset=DatasetFactory(project=project), row=1, vars={})
    DatasetItem.objects.bulk_create([DatasetItem(dataset=dataset, row=n, vars={"q": n}) for n in range(4, 24)])
    read("/api/v1/datasets/?page_size=100", 3)
    read("/api/v1/datasets/cases/items/?page_size=100", 4)


def test_experiment_and_run_lists(read, project):
    experiment = ExperimentFactory(project=project)
    variant = VariantFactory(experiment=experiment)

    def add_runs(start, count):
        for n in range(start, start + count):
            item = DatasetItem.objects.create(dataset=experiment.dataset, row=n, vars={})
            Run.objects.create(experiment=experiment, variant=variant, item=item, status="done", output="x")

    add_runs(1, 3)
    url = f"/api/v1/experiments/{experiment.pk}/runs/?page_size=100"
    read("/api/v1/experiments/?page_size=100", 3)
    read(url, 6)
    add_runs(4, 20)
    for _ in range(20):
        ExperimentFactory(project=project)
    read("/api/v1/experiments/?page_size=100", 3)
    read(url, 6)
