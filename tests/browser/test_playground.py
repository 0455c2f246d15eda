"""In Chromium, with a real Celery worker process: fill the playground's form, run a prompt
on two models side by side, and save one answer as a dataset item."""

import os

import pytest

from experiments.models import DatasetItem, PlaygroundCall
from promptlab.accounts.models import Role
from prompts import services
from tests.conftest import sign_in, start_worker, stop
from tests.factories import DatasetFactory, MembershipFactory, ModelEndpointFactory

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_run_a_prompt_on_two_models_and_save_an_answer(page, endpoint, llm_server, tmp_path):
    editor = MembershipFactory(role=Role.EDITOR, user__email="pm@example.com")
    second = ModelEndpointFactory(display_name="Second model", api_base=llm_server.base_url, api_key_env="PROMPTLAB_KEY_TEST_OPENAI")
    services.prompt_create(
        project=editor.project, actor=editor.user, name="greet", message="First", endpoint=endpoint,
        template="Hello {{ name }}, order {{ order }}.", variables=[{"name": "name"}, {"name": "order", "type": "integer"}],
    )  # fmt: skip
    dataset = DatasetFactory(project=editor.project, name="greetings")
    # Started here, after the endpoint fixture has put the model's key in the environment.
    worker = start_worker(name="playground")
    try:
        sign_in(page, "pm@example.com")
        page.click(f"#project-list a[href='/projects/{editor.project.slug}/playground/']")

        page.fill("textarea[name=var_name]", "Ada")
        page.fill("input[name=var_order]", "42")
        page.check(f"input[name=endpoints][value='{second.pk}']")  # the prompt's own model is ticked already
        page.click("#playground-run-button")

        cards = page.locator("article.playground-call[data-status=done]")
        cards.nth(1).wait_for(timeout=60_000)  # the worker's first call pays for importing LiteLLM
        assert cards.count() == 2
        assert "?batch=" in page.url  # a reload shows this run again
        for number, name in enumerate([endpoint.display_name, "Second model"]):
            card = cards.nth(number)
            assert card.locator("h3").inner_text() == name
            assert card.locator(".output").inner_text() == "fake answer to: Hello Ada, order 42."
            assert card.locator(".prompt-tokens").inner_text() == "7"  # 4 words + 3 for the message
            assert card.locator(".completion-tokens").inner_text() == "7"
            assert card.locator(".cost").inner_text().startswith("$0.0000")
            assert card.locator(".latency").inner_text().endswith(" ms")
        assert page.locator("#playground-results").get_attribute("hx-trigger") is None  # the poll stopped

        second_card = cards.nth(1)
        second_card.locator("select[name=dataset]").select_option(str(dataset.pk))
        second_card.get_by_role("button", name="Save as dataset item").click()
        saved = second_card.locator(".saved")
        saved.wait_for()
        assert saved.inner_text() == "Saved as row 1 of the dataset greetings."
        page.screenshot(path=os.environ.get("PROMPTLAB_SCREENSHOT", str(tmp_path / "playground.png")), full_page=True)
    finally:
        stop(worker)

    item = DatasetItem.objects.get(dataset=dataset)
    assert (item.row, item.vars, item.expected) == (1, {"name": "Ada", "order": 42}, "fake answer to: Hello Ada, order 42.")
    assert item.metadata["endpoint"] == second.name and item.metadata["prompt"] == "greet"
    assert sorted(PlaygroundCall.objects.values_list("endpoint__display_name", flat=True)) == sorted([endpoint.display_name, "Second model"])
    assert len([r for r in llm_server.requests if r["path"] == "/v1/chat/completions"]) == 2
