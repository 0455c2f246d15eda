"""N+1 guards for the prompt selectors the pages and the API share: the same queries at N
rows and at N+20, with everything their callers read from each row."""

import pytest

from promptlab.accounts.models import Role
from prompts import selectors, services
from tests.factories import MembershipFactory, ModelEndpointFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner():
    return MembershipFactory(role=Role.OWNER)


def test_prompt_search_reads_the_same_queries_at_any_size(owner, django_assert_num_queries):
    endpoint = ModelEndpointFactory()

    def grow(size):
        for number in range(selectors.prompt_list(project=owner.project).count(), size):
            prompt = services.prompt_create(
                project=owner.project, actor=owner.user, name=f"p{number}", message="m", template="Hi", endpoint=endpoint,
                description="about refunds", tags=["t", f"t{number}"],
            )  # fmt: skip
            services.label_move(prompt=prompt, actor=owner.user, label="production", version=1)

    for size in (3, 23):
        grow(size)
        with django_assert_num_queries(2):  # the prompts (with model, project, last author), their labels
            prompts = list(selectors.prompt_search(project=owner.project, name="p", text="refund", tag="t", label="production"))
            rows = [(p.endpoint.name, p.project.slug, p.last_author, [label.name for label in p.labels.all()]) for p in prompts]
        assert len(rows) == size and rows[0][2] == owner.user.email and rows[0][3] == ["production"]


def test_prompt_timeline_and_labels_read_the_same_queries_at_any_length(owner, django_assert_num_queries):
    prompt = services.prompt_create(
        project=owner.project, actor=owner.user, name="p", message="m", template="v1", endpoint=ModelEndpointFactory()
    )

    for length in (3, 23):
        for number in range(prompt.version + 1, length + 1):
            prompt = services.prompt_update(prompt=prompt, actor=owner.user, message=f"v{number}", template=f"v{number}")
            services.label_move(prompt=prompt, actor=owner.user, label=f"l{number}", version=number)
        prompt = selectors.prompt_get(project=owner.project, name="p")
        with django_assert_num_queries(1):  # the versions with their authors; the labels came with the prompt
            labels = selectors.prompt_labels_by_version(prompt=prompt)
            rows = [(record.version, record.history_user.email) for record in selectors.prompt_timeline(prompt=prompt)]
        assert [version for version, _ in rows] == list(range(length, 0, -1))
        assert labels[length] == [f"l{length}"]
