"""In Chromium: sign in, edit a prompt, and watch the htmx preview render it live."""

import os

import pytest

from promptlab.accounts.models import Role
from prompts import services
from tests.conftest import sign_in
from tests.factories import MembershipFactory, ModelEndpointFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_sign_in_edit_and_preview_a_prompt(page, tmp_path):
    editor = MembershipFactory(role=Role.EDITOR, user__email="pm@example.com")
    model = ModelEndpointFactory(display_name="Demo", model="promptlab-demo/echo")
    prompt = services.prompt_create(
        project=editor.project, actor=editor.user, name="greet", message="First", template="Hello {{ name }}!", endpoint=model
    )

    sign_in(page, "pm@example.com")
    assert page.locator("#project-list").inner_text().count(editor.project.name) == 1

    page.goto(f"/admin/prompts/prompt/{prompt.pk}/change/")
    page.fill("textarea[name=sample_variables]", '{"name": "Ada", "order": 42}')
    page.fill("#id_template", "Hi {{ name }}, order {{ order }} ships today.")
    page.keyboard.press("End")  # a keyup in the template triggers the preview
    preview = page.locator("#rendered-text")
    preview.wait_for()
    assert preview.inner_text() == "Hi Ada, order 42 ships today."
    assert "order" in page.locator("#render-preview").inner_text()

    page.fill("#id_template", "Hi {{ name }")
    page.click("#preview-panel button")
    page.locator("#render-preview .error").wait_for()
    assert "Template, line 1" in page.locator("#render-preview .error").inner_text()
    page.screenshot(path=os.environ.get("PROMPTLAB_SCREENSHOT", str(tmp_path / "preview.png")), full_page=True)
    assert prompt.history.count() == 1  # previews never save
