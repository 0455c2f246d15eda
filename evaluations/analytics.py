"""How a prompt does over time and in production, read for the analytics page.

- By version: every finished experiment's runs of the prompt, pooled per version, judged as
  the comparison page grades a run (`grading.run_grades`) and summarized by
  `statistics.summarize`: pass rate with its Wilson interval, mean score with its bootstrap
  interval.
- By version and model: the spread of those runs' latency and cost.
- Production: the invoke log (`PromptCall`) per day over a window of 7, 30 or 90 days.

Each reads a fixed number of queries, however many versions, experiments or days there are.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.db.models import Count, F, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from evaluations import comparison, grading, statistics
from evaluations.statistics import VariantSummary
from experiments.models import ExperimentStatus, Run, RunStatus
from promptlab.errors import Invalid
from prompts import selectors as prompt_selectors
from prompts.models import Prompt, PromptCall, PromptCallStatus

WINDOWS = (7, 30, 90)  # days of production traffic the page offers
DEFAULT_WINDOW = 30
# The points of a distribution the page draws: whiskers, box, median, p95.
QUANTILES = (0, 25, 50, 75, 95, 100)


@dataclass(frozen=True)
class VersionResult:
    version: int
    saved_at: datetime
    labels: list[str]
    experiments: int
    summary: VariantSummary


@dataclass(frozen=True)
class Distribution:
    minimum: float
    p25: float
    p50: float
    p75: float
    p95: float
    maximum: float
    count: int


@dataclass(frozen=True)
class ModelSpread:
    version: int
    model: str
    runs: int
    latency_ms: Distribution | None
    cost_usd: Distribution | None


@dataclass(frozen=True)
class RunAnalytics:
    versions: list[VersionResult]  # versions run in a finished experiment, oldest first
    untested: list[int]  # versions no finished experiment ran
    spreads: list[ModelSpread]  # per (version, model), by version then model


@dataclass(frozen=True)
class TrafficCounts:
    calls: int
    finished: int  # done or failed: the error rate's denominator
    errors: int
    spend_usd: Decimal
    latency_p95: float | None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.finished if self.finished else None


@dataclass(frozen=True)
class TrafficDay(TrafficCounts):
    day: date


@dataclass(frozen=True)
class Traffic(TrafficCounts):
    """The window's totals, and its days."""

    window: int
    first_day: date
    last_day: date
    days: list[TrafficDay]  # every day of the window, oldest first; days without calls are zeros


def traffic_window(raw: str | None) -> int:
    """The `days` of the query string: 7, 30 or 90 (30 when absent or blank); anything else is Invalid."""
    raw = (raw or "").strip()
    if not raw:
        return DEFAULT_WINDOW
    if not (raw.isascii() and raw.isdigit() and int(raw) in WINDOWS):
        raise Invalid(f"days={raw[:20]!r} is not a window the page offers: choose 7, 30 or 90.", details={"days": raw[:20]})
    return int(raw)


def prompt_run_analytics(*, prompt: Prompt) -> RunAnalytics:
    """The prompt's runs in finished experiments: per version its pass rate and mean score with
    their 95% intervals, and per version and model the spread of latency and cost. A run's
    model is its variant's endpoint, else the one its version was saved with. A fixed number
    of queries however many experiments ran the prompt."""
    versions = _versions(prompt)
    runs = Run.objects.filter(_finished_runs(prompt))
    shown = {pk: (version, model) for pk, version, model in runs.values_list("pk", "variant__version", "variant__endpoint__display_name")}

    outcomes, experiments, spread_runs = defaultdict(list), defaultdict(set), defaultdict(list)
    for run in grading.run_grades(runs):
        outcome = comparison.run_outcome(run)
        version, model = shown[run.run_id]
        outcomes[version].append(outcome)
        experiments[version].add(run.experiment_id)
        model = model or versions.get(version, {}).get("model") or "(unknown model)"
        spread_runs[version, model].append(outcome)

    labels = prompt_selectors.prompt_labels_by_version(prompt=prompt)  # prefetched by prompt_get
    return RunAnalytics(
        versions=[
            VersionResult(version=version, saved_at=versions.get(version, {}).get("saved_at"), labels=labels.get(version, []),
                          experiments=len(experiments[version]), summary=statistics.summarize(outcomes[version]))
            for version in sorted(outcomes)
        ],  # fmt: skip
        untested=[version for version in versions if version not in outcomes],
        spreads=[
            ModelSpread(
                version=version, model=model, runs=len(group),
                latency_ms=distribution(o.latency_ms for o in group if o.latency_ms is not None),
                cost_usd=distribution(float(o.cost) for o in group if o.cost is not None),
            )  # fmt: skip
            for (version, model), group in sorted(spread_runs.items())
        ],
    )


