"""The prompt list page and the list API find prompts through one selector: the same prompts
for a tag on SQLite and on PostgreSQL (CI runs this file on both)."""

import pytest
from bs4 import BeautifulSoup
from django.test import Client

from prompts import services as prompt_services

pytestmark = pytest.mark.django_db

# What each prompt is tagged with; a tag matches only itself, whole and in the same case.
TAGS = {
    "plain": ["support"],
    "among-others": ["billing", "support"],
    "other-case": ["Support"],
    "longer": ["support-team"],
    "quoted": ['say "support"'],
    "untagged": [],
}


@pytest.fixture
def tagged(owner, endpoint):
    for name, tags in TAGS.items():
        prompt_services.prompt_create(
            project=owner.project, actor=owner.user, name=name, message="m", template="Hi", endpoint=endpoint, tags=tags
        )


def page_names(owner, **query) -> list[str]:
    client = Client()
    client.force_login(owner.user)
    response = client.get(f"/projects/{owner.project.slug}/prompts/", query)
    assert response.status_code == 200
    rows = BeautifulSoup(response.content, "html.parser").select("#prompt-list tbody tr")
    return [row["id"].removeprefix("prompt-") for row in rows]


def api_names(api, **query) -> list[str]:
    response = api.get("/api/v1/prompts/", query)
    assert response.status_code == 200, response.content
    return [prompt["name"] for prompt in response.json()["results"]]


@pytest.mark.parametrize(
    ("tag", "found"),
    [("support", ["among-others", "plain"]), ("Support", ["other-case"]), ('say "support"', ["quoted"]), ("nope", [])],
)
def test_the_page_and_the_api_find_the_same_prompts_for_a_tag(tagged, owner, api, tag, found):
    assert page_names(owner, tag=tag) == found
    assert api_names(api, tag=tag) == found


def test_the_api_name_matches_the_name_and_the_page_text_the_description_too(owner, api, endpoint):
    for name, description in [("refund-reply", ""), ("greeting", "Answers refund questions")]:
        prompt_services.prompt_create(
            project=owner.project, actor=owner.user, name=name, message="m", template="Hi", endpoint=endpoint,
            description=description,
        )  # fmt: skip

    assert api_names(api, name="refund") == ["refund-reply"]
    assert page_names(owner, q="refund") == ["greeting", "refund-reply"]
