"""A project with a prompt at two versions (production on v1) and a five-item dataset."""

import pytest

from experiments import services
from experiments.models import DatasetItem
from promptlab.accounts.models import Role
from prompts import services as prompt_services
from tests.factories import DatasetFactory, MembershipFactory


@pytest.fixture
def setup(endpoint):
    owner = MembershipFactory(role=Role.OWNER)
    prompt = prompt_services.prompt_create(
        project=owner.project, actor=owner.user, name="answer", message="v1", template="Answer: {{ question }}", endpoint=endpoint
    )
    prompt_services.label_move(prompt=prompt, actor=owner.user, label="production", version=1)
    prompt = prompt_services.prompt_update(prompt=prompt, actor=owner.user, message="v2", template="Reply briefly: {{ question }}")
    dataset = DatasetFactory(project=owner.project)
    DatasetItem.objects.bulk_create([DatasetItem(dataset=dataset, row=n, vars={"question": f"q{n}"}) for n in range(1, 6)])
    return owner, prompt, dataset, endpoint


def make(setup, **kwargs):
    owner, prompt, dataset, _ = setup
    variants = [{"name": "prod", "prompt": prompt, "label": "production"}, {"name": "v2", "prompt": prompt, "version": 2}]
    return services.experiment_create(project=owner.project, actor=owner.user, name="cmp", dataset=dataset, variants=variants, **kwargs)