def distribution(values) -> Distribution | None:
    """Minimum, quartiles, p95 and maximum of the values (None when there are none)."""
    values = list(values)
    points = statistics.percentiles(values, QUANTILES)
    return Distribution(*points, count=len(values)) if points else None


def prompt_traffic(*, prompt: Prompt, window: int, today: date | None = None) -> Traffic:
    """The prompt's production calls (the invoke log) per day over the last `window` days up
    to `today` (the current time zone's date): calls, spend, errors among the finished calls,
    p95 latency. Counts and sums are aggregated by the database; the p95 needs every latency
    of the window, read in one query. Two queries."""
    today = today or timezone.localdate()
    first_day = today - timedelta(days=window - 1)
    calls = PromptCall.objects.filter(
        project_id=prompt.project_id, prompt=prompt, created_at__gte=_start_of(first_day), created_at__lt=_start_of(today + timedelta(days=1))
    ).annotate(day=TruncDate("created_at"))
    finished = Q(status__in=[PromptCallStatus.DONE, PromptCallStatus.FAILED])
    per_day = {
        row["day"]: row
        for row in calls.values("day").order_by("day").annotate(
            calls=Count("pk"), finished=Count("pk", filter=finished),
            errors=Count("pk", filter=Q(status=PromptCallStatus.FAILED)), spend=Sum("cost_usd"),
        )  # fmt: skip
    }
    latencies = defaultdict(list)
    for day, latency in calls.filter(latency_ms__isnull=False).order_by().values_list("day", "latency_ms").iterator(chunk_size=5000):
        latencies[day].append(latency)

    days = []
    for offset in range(window):
        day = first_day + timedelta(days=offset)
        row = per_day.get(day, {})
        p95 = statistics.percentiles(latencies.get(day, ()), (95,))
        days.append(
            TrafficDay(day=day, calls=row.get("calls", 0), finished=row.get("finished", 0), errors=row.get("errors", 0),
                       spend_usd=row.get("spend") or Decimal(0), latency_p95=p95[0] if p95 else None)
        )  # fmt: skip
    overall = statistics.percentiles((latency for day in latencies.values() for latency in day), (95,))
    return Traffic(
        window=window, first_day=first_day, last_day=today, days=days,
        calls=sum(day.calls for day in days), finished=sum(day.finished for day in days), errors=sum(day.errors for day in days),
        spend_usd=sum((day.spend_usd for day in days), Decimal(0)), latency_p95=overall[0] if overall else None,
    )  # fmt: skip


def _versions(prompt: Prompt) -> dict[int, dict]:
    """{version: {saved_at, model}} of every version of the prompt, oldest first."""
    versions = {}
    records = (
        prompt.history.exclude(history_type="-").order_by("version", "history_date")
        .values("version", saved_at=F("history_date"), model=F("endpoint__display_name"))
    )  # fmt: skip
    for record in records:
        versions.setdefault(record.pop("version"), record)
    return versions


def _finished_runs(prompt: Prompt) -> Q:
    """Runs of the prompt that ran, in finished experiments, at a known version."""
    return Q(
        variant__prompt=prompt, variant__version__isnull=False, experiment__status=ExperimentStatus.FINISHED,
        status__in=[RunStatus.DONE, RunStatus.FAILED],
    )  # fmt: skip


def _start_of(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))

