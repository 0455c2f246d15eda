"""In Chromium, with htmx's history cache off so that Back always asks the server: paging the
dataset items and switching the playground's version push URLs, and Back restores the whole
page (the top bar and the page's heading), not the bare fragment."""

import pytest

from experiments.models import DatasetItem
from promptlab.accounts.models import Role
from prompts import services
from tests.conftest import sign_in
from tests.factories import DatasetFactory, MembershipFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NO_HISTORY_CACHE = "htmx.config.historyCacheSize = 0"


def assert_whole_page(page, heading: str):
    assert page.locator("nav.topnav").count() == 1
    assert page.locator("h1").all_inner_texts() == [heading]


def test_back_through_the_dataset_items_restores_the_page(page):
    editor = MembershipFactory(role=Role.EDITOR, user__email="pm@example.com")
    dataset = DatasetFactory(project=editor.project, name="faq")
    DatasetItem.objects.bulk_create([DatasetItem(dataset=dataset, row=n, vars={"q": f"question {n}"}) for n in range(1, 121)])

    sign_in(page, "pm@example.com")
    page.goto(f"/projects/{editor.project.slug}/datasets/faq/")
    page.evaluate(NO_HISTORY_CACHE)
    page.click("#dataset-items .pagination a[rel=next]")
    page.locator("#dataset-item-51").wait_for()
    page.click("#dataset-items .pagination a[rel=next]")
    page.locator("#dataset-item-101").wait_for()

    page.go_back()  # to ?page=2, which htmx pushed: a history restore from the server
    page.locator("#dataset-item-51").wait_for()
    assert page.url.endswith("/datasets/faq/?page=2")
    assert_whole_page(page, "faq")


def test_back_through_the_playgrounds_versions_restores_the_page(page, endpoint):
    editor = MembershipFactory(role=Role.EDITOR, user__email="pm@example.com")
    prompt = services.prompt_create(project=editor.project, actor=editor.user, name="greet", message="First", endpoint=endpoint,
                                    template="Hello {{ name }}.")  # fmt: skip
    for template in ("Hi {{ name }}.", "Hey {{ name }}."):
        services.prompt_update(prompt=prompt, actor=editor.user, message="Shorter", template=template)

    sign_in(page, "pm@example.com")
    page.goto(f"/projects/{editor.project.slug}/playground/")
    page.evaluate(NO_HISTORY_CACHE)
    for version in ("2", "1"):
        page.select_option("select[name=version]", version)
        page.wait_for_url(f"**version={version}*")
        page.wait_for_function(f"document.querySelector('select[name=version]').value === '{version}'")

    page.go_back()  # to version 2, which htmx pushed: a history restore from the server
    page.wait_for_url("**version=2*")
    page.wait_for_function("document.querySelector('select[name=version]')?.value === '2'")
    assert_whole_page(page, "Playground")
