"""In Chromium: the new-experiment form's forecast follows the dataset, variants and repeats."""

import pytest

from experiments.models import DatasetItem, Experiment
from promptlab.accounts.models import Role
from prompts import services as prompts
from tests.conftest import sign_in
from tests.factories import DatasetFactory, MembershipFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_forecast_updates_as_the_form_is_filled_in(page, endpoint):
    editor = MembershipFactory(role=Role.EDITOR, user__email="pm@example.com")
    prompt = prompts.prompt_create(project=editor.project, actor=editor.user, name="faq", message="v1", template="Answer: {{ q }}", endpoint=endpoint)
    dataset = DatasetFactory(project=editor.project, name="faq")
    DatasetItem.objects.bulk_create([DatasetItem(dataset=dataset, row=n, vars={"q": f"question {n}"}) for n in range(1, 8)])

    sign_in(page, "pm@example.com")
    page.goto(f"/projects/{editor.project.slug}/experiments/")
    page.click("#new-experiment")
    page.fill("input[name=name]", "first try")
    page.select_option("select[name=dataset]", str(dataset.pk))
    page.select_option("select[name=variant0_prompt]", str(prompt.pk))
    page.fill("input[name=variant0_at]", "1")
    # The first forecast of the live server loads LiteLLM's token counter (seconds, more on a
    # busy machine): give it room.
    page.wait_for_function("document.querySelector('#forecast .calls')?.textContent === '7'", timeout=90_000)

    page.fill("input[name=repeats]", "3")
    page.locator("input[name=repeats]").dispatch_event("change")
    page.wait_for_function("document.querySelector('#forecast .calls').textContent === '21'")

    page.uncheck("input[name=start]")
    page.click("#create-experiment")
    page.wait_for_url("**/experiments/*/")
    assert Experiment.objects.get().status == "draft"
