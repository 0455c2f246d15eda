"""A prompt's analytics page: pass rate and mean score by version, latency and cost by version
and model, production traffic per day; each chart with a table of the same numbers."""

import math
from datetime import datetime, time, timedelta
from decimal import Decimal

import pytest
from bs4 import BeautifulSoup
from django.utils import timezone

from evaluations import analytics, charts, services, statistics
from evaluations.models import Score, ScoreStatus
from experiments.models import ExperimentStatus, RunStatus
from promptlab.accounts.models import Role
from prompts import services as prompts
from prompts.models import PromptCall, PromptCallStatus
from tests.factories import (
    DatasetItemFactory,
    ExperimentFactory,
    MembershipFactory,
    ModelEndpointFactory,
    RunFactory,
    VariantFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner():
    return MembershipFactory(role=Role.OWNER)


@pytest.fixture
def prompt(owner):
    """A prompt at version 2 (version 1 on "Small model", version 2 on "Large model")."""
    small = ModelEndpointFactory(display_name="Small model")
    prompt = prompts.prompt_create(project=owner.project, actor=owner.user, name="faq", message="v1", template="Q: {{ q }}", endpoint=small)
    prompts.label_move(prompt=prompt, actor=owner.user, label="production", version=1)
    large = ModelEndpointFactory(display_name="Large model")
    return prompts.prompt_update(prompt=prompt, actor=owner.user, message="v2", template="Question: {{ q }}", endpoint=large)


def url(prompt, query: str = "") -> str:
    return f"/projects/{prompt.project.slug}/prompts/{prompt.name}/analytics/{query}"


def experiment_of(prompt, owner, *, status=ExperimentStatus.FINISHED, evaluators=1):
    experiment = ExperimentFactory(project=prompt.project, status=status)
    checks = [
        services.evaluator_create(project=prompt.project, actor=owner.user, name=f"check-{experiment.pk}-{n}", kind="contains",
                                  config={"value": "x"})
        for n in range(evaluators)
    ]  # fmt: skip
    services.experiment_evaluators_set(experiment=experiment, actor=owner.user, evaluators=checks)
    experiment.checks = checks
    return experiment


def runs_of(experiment, prompt, version: int, verdicts: list, *, endpoint=None, latencies=None, costs=None):
    """One run per verdict: True passes every evaluator, False fails the last one, "errored"
    errors its score, "failed" is a failed call, "pending" has not run."""
    variant = VariantFactory(experiment=experiment, prompt=prompt, version=version, endpoint=endpoint)
    for index, verdict in enumerate(verdicts):
        status = {"failed": RunStatus.FAILED, "pending": RunStatus.PENDING}.get(verdict, RunStatus.DONE)
        run = RunFactory(experiment=experiment, variant=variant, item=DatasetItemFactory(dataset=experiment.dataset), status=status,
                         latency_ms=latencies[index] if latencies else 100.0, cost_usd=costs[index] if costs else "0.001")  # fmt: skip
        if status != RunStatus.DONE:
            continue
        for check in experiment.checks:
            last = check == experiment.checks[-1]
            if verdict == "errored" and last:
                Score.objects.create(run=run, evaluator=check, evaluator_version=check.version, status=ScoreStatus.ERRORED)
            else:
                passed = verdict is True or not last
                Score.objects.create(run=run, evaluator=check, evaluator_version=check.version, status=ScoreStatus.OK,
                                     value=1.0 if passed else 0.0, passed=passed)  # fmt: skip
    return variant


def wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson's score interval, written out."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def call(prompt, days_ago: int, *, status=PromptCallStatus.DONE, latency=None, cost=None, hour=12, prompt_name=None):
    made = PromptCall.objects.create(project=prompt.project, prompt=prompt, prompt_name=prompt_name or prompt.name, version=prompt.version,
                                     model="openai/gpt-4o-mini", status=status, latency_ms=latency, cost_usd=cost)  # fmt: skip
    at = timezone.make_aware(datetime.combine(timezone.localdate() - timedelta(days=days_ago), time(hour)))
    PromptCall.objects.filter(pk=made.pk).update(created_at=at)  # created_at is auto_now_add
    return made


def page(client, prompt, query: str = "", **headers):
    response = client.get(url(prompt, query), headers=headers)
    return response, BeautifulSoup(response.content, "html.parser")


# --- Pass rate and mean score by version -------------------------------------------------------


def test_versions_pool_their_finished_experiments_with_wilson_and_bootstrap_intervals(client, owner, prompt):
    first = experiment_of(prompt, owner)
    runs_of(first, prompt, 1, [True] * 6 + [False] * 4)
    runs_of(first, prompt, 2, [True] * 9 + [False])
    second = experiment_of(prompt, owner)
    runs_of(second, prompt, 2, [True] * 8 + ["errored", "failed", "pending"])
    runs_of(experiment_of(prompt, owner, status=ExperimentStatus.RUNNING), prompt, 1, [False] * 10)  # not finished: left out

    result = analytics.prompt_run_analytics(prompt=prompt)

    v1, v2 = result.versions
    assert (v1.version, v1.experiments, v1.labels) == (1, 1, ["production"])
    assert (v1.summary.runs, v1.summary.graded, v1.summary.passed) == (10, 10, 6)
    assert v1.summary.pass_rate.estimate == 0.6
    assert (v1.summary.pass_rate.low, v1.summary.pass_rate.high) == pytest.approx(wilson(6, 10), abs=1e-9)
    assert v1.summary.mean_score.estimate == pytest.approx(0.6)  # one evaluator: each run scores 1.0 or 0.0
    assert v1.summary.mean_score == statistics.mean_score([1.0] * 6 + [0.0] * 4)
    # v2: 19 passes of 20 graded runs, across both experiments; the errored and failed runs are apart, the pending one absent
    assert (v2.experiments, v2.summary.runs, v2.summary.errored, v2.summary.graded, v2.summary.passed) == (2, 20, 2, 18, 17)
    assert (v2.summary.pass_rate.low, v2.summary.pass_rate.high) == pytest.approx(wilson(17, 18), abs=1e-9)
    assert result.untested == []

    client.force_login(owner.user)
    response, html = page(client, prompt)
    assert response.status_code == 200
    points = html.select("svg#version-chart g.point.pass-rate")
    assert [point["data-category"] for point in points] == ["v1", "v2"]
    assert len(html.select("svg#version-chart g.point.mean-score")) == 2
    assert html.select_one("svg#version-chart title").get_text() == "Pass rate and mean score by version"
    rows = html.select("#version-table tbody tr")
    assert [row["data-version"] for row in rows] == ["1", "2"]
    low, high = wilson(6, 10)
    assert rows[0].select_one(".pass-rate").get_text() == f"60.0% ({low * 100:.1f}%–{high * 100:.1f}%)"
    assert rows[0].select_one(".passed").get_text() == "6/10"
    assert rows[1].select_one(".passed").get_text() == "17/18" and rows[1].select_one(".errored").get_text() == "2"
    assert "production" in rows[0].th.get_text()
    assert points[0].title.get_text().startswith("v1 pass rate 60.0% (")


def test_only_the_experiments_own_enabled_evaluators_at_their_current_version_count(owner, prompt):
    experiment = experiment_of(prompt, owner, evaluators=2)
    runs_of(experiment, prompt, 1, [True] * 4)
    stranger = services.evaluator_create(project=prompt.project, actor=owner.user, name="not-attached", kind="contains", config={"value": "x"})
    for run in experiment.runs.all():  # a score by an evaluator the experiment does not use changes nothing
        Score.objects.create(run=run, evaluator=stranger, evaluator_version=stranger.version, status=ScoreStatus.OK, value=0.0, passed=False)
    [v1] = analytics.prompt_run_analytics(prompt=prompt).versions
    assert (v1.summary.graded, v1.summary.passed) == (4, 4)

    second = experiment.checks[1]
    Score.objects.filter(evaluator=second).update(evaluator_version=second.version + 1)  # not the current version's scores
    [v1] = analytics.prompt_run_analytics(prompt=prompt).versions
    assert v1.summary.runs == 4 and v1.summary.graded == 0  # still waiting for the current version's scores

    second.enabled = False
    second.save()
    [v1] = analytics.prompt_run_analytics(prompt=prompt).versions
    assert (v1.summary.graded, v1.summary.passed) == (4, 4)  # a disabled evaluator is not waited for


def test_versions_never_run_are_named_and_the_page_says_when_nothing_ran(client, owner, prompt):
    runs_of(experiment_of(prompt, owner), prompt, 2, [True, True])
    client.force_login(owner.user)

    _, html = page(client, prompt)
    assert html.select_one("#untested-versions").get_text(" ", strip=True) == "Not run in a finished experiment: v1."

    other = prompts.prompt_create(project=owner.project, actor=owner.user, name="fresh", message="v1", template="Hi", endpoint=prompt.endpoint)
    response, html = page(client, other)
    assert response.status_code == 200
    assert html.select_one("#no-version-results") and html.select_one("#no-model-results") and html.select_one("#no-traffic")
    assert not html.select("svg") and not html.select("table")


# --- Latency and cost by version and model -----------------------------------------------------


def test_latency_and_cost_spread_per_version_and_model(client, owner, prompt):
    experiment = experiment_of(prompt, owner)
    runs_of(experiment, prompt, 1, [True, True, False, "failed", True], latencies=[100, 200, 300, 400, 500],
            costs=["0.001", "0.002", "0.003", "0.004", "0.005"])  # fmt: skip
    other = ModelEndpointFactory(display_name="Other model")
    runs_of(experiment, prompt, 1, [True, True], endpoint=other, latencies=[50, 70])

    spreads = analytics.prompt_run_analytics(prompt=prompt).spreads

    assert [(s.version, s.model, s.runs) for s in spreads] == [(1, "Other model", 2), (1, "Small model", 5)]
    small = spreads[1]
    # linear interpolation between closest ranks: p25 = 200, p95 = 400 + 0.8 * 100
    assert small.latency_ms == analytics.Distribution(minimum=100, p25=200, p50=300, p75=400, p95=480, maximum=500, count=5)
    assert small.cost_usd.minimum == pytest.approx(0.001) and small.cost_usd.p95 == pytest.approx(0.0048)
    assert spreads[0].latency_ms.p50 == 60

    client.force_login(owner.user)
    _, html = page(client, prompt)
    boxes = html.select("svg#spread-chart g.box")
    assert len(boxes) == 4  # two rows, a latency box and a cost box each
    assert [box["data-row"] for box in boxes[:2]] == ["v1 · Other model", "v1 · Small model"]
    rows = html.select("#spread-table tbody tr")
    assert [(row["data-version"], row["data-model"]) for row in rows] == [("1", "Other model"), ("1", "Small model")]
    assert [cell.get_text() for cell in rows[1].select(".latency")] == ["100 ms", "200 ms", "300 ms", "400 ms", "480 ms", "500 ms"]
    assert [cell.get_text() for cell in rows[1].select(".cost")] == ["$0.001", "$0.002", "$0.003", "$0.004", "$0.0048", "$0.005"]


def test_text_in_the_charts_is_escaped(client, owner, prompt):
    sneaky = ModelEndpointFactory(display_name='<b onmouseover="x">bold</b>')
    runs_of(experiment_of(prompt, owner), prompt, 1, [True], endpoint=sneaky)
    client.force_login(owner.user)

    _, html = page(client, prompt)

    assert not html.select("svg b") and not html.select("#spread-table b")
    assert html.select_one("svg#spread-chart g.box")["data-row"] == 'v1 · <b onmouseover="x">bold</b>'


def test_a_daily_line_breaks_on_days_without_a_value_and_bars_fill_every_day():
    days = [timezone.localdate() - timedelta(days=n) for n in range(5, 0, -1)]
    svg = BeautifulSoup(charts.daily_chart(chart_id="c", title="T <&>", desc="D", days=days, panels=[
        charts.DayPanel("calls", "bar", "calls", [1, 0, 2, 0, 3], str),
        charts.DayPanel("p95", "line", "latency", [10, None, 20, 30, 40], str),
    ]), "html.parser").svg  # fmt: skip

    assert svg["viewbox"].startswith("0 0 720 ") and svg.title.get_text() == "T <&>"
    assert len(svg.select("rect.bar")) == 5 and len(svg.select("circle.dot")) == 4
    assert [line["points"].count(",") for line in svg.select("polyline.trend")] == [3]  # 20, 30, 40; 10 stands alone


# --- Production traffic ------------------------------------------------------------------------


@pytest.fixture
def traffic(prompt):
    call(prompt, 0, latency=100, cost="0.01")
    call(prompt, 0, latency=200, cost="0.02")
    call(prompt, 0, status=PromptCallStatus.FAILED)
    call(prompt, 0, status=PromptCallStatus.PENDING)  # not finished: outside the error rate
    call(prompt, 2, latency=50, cost="0.5")
    call(prompt, 45, latency=1000, cost="1")  # only in the 90-day window
    other = prompts.prompt_create(project=prompt.project, actor=None, name="other", message="v1", template="Hi", endpoint=prompt.endpoint)
    call(other, 0, latency=9999, cost="9")  # another prompt's calls are not this one's
    return prompt


def test_calls_and_spend_per_day_with_p95_latency_and_error_rate(traffic):
    result = analytics.prompt_traffic(prompt=traffic, window=30)

    assert len(result.days) == 30 and result.last_day == timezone.localdate() and result.first_day == result.last_day - timedelta(days=29)
    today, two_days_ago = result.days[-1], result.days[-3]
    assert (today.calls, today.finished, today.errors, today.spend_usd) == (4, 3, 1, Decimal("0.03"))
    assert today.error_rate == pytest.approx(1 / 3) and today.latency_p95 == pytest.approx(195)  # 100 + 0.95 * 100
    assert (two_days_ago.calls, two_days_ago.spend_usd, two_days_ago.latency_p95, two_days_ago.error_rate) == (1, Decimal("0.5"), 50, 0)
    assert sum(day.calls for day in result.days) == result.calls == 5
    assert result.spend_usd == Decimal("0.53") and result.latency_p95 == pytest.approx(190)  # p95 of 50, 100, 200
    assert analytics.prompt_traffic(prompt=traffic, window=90).calls == 6


def test_the_traffic_chart_has_a_bar_a_day_and_the_table_the_same_numbers(client, owner, traffic):
    client.force_login(owner.user)

    response, html = page(client, traffic, "?days=7")

    assert response.status_code == 200
    chart = html.select_one("svg#traffic-chart")
    assert len(chart.select("rect.bar.calls")) == 7 and len(chart.select("rect.bar.spend")) == 7
    assert len(chart.select("circle.dot.latency")) == 2 and len(chart.select("circle.dot.errors")) == 2  # days with a value
    rows = html.select("#traffic-table tbody tr")
    today = timezone.localdate()
    assert len(rows) == 7 and rows[0]["data-day"] == today.isoformat()
    assert [rows[0].select_one(f".{name}").get_text() for name in ("calls", "spend", "latency-p95", "errors", "error-rate")] == [
        "4", "$0.03", "195 ms", "1", "33.3%"]  # fmt: skip
    assert rows[2].select_one(".calls").get_text() == "1" and rows[1].select_one(".error-rate").get_text() == "—"
    assert chart.select_one(f'rect.bar.calls[data-day="{today.isoformat()}"] title').get_text() == f"{today.isoformat()}: 4"
    totals = html.select_one("#traffic-totals")
    assert totals.select_one(".calls").get_text() == "5" and totals.select_one(".spend").get_text() == "$0.53"
    assert html.select_one(".window-switch .current").get_text() == "last 7 days"


def test_the_window_switch_is_a_link_that_htmx_swaps_for_the_fragment(client, owner, traffic):
    client.force_login(owner.user)

    _, html = page(client, traffic)
    links = html.select(".window-switch a")
    assert [link["data-days"] for link in links] == ["7", "90"]  # 30 is the default, shown as current
    assert all(link["href"] == link["hx-get"] == url(traffic, f"?days={link['data-days']}") for link in links)
    assert len(html.select("#traffic-table tbody tr")) == 30

    response, fragment = page(client, traffic, "?days=90", HX_Request="true", HX_Target="analytics-traffic")
    assert response.status_code == 200 and "HX-Target" in response["Vary"]
    assert fragment.select_one("section")["id"] == "analytics-traffic" and not fragment.select("#analytics-versions, h1")
    assert len(fragment.select("#traffic-table tbody tr")) == 90 and fragment.select_one("#traffic-totals .calls").get_text() == "6"


def test_no_traffic_in_the_window_is_an_empty_state(client, owner, prompt):
    call(prompt, 20, latency=100)
    client.force_login(owner.user)

    _, html = page(client, prompt, "?days=7")

    assert "No production calls of this prompt in the last 7 days" in html.select_one("#no-traffic").get_text()
    assert not html.select("#traffic-chart, #traffic-table")


@pytest.mark.parametrize("days", ["abc", "14", "-7", "0", "7.5", "99999999999999999999999", "７", "7%00"])
def test_a_window_the_page_does_not_offer_is_a_400_that_says_so(client, owner, prompt, days):
    client.force_login(owner.user)

    response, html = page(client, prompt, f"?days={days}")

    assert response.status_code == 400
    assert "choose 7, 30 or 90" in html.select_one("#window-error").get_text()
    assert html.select_one("#analytics-versions")  # the rest of the page still reads
    fragment = client.get(url(prompt, f"?days={days}"), headers={"HX-Request": "true", "HX-Target": "analytics-traffic"})
    assert fragment.status_code == 400 and b"choose 7, 30 or 90" in fragment.content


def test_an_empty_window_is_the_default(client, owner, prompt):
    client.force_login(owner.user)

    _, html = page(client, prompt, "?days=")

    assert html.select_one(".window-switch .current").get_text() == "last 30 days"


# --- Access ------------------------------------------------------------------------------------


def test_members_read_it_and_nobody_else_sees_it_exists(client, owner, prompt):
    assert client.get(url(prompt)).status_code == 302  # signed out: to the login page
    client.force_login(MembershipFactory(project=owner.project, role=Role.VIEWER).user)
    assert client.get(url(prompt)).status_code == 200
    assert client.post(url(prompt)).status_code == 405

    outsider = MembershipFactory(role=Role.OWNER)
    client.force_login(outsider.user)
    assert client.get(url(prompt)).status_code == 404
    theirs = prompts.prompt_create(project=outsider.project, actor=outsider.user, name="theirs", message="v1", template="Hi",
                                   endpoint=prompt.endpoint)  # fmt: skip
    client.force_login(owner.user)
    assert client.get(f"/projects/{owner.project.slug}/prompts/{theirs.name}/analytics/").status_code == 404
    assert client.get(f"/projects/{owner.project.slug}/prompts/nope/analytics/").status_code == 404
    assert client.get(f"/projects/no-such-project/prompts/{prompt.name}/analytics/").status_code == 404


# --- Queries -----------------------------------------------------------------------------------


def test_the_page_reads_the_same_queries_at_any_number_of_versions_experiments_and_days(client, owner, prompt, django_assert_num_queries):
    client.force_login(owner.user)

    def grow(versions: int, start: int):
        for n in range(start, start + versions):
            latest = prompts.prompt_update(prompt=prompt, actor=owner.user, message=f"v{n}", template=f"Q{n}: {{{{ q }}}}")
            runs_of(experiment_of(prompt, owner), prompt, latest.version, [True, False], endpoint=ModelEndpointFactory())
            call(prompt, n, latency=100 + n, cost="0.01")
            call(prompt, n, status=PromptCallStatus.FAILED)

    grow(3, 0)
    client.get(url(prompt))
    with django_assert_num_queries(15):
        _, html = page(client, prompt)
    assert len(html.select("#version-table tbody tr")) == 3 and len(html.select("#spread-table tbody tr")) == 3
    grow(20, 3)
    with django_assert_num_queries(15):
        _, html = page(client, prompt)

    assert len(html.select("#version-table tbody tr")) == 23 and len(html.select("svg#version-chart g.point.pass-rate")) == 23
    assert len(html.select("svg#traffic-chart circle.dot.latency")) == 23
