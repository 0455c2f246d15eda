"""In Chromium: an editor proposes moving production from the prompt's page; an admin sees the
notification in the top bar, approves on the approvals page (an htmx swap), production moves,
and the editor is told."""

import pytest

from promptlab.accounts.models import Role
from prompts import services as prompts
from prompts.models import Label, LabelMove
from tests.conftest import ARTIFACTS, sign_in
from tests.factories import MembershipFactory, ModelEndpointFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_editor_proposes_an_admin_approves_and_production_moves(page, browser, live_server):
    editor = MembershipFactory(role=Role.EDITOR, user__email="pm@example.com").user
    project = editor.memberships.get().project
    admin = MembershipFactory(project=project, role=Role.ADMIN, user__email="lead@example.com").user
    endpoint = ModelEndpointFactory(model="promptlab-demo/echo")
    prompt = prompts.prompt_create(project=project, actor=editor, name="faq", message="v1", template="Answer: {{ q }}", endpoint=endpoint)
    prompts.label_move(prompt=prompt, actor=admin, label="production", version=1)
    prompts.prompt_update(prompt=prompt, actor=editor, message="Friendlier", template="Happy to help: {{ q }}")

    sign_in(page, "pm@example.com")
    page.goto(f"/projects/{project.slug}/prompts/faq/")
    page.select_option("#propose-production select[name=version]", "2")
    page.fill("#propose-production input[name=message]", "Friendlier wording")
    page.click("#propose-production button[type=submit]")
    page.wait_for_url(f"**/projects/{project.slug}/approvals/")
    assert page.locator("#approval-list article.pending .version").inner_text() == "v2"

    lead_context = browser.new_context(base_url=live_server.url)
    lead = lead_context.new_page()
    lead.set_default_timeout(15_000)
    try:
        sign_in(lead, "lead@example.com")
        badge = lead.locator("#notification-badge .count")
        badge.wait_for()  # loaded by htmx after the page
        assert badge.inner_text() == "1"
        lead.click("#notification-badge a")
        lead.click("li.notification.unread a")
        lead.wait_for_url(f"**/projects/{project.slug}/approvals/")
        proposal = lead.locator("#approval-list article.pending")
        assert "Friendlier wording" in proposal.inner_text() and "pm@example.com" in proposal.inner_text()

        proposal.locator("input[name=comment]").fill("Reads better")
        proposal.locator("button[value=approve]").click()
        lead.locator("#decided-approvals td.status").wait_for()
        assert lead.locator("#decided-approvals td.status").inner_text() == "approved"
        assert lead.locator("#no-pending").is_visible()
        lead.locator("#notification-badge .count").wait_for(state="detached")  # decided: nothing left to tell the lead
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        lead.screenshot(path=ARTIFACTS / "approvals.png", full_page=True)
    finally:
        lead_context.close()

    assert Label.objects.get(prompt=prompt, name="production").version == 2
    assert LabelMove.objects.filter(label="production").first().actor == admin

    page.goto(f"/projects/{project.slug}/prompts/faq/")
    page.locator("#notification-badge .count").wait_for()
    page.click("#notification-badge a")
    assert "lead@example.com approved moving faq production to version 2: Reads better" in page.locator("li.notification.unread").inner_text()
