"""Pages whose links push their URL into the browser's history answer one URL three ways: a
page load gets the page, htmx the fragment it swaps, and htmx's history restore (Back after its
history cache missed, which sends HX-Request too) the page again. Every answer names the headers
it depends on in Vary, so that no cache serves a fragment for a page load. Then the helper itself."""

from types import SimpleNamespace

import pytest
from bs4 import BeautifulSoup
from django.http import HttpResponse
from django.test import RequestFactory
from django.urls import reverse
from django_htmx.middleware import HtmxMiddleware

from promptlab.accounts.models import Role
from promptlab.htmx import page_or_fragment, wants_fragment
from prompts import services as prompt_services
from tests.factories import DatasetFactory, DatasetItemFactory, ExperimentFactory, MembershipFactory, ModelEndpointFactory, RunFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def lab():
    owner = MembershipFactory(role=Role.OWNER)
    project, user = owner.project, owner.user
    endpoint = ModelEndpointFactory(model="promptlab-demo/echo")
    prompt = prompt_services.prompt_create(project=project, actor=user, name="greet", message="First", template="Hello {{ name }}!", endpoint=endpoint)
    prompt_services.prompt_update(prompt=prompt, actor=user, message="Warmer", template="Hi there, {{ name }}!")
    dataset = DatasetFactory(project=project, name="faq")
    DatasetItemFactory.create_batch(3, dataset=dataset)
    experiment = ExperimentFactory(project=project, dataset=dataset, status="finished")
    RunFactory(experiment=experiment, item=dataset.items.first())
    return SimpleNamespace(user=user, slug=project.slug, prompt=prompt, dataset=dataset, experiment=experiment)


# (url of the page, id of the element its htmx requests swap); each page's markup pushes the
# URL (hx-push-url, or django-htmx's push_url after a POST) but the experiment's progress, which
# polls its own URL for the fragment.
PAGES = {
    "prompt list": (lambda lab: reverse("prompt_list", args=[lab.slug]) + "?q=greet", "prompt-list"),
    "prompt diff": (lambda lab: reverse("prompt_detail", args=[lab.slug, "greet"]) + "?a=1&b=2", "prompt-diff"),
    "prompt preview": (lambda lab: reverse("prompt_detail", args=[lab.slug, "greet"]) + "?version=1", "prompt-preview"),
    "dataset items": (lambda lab: reverse("dataset_detail", args=[lab.slug, "faq"]) + "?page=1", "dataset-items"),
    "playground": (lambda lab: reverse("playground", args=[lab.slug]) + f"?prompt={lab.prompt.pk}&version=1", "playground-form"),
    "comparison matrix": (lambda lab: reverse("experiment_comparison", args=[lab.experiment.pk]) + "?page=1", "matrix"),
    "analytics": (lambda lab: reverse("prompt_analytics", args=[lab.slug, "greet"]) + "?days=30", "analytics-traffic"),
    "audit log": (lambda lab: reverse("audit_log", args=[lab.slug]) + "?type=prompt", "audit-log"),
    "approvals": (lambda lab: reverse("approvals", args=[lab.slug]) + "?page=1", "approval-list"),
    "notifications": (lambda lab: reverse("notifications") + "?page=1", "notification-list"),
    "experiment progress": (lambda lab: reverse("experiment_detail", args=[lab.experiment.pk]), "experiment-progress"),
}


def vary(response) -> set[str]:
    return {value.strip() for value in response.get("Vary", "").split(",")}


def is_page(html: BeautifulSoup, target: str) -> bool:
    """The whole page: the document with the top bar, and the fragment in it."""
    return html.find("html") is not None and html.select_one("nav.topnav") is not None and html.select_one(f"#{target}") is not None


@pytest.mark.parametrize(("url", "target"), PAGES.values(), ids=PAGES.keys())
def test_a_page_load_and_a_history_restore_get_the_page_and_htmx_the_fragment(lab, client, url, target):
    client.force_login(lab.user)
    url = url(lab)
    loaded = client.get(url)
    swapped = client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET=target)
    restored = client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true")  # htmx names no target here

    assert [response.status_code for response in (loaded, swapped, restored)] == [200, 200, 200]
    assert is_page(BeautifulSoup(loaded.content, "html.parser"), target)
    fragment = BeautifulSoup(swapped.content, "html.parser")
    assert fragment.find("html") is None and fragment.select_one("nav.topnav") is None and fragment.select_one(f"#{target}") is not None
    assert is_page(BeautifulSoup(restored.content, "html.parser"), target)
    assert all("HX-Request" in vary(response) for response in (loaded, swapped, restored))


# --- The helper ------------------------------------------------------------------------------


@pytest.fixture
def templates(settings):
    settings.TEMPLATES = [{
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "OPTIONS": {"loaders": [("django.template.loaders.locmem.Loader", {
            "page.html": "<html><h1>{{ title }}</h1>{% include 'list.html' %}</html>",
            "list.html": "<ul id='list'>{{ title }}</ul>",
        })]},
    }]  # fmt: skip


def htmx_request(**headers):
    request = RequestFactory().get("/things/", headers=headers)
    HtmxMiddleware(lambda request: HttpResponse())(request)
    return request


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        ({}, False),
        ({"HX-Request": "true"}, False),
        ({"HX-Request": "true", "HX-Target": "list"}, True),
        ({"HX-Request": "true", "HX-Target": "other"}, False),
        ({"HX-Request": "false", "HX-Target": "list"}, False),
        ({"HX-Request": "true", "HX-Target": "list", "HX-History-Restore-Request": "true"}, False),
        ({"HX-Request": "true", "HX-History-Restore-Request": "true"}, False),
    ],
)
def test_the_fragment_is_for_htmx_swapping_its_element_and_never_for_a_history_restore(templates, headers, fragment):
    request = htmx_request(**headers)
    response = page_or_fragment(request, "page.html", {"title": "Things"}, fragment_template="list.html", target="list", status=400)

    assert wants_fragment(request, "list") is fragment
    assert response.content.decode() == ("<ul id='list'>Things</ul>" if fragment else "<html><h1>Things</h1><ul id='list'>Things</ul></html>")
    assert response.status_code == 400
    assert vary(response) == {"HX-Request", "HX-Target", "HX-History-Restore-Request"}


def test_without_a_target_any_htmx_swap_gets_the_fragment_and_without_a_fragment_the_page(templates):
    request = htmx_request(**{"HX-Request": "true", "HX-Target": "anything"})

    assert page_or_fragment(request, "page.html", {"title": "A"}, fragment_template="list.html").content.decode() == "<ul id='list'>A</ul>"
    page = page_or_fragment(request, "page.html", {"title": "A"})
    assert page.content.decode().startswith("<html>") and "HX-Request" in vary(page)
