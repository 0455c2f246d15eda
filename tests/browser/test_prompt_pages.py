"""In Chromium: sign in, go from the project to a prompt, pick two versions and read their
side-by-side diff, then render a preview of an older version."""

import os

import pytest

from promptlab.accounts.models import Role
from prompts import services
from tests.conftest import sign_in
from tests.factories import MembershipFactory, ModelEndpointFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_open_a_prompt_compare_two_versions_and_preview_one(page, tmp_path):
    viewer = MembershipFactory(role=Role.VIEWER, user__email="reader@example.com")
    editor = MembershipFactory(project=viewer.project, role=Role.EDITOR).user
    model = ModelEndpointFactory(display_name="Demo", model="promptlab-demo/echo")
    prompt = services.prompt_create(
        project=viewer.project, actor=editor, name="greet", message="First draft", template="Hello dear {{ name }}!", endpoint=model
    )
    prompt = services.prompt_update(prompt=prompt, actor=editor, message="Drop dear", template="Hello {{ name }}!")
    prompt = services.prompt_update(
        prompt=prompt, actor=editor, message="Orders", template="Hi {{ name }}, order {{ order }} ships.",
        variables=[{"name": "order", "type": "integer"}],
    )  # fmt: skip
    services.label_move(prompt=prompt, actor=editor, label="staging", version=2)
    slug = viewer.project.slug

    sign_in(page, "reader@example.com")
    page.click(f"#project-list a[href='/projects/{slug}/prompts/']")
    page.fill("#prompt-filters input[name=q]", "gre")  # filters as you type
    page.wait_for_url("**/prompts/?q=gre*")
    page.click("#prompt-list a[href$='/prompts/greet/']")
    page.wait_for_url(f"**/projects/{slug}/prompts/greet/")
    assert page.locator("#prompt-timeline li.version").count() == 3
    assert page.locator("#edit-in-admin").count() == 0  # a viewer reads only

    page.select_option("#prompt-diff select[name=a]", "1")
    page.select_option("#prompt-diff select[name=b]", "3")
    page.click("#compare-button")
    page.wait_for_url("**/greet/?a=1&b=3")  # a bookmark of this comparison
    template = page.locator("#prompt-diff .diff-field[data-field=template]")
    template.locator(".diff-b ins").first.wait_for()
    assert template.locator("pre.diff-a").inner_text() == "Hello dear {{ name }}!"
    assert template.locator("pre.diff-b").inner_text() == "Hi {{ name }}, order {{ order }} ships."
    assert template.locator(".diff-a del").all_inner_texts() == ["Hello dear", "!"]
    left, right = template.locator("pre.diff-a").bounding_box(), template.locator("pre.diff-b").bounding_box()
    assert right["x"] > left["x"] + left["width"] - 1 and abs(right["y"] - left["y"]) < 1  # side by side
    assert page.locator("#prompt-timeline").count() == 1  # only the diff was swapped

    page.click("#version-2 a.diff-previous")
    page.wait_for_url("**/greet/?a=1&b=2")
    page.locator("#prompt-diff select[name=b] option[value='2'][selected]").wait_for(state="attached")
    assert page.locator("#prompt-diff .diff-a del").inner_text() == " dear"

    page.fill("#preview-form input[name=var_order]", "42")
    page.fill("#preview-form textarea[name=var_name]", "Ada")
    page.click("#preview-button")
    page.locator("#preview-text").wait_for()
    assert page.locator("#preview-text").inner_text() == "Hi Ada, order 42 ships."
    page.wait_for_function("!document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling')")  # the swap is over

    page.select_option("#preview-form select[name=version]", "2")  # the form follows the version
    page.locator("#preview-button", has_text="Render version 2").wait_for()
    assert page.locator("#preview-form [name=var_order]").count() == 0
    assert page.locator("#preview-form textarea[name=var_name]").input_value() == "Ada"
    page.click("#preview-button")
    page.locator("#preview-text").wait_for()
    assert page.locator("#preview-text").inner_text() == "Hello Ada!"

    page.fill("#preview-form textarea[name=var_name]", "")
    page.click("#preview-button")
    page.locator("#preview-error").wait_for()
    assert page.locator("#preview-error").inner_text() == "Missing variables: name."
    page.screenshot(path=os.environ.get("PROMPTLAB_SCREENSHOT", str(tmp_path / "prompt-page.png")), full_page=True)
    assert prompt.history.count() == 3  # nothing was saved
