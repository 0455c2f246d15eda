"""In Chromium: a prompt's analytics page shows its three charts, each with its table, and the
traffic window switches in place."""

from datetime import datetime, time, timedelta

import pytest
from django.utils import timezone

from promptlab.accounts.models import Role
from prompts import services as prompts
from prompts.models import PromptCall, PromptCallStatus
from tests.conftest import ARTIFACTS, sign_in
from tests.evaluations.test_analytics import experiment_of, runs_of
from tests.factories import MembershipFactory, ModelEndpointFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_analytics_page_shows_three_charts_with_their_tables(page):
    owner = MembershipFactory(role=Role.VIEWER, user__email="reader@example.com")
    endpoint = ModelEndpointFactory(display_name="Small model")
    prompt = prompts.prompt_create(project=owner.project, actor=None, name="faq", message="v1", template="Q: {{ q }}", endpoint=endpoint)
    prompt = prompts.prompt_update(prompt=prompt, actor=None, message="v2", template="Question: {{ q }}")
    experiment = experiment_of(prompt, MembershipFactory(project=owner.project, role=Role.OWNER))
    runs_of(experiment, prompt, 1, [True] * 5 + [False] * 5, latencies=[100 + 20 * n for n in range(10)])
    runs_of(experiment, prompt, 2, [True] * 9 + [False], latencies=[80 + 10 * n for n in range(10)])
    for days_ago in (0, 1, 3, 20):
        call = PromptCall.objects.create(project=owner.project, prompt=prompt, prompt_name="faq", version=2, model=endpoint.model,
                                         status=PromptCallStatus.DONE, latency_ms=150 + days_ago, cost_usd="0.002")  # fmt: skip
        at = timezone.make_aware(datetime.combine(timezone.localdate() - timedelta(days=days_ago), time(12)))
        PromptCall.objects.filter(pk=call.pk).update(created_at=at)

    sign_in(page, "reader@example.com")
    page.goto("/projects/{}/prompts/faq/analytics/".format(owner.project.slug))

    for chart, table, rows in (("#version-chart", "#version-table", 2), ("#spread-chart", "#spread-table", 2),
                               ("#traffic-chart", "#traffic-table", 30)):  # fmt: skip
        assert page.locator(f"svg{chart}").is_visible()
        assert page.locator(f"svg{chart}").bounding_box()["height"] > 100
        assert page.locator(f"{table} tbody tr").count() == rows
    assert page.locator("svg#version-chart g.point.pass-rate").count() == 2
    assert page.locator("#traffic-totals .calls").inner_text() == "4"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / "prompt-analytics.png", full_page=True)

    page.click(".window-switch a[data-days='7']")
    page.wait_for_function("document.querySelectorAll('#traffic-table tbody tr').length === 7")
    assert page.url.endswith("/analytics/?days=7")
    assert page.locator("#traffic-totals .calls").inner_text() == "3"
    assert page.locator("svg#traffic-chart rect.bar.calls").count() == 7
    assert page.locator("svg#version-chart").is_visible()  # only the traffic section was swapped
