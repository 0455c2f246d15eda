"""`setup`: a project with a prompt at two versions (production on v1) and a five-item dataset (tests/conftest.py two_versions)."""

import pytest

from experiments import services


@pytest.fixture
def setup(two_versions):
    return two_versions


def make(setup, **kwargs):
    owner, prompt, dataset, _ = setup
    variants = [{"name": "prod", "prompt": prompt, "label": "production"}, {"name": "v2", "prompt": prompt, "version": 2}]
    return services.experiment_create(project=owner.project, actor=owner.user, name="cmp", dataset=dataset, variants=variants, **kwargs)
