"""A prompt's analytics page: pass rate and mean score by version, latency and cost by version
and model, and production traffic over a window of days. Each chart is server-side SVG with
a table of the same numbers after it; numbers are formatted once, here, for both."""

from django.contrib.auth.decorators import login_required
from django.utils import timezone
from django.views.decorators.http import require_GET

from evaluations import analytics, charts
from promptlab.accounts import selectors as account_selectors
from promptlab.errors import Invalid
from promptlab.htmx import page_or_fragment, wants_fragment
from prompts import selectors as prompt_selectors

TRAFFIC_ID = "analytics-traffic"


@require_GET
@login_required
def prompt_analytics(request, slug: str, name: str):
    """The page, or for htmx (a switch of window) only the #analytics-traffic fragment. Any
    member may read it; another project's prompt is a 404 and a `days` other than 7, 30 or 90
    a 400 that says so."""
    project = account_selectors.project_for(user=request.user, slug=slug)
    prompt = prompt_selectors.prompt_get(project=project, name=name)
    context = {"project": project, "prompt": prompt, "windows": analytics.WINDOWS}
    status = 200
    try:
        window = analytics.traffic_window(request.GET.get("days"))
    except Invalid as exc:
        context["window_error"], status = exc.message, 400
    else:
        traffic = analytics.prompt_traffic(prompt=prompt, window=window)
        context |= {"window": window, "traffic": traffic, "time_zone": timezone.get_current_timezone_name(),
                    "traffic_total": _traffic_numbers(traffic), "traffic_days": [_traffic_numbers(day) for day in reversed(traffic.days)],
                    "traffic_chart": _traffic_chart(traffic) if traffic.calls else None}  # fmt: skip
    if not wants_fragment(request, TRAFFIC_ID):  # the runs are on the page, outside the fragment
        runs = analytics.prompt_run_analytics(prompt=prompt)
        context |= {"runs": runs, "version_rows": [_version_row(result) for result in runs.versions],
                    "spread_rows": [_spread_row(spread) for spread in runs.spreads]}  # fmt: skip
        if runs.versions:
            context["version_chart"] = _version_chart(runs.versions, context["version_rows"])
        if runs.spreads:
            context["spread_chart"] = _spread_chart(runs.spreads)
    return page_or_fragment(
        request, "evaluations/analytics.html", context, fragment_template=f"evaluations/partials/{TRAFFIC_ID}.html", target=TRAFFIC_ID,
        status=status,
    )  # fmt: skip


# --- By version --------------------------------------------------------------------------------


def _version_row(result: analytics.VersionResult) -> dict:
    s = result.summary
    return {
        "result": result,
        "pass_rate": _interval(s.pass_rate, _percent) if s.pass_rate else "—",
        "pass_count": f"{s.passed}/{s.graded}",
        "mean_score": _interval(s.mean_score, _score) if s.mean_score else "—",
    }


def _version_chart(results: list[analytics.VersionResult], rows: list[dict]):
    categories = [(f"v{r.version}", f"{r.saved_at:%Y-%m-%d}" if r.saved_at else "") for r in results]
    pairs = list(zip(results, rows, strict=True))
    pass_points = _points(results, "pass_rate", [f"v{r.version} pass rate {row['pass_rate']}, {row['pass_count']} passed" for r, row in pairs])
    score_points = _points(results, "mean_score", [f"v{r.version} mean score {row['mean_score']}" for r, row in pairs])
    return charts.interval_chart(
        chart_id="version-chart", title="Pass rate and mean score by version",
        desc="For each version run in a finished experiment: pass rate with its Wilson 95% interval and mean score "
             "with its bootstrap 95% interval, on a scale from 0 to 1. The table below has the same numbers.",
        categories=categories,
        series=[charts.IntervalSeries("pass rate", "pass-rate", pass_points),
                charts.IntervalSeries("mean score", "mean-score", score_points)],
        y_max=max([1.0, *(p.high for p in score_points if p is not None)]),
    )  # fmt: skip


def _points(results: list[analytics.VersionResult], field: str, notes: list[str]) -> list:
    """Each version's interval of the summary's `field` as a point, None where it has none."""
    points = []
    for result, note in zip(results, notes, strict=True):
        interval = getattr(result.summary, field)
        points.append(charts.IntervalPoint(interval.estimate, interval.low, interval.high, note) if interval else None)
    return points


# --- By version and model ----------------------------------------------------------------------


def _spread_row(spread: analytics.ModelSpread) -> dict:
    return {"spread": spread, "latency": _five(spread.latency_ms, _ms), "cost": _five(spread.cost_usd, _usd)}


def _spread_chart(spreads: list[analytics.ModelSpread]):
    return charts.box_plot(
        chart_id="spread-chart", title="Latency and cost per run by version and model",
        desc="For each version and model: whiskers from the fastest (cheapest) run to the slowest (dearest), "
             "a box from p25 to p75, a line at the median and a diamond at p95. The table below has the same numbers.",
        rows=[f"v{s.version} · {s.model}" for s in spreads],
        panels=[charts.BoxPanel("latency", [s.latency_ms for s in spreads], _ms),
                charts.BoxPanel("cost", [s.cost_usd for s in spreads], _usd)],
    )  # fmt: skip


def _five(distribution: analytics.Distribution | None, fmt) -> list[str] | None:
    if distribution is None:
        return None
    d = distribution
    return [fmt(value) for value in (d.minimum, d.p25, d.p50, d.p75, d.p95, d.maximum)]


# --- Production traffic ------------------------------------------------------------------------


def _traffic_numbers(traffic: analytics.TrafficCounts) -> dict:
    """A day's numbers, or the whole window's, as the page writes them."""
    return {
        "day": getattr(traffic, "day", None), "calls": f"{traffic.calls:,}", "spend": _usd(traffic.spend_usd),
        "errors": f"{traffic.errors:,}", "error_rate": _percent(traffic.error_rate) if traffic.error_rate is not None else "—",
        "latency_p95": _ms(traffic.latency_p95) if traffic.latency_p95 is not None else "—",
    }  # fmt: skip


def _traffic_chart(traffic: analytics.Traffic):
    days = traffic.days
    return charts.daily_chart(
        chart_id="traffic-chart", title=f"Production calls of the last {traffic.window} days",
        desc="Per day: calls, spend in USD, p95 latency of the calls that answered, and the share of finished calls "
             "that failed. The table below has the same numbers.",
        days=[day.day for day in days],
        panels=[
            charts.DayPanel("calls", "bar", "calls", [day.calls for day in days], lambda v: f"{v:,.0f}"),
            charts.DayPanel("spend", "bar", "spend", [float(day.spend_usd) for day in days], _usd),
            charts.DayPanel("p95 latency", "line", "latency", [day.latency_p95 for day in days], _ms),
            charts.DayPanel("error rate", "line", "errors", [day.error_rate for day in days], _percent),
        ],
    )  # fmt: skip


# --- Numbers as the page writes them ----------------------------------------------------------


def _interval(interval, fmt) -> str:
    return f"{fmt(interval.estimate)} ({fmt(interval.low)}–{fmt(interval.high)})"


def _percent(share: float) -> str:
    return f"{share * 100:.1f}%"


def _score(value: float) -> str:
    return f"{value:.3f}"


def _ms(value: float) -> str:
    return f"{value:,.0f} ms"


def _usd(value) -> str:
    value = float(value)
    return f"${value:,.2f}" if value >= 1 else f"${value:.3g}"
