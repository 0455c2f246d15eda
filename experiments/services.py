"""Every write to experiments and runs. Pages, API, commands and the Celery runner call these."""

import socket
import time
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import structlog
from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Min, Q, Sum
from django.utils import timezone

from experiments import extensions, signals
from experiments.datasets import missing_variables
from experiments.models import Dataset, Experiment, ExperimentStatus, Run, RunStatus, Variant
from promptlab.accounts.access import Action, authorize
from promptlab.errors import DomainError, Invalid, validated
from promptlab.llm import catalog, gateway
from promptlab.llm.errors import GatewayError
from promptlab.llm.limits import CircuitOpen, LimitExceeded
from promptlab.llm.models import ModelEndpoint
from prompts import selectors
from prompts.rendering import render_version

logger = structlog.get_logger(__name__)

DEFAULT_COMPLETION_TOKENS = 256


@transaction.atomic
def experiment_create(*, project, actor, name: str, dataset: Dataset, variants: list[dict], repeats: int = 1,
                      budget_usd: Decimal | None = None, concurrency: int = 8, attach: dict | None = None,
                      start: bool = False) -> Experiment:  # fmt: skip
    """A draft experiment, with what higher layers attach to it (`attach`, by the names in
    experiments.extensions, e.g. {"evaluators": [...]}), started if asked. All or nothing: a
    refused start (say, an item lacks a variable) leaves no draft behind.
    Each variant: {"name", "prompt", "label" or "version", "endpoint"?, "params"?}."""
    authorize(actor, project, Action.EDIT)
    experiment = Experiment(project=project, created_by=actor)
    experiment = _draft_save(experiment, name=name, dataset=dataset, variants=variants, repeats=repeats,
                             budget_usd=budget_usd, concurrency=concurrency)  # fmt: skip
    extensions.attach_all(experiment=experiment, actor=actor, given=attach or {})
    return experiment_start(experiment=experiment, actor=actor) if start else experiment


@transaction.atomic
def experiment_update(*, experiment: Experiment, actor, variants: list[dict], **fields) -> Experiment:
    """Change a draft: its settings and, replacing the old ones, its variants."""
    authorize(actor, experiment.project, Action.EDIT)
    experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
    if experiment.status != ExperimentStatus.DRAFT:
        raise Invalid(f"The experiment is {experiment.status}; only a draft can be changed.")
    if unknown := set(fields) - DRAFT_FIELDS:
        raise Invalid(f"Unknown experiment fields: {', '.join(sorted(unknown))}.")
    experiment.variants.all().delete()
    return _draft_save(experiment, variants=variants, **fields)


DRAFT_FIELDS = {"name", "dataset", "repeats", "budget_usd", "concurrency"}


def _draft_save(experiment: Experiment, *, variants: list[dict], **fields) -> Experiment:
    for field, value in fields.items():
        setattr(experiment, field, value)
    if not variants:
        raise Invalid("An experiment needs at least one variant.")
    validated(experiment, "experiment").save()
    for spec in variants:
        variant = Variant(
            experiment=experiment, name=spec.get("name") or spec["prompt"].name, prompt=spec["prompt"],
            label="" if spec.get("version") else spec.get("label") or "production",
            version=spec.get("version"), endpoint=spec.get("endpoint"), params=spec.get("params") or {},
        )  # fmt: skip
        validated(variant, f"variant {variant.name!r}").save()
    return experiment


@dataclass(frozen=True)
class ResolvedVariant:
    variant: Variant
    record: object  # the prompt's historical version
    endpoint: ModelEndpoint
    params: dict


def _resolve(variant: Variant) -> ResolvedVariant:
    """The exact version a variant runs (a label is read now), its endpoint and params."""
    record = selectors.prompt_version(prompt=variant.prompt, version=variant.version, label=variant.label or None)
    endpoint = variant.endpoint or ModelEndpoint.objects.filter(pk=record.endpoint_id).first()
    if endpoint is None:
        raise Invalid(f"Variant {variant.name!r}: its model no longer exists.")
    try:
        catalog.endpoint_credentials(endpoint)
    except DomainError as exc:
        raise Invalid(f"Variant {variant.name!r}: {exc.message}") from None
    return ResolvedVariant(variant, record, endpoint, {**(record.params or {}), **variant.params})


def _needed_variables(record) -> set[str]:
    declared = {spec["name"]: spec for spec in record.variables or []}
    optional = {name for name, spec in declared.items() if spec.get("required") is False or spec.get("default") is not None}
    return (set(record.used_variables) | set(declared)) - optional


def experiment_missing_variables(experiment: Experiment) -> list[str]:
    """Items lacking a variable a variant needs, as 'row N: a, b (variant)' lines."""
    problems = []
    for item in [_resolve(variant) for variant in experiment.variants.select_related("prompt")]:
        for row, missing in missing_variables(dataset=experiment.dataset, needed=_needed_variables(item.record)):
            problems.append(f"row {row}: {', '.join(missing)} (variant {item.variant.name})")
    return problems


@transaction.atomic
def experiment_start(*, experiment: Experiment, actor) -> Experiment:
    """Freeze every variant to an exact version, create all runs, and enqueue the work.
    Refused with the reason, and nothing created, when a variant or an item is not runnable."""
    authorize(actor, experiment.project, Action.EDIT)
    experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
    if experiment.status != ExperimentStatus.DRAFT:
        raise Invalid(f"The experiment is {experiment.status}; only a draft can be started.")
    resolved = [_resolve(variant) for variant in experiment.variants.select_related("prompt", "endpoint")]
    if problems := experiment_missing_variables(experiment):
        shown = "; ".join(problems[:20]) + (f"; and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise Invalid(f"Some items lack variables the prompts need: {shown}.", details={"missing": problems[:200]})
    for item in resolved:
        item.variant.version, item.variant.endpoint = item.record.version, item.endpoint
        item.variant.params = item.params
        item.variant.save(update_fields=["version", "endpoint", "params"])
    items = list(experiment.dataset.items.values_list("pk", flat=True))
    if not items:
        raise Invalid("The dataset has no items.")
    Run.objects.bulk_create(
        (Run(experiment=experiment, variant=item.variant, item_id=item_id, repeat=repeat)
         for item_id in items for item in resolved for repeat in range(1, experiment.repeats + 1)),
        batch_size=2000,
    )  # fmt: skip
    experiment.status, experiment.started_at = ExperimentStatus.RUNNING, timezone.now()
    experiment.save(update_fields=["status", "started_at"])
    _enqueue(experiment)
    logger.info("experiments.started", experiment_id=experiment.pk, runs=len(items) * len(resolved) * experiment.repeats)
    return experiment


def _enqueue(experiment: Experiment) -> None:
    from experiments.tasks import experiment_drain

    for _ in range(experiment.concurrency):
        experiment_drain.delay_on_commit(experiment.pk)


@dataclass(frozen=True)
class Forecast:
    calls: int
    prompt_tokens: int
    completion_tokens: int
    usd: Decimal | None  # None when a model's price is unknown
    sampled: int | None = None  # when set, tokens were counted on this many items and scaled up


FORECAST_SAMPLE = 500  # items whose prompts are rendered and counted; a larger dataset is scaled up


def experiment_forecast(experiment: Experiment) -> Forecast:
    return variants_forecast(
        dataset=experiment.dataset, variants=list(experiment.variants.select_related("prompt", "endpoint")), repeats=experiment.repeats
    )


def variants_forecast(*, dataset: Dataset, variants: list[Variant], repeats: int) -> Forecast:
    """Calls and estimated cost of running the variants (saved or not) over the dataset:
    prompt tokens counted on the rendered messages with LiteLLM's token counter (on the first
    FORECAST_SAMPLE items, scaled up for a larger dataset); completion tokens from earlier
    runs of the same prompt version when there are some, else max_tokens (or 256)."""
    from django.db.models import Avg

    total = dataset.items.count()
    sample = list(dataset.items.order_by("row").values_list("vars", flat=True)[:FORECAST_SAMPLE])
    scale = total / len(sample) if sample else 0
    calls = prompt_total = completion_total = 0
    usd = Decimal(0)
    for item in [_resolve(variant) for variant in variants]:
        earlier = Run.objects.filter(
            variant__prompt=item.variant.prompt, variant__version=item.record.version, status=RunStatus.DONE
        ).aggregate(avg=Avg("completion_tokens"))["avg"]
        per_call = round(earlier) if earlier is not None else item.params.get("max_tokens", DEFAULT_COMPLETION_TOKENS)
        prices = catalog.prices_per_token(item.endpoint)
        renderable = tokens = 0
        for values in sample:
            try:
                rendered = render_version(item.record, values)
            except DomainError:
                continue  # experiment_start reports such items by row
            renderable += 1
            tokens += _prompt_tokens(item.endpoint, rendered.messages or [{"role": "user", "content": rendered.text}])
        variant_calls, variant_tokens = round(renderable * scale) * repeats, round(tokens * scale) * repeats
        calls += variant_calls
        prompt_total += variant_tokens
        completion_total += per_call * variant_calls
        usd = None if prices is None or usd is None else usd + prices[0] * variant_tokens + prices[1] * per_call * variant_calls
    return Forecast(calls=calls, prompt_tokens=prompt_total, completion_tokens=completion_total, usd=usd,
                    sampled=len(sample) if total > len(sample) else None)  # fmt: skip


# --- The runner -------------------------------------------------------------------------


def run_claim(*, experiment_id: int) -> Run | None:
    """Claim the next pending run of a running experiment, or one whose lease expired (its
    worker died), with a compare-and-set: two workers never hold the same run. On PostgreSQL
    the rows other workers are claiming are skipped (SKIP LOCKED), so many workers claiming
    at once do not all race for the same row."""
    now = timezone.now()
    claimable = Q(status=RunStatus.PENDING) | Q(status=RunStatus.RUNNING, lease_until__lt=now)
    while True:
        with transaction.atomic():
            candidate = (
                Run.objects.filter(claimable, experiment_id=experiment_id, experiment__status=ExperimentStatus.RUNNING)
                .select_related("experiment", "variant__prompt", "variant__endpoint", "item")
                .select_for_update(skip_locked=True, of=("self",)).order_by("id").first()
            )  # fmt: skip
            if candidate is None:
                return None
            lease_until = now + timedelta(seconds=settings.EXPERIMENT_RUN_LEASE_SECONDS)
            won = Run.objects.filter(id=candidate.id, status=candidate.status, claims=candidate.claims).update(
                status=RunStatus.RUNNING, lease_until=lease_until, claims=F("claims") + 1
            )
        if won:
            candidate.status, candidate.lease_until, candidate.claims = RunStatus.RUNNING, lease_until, candidate.claims + 1
            return candidate


def run_execute(*, run: Run, versions: dict | None = None) -> Run:
    """Render and call the model for a claimed run, within the experiment's budget; record the result.
    `versions` keeps the frozen prompt versions a drain has read already (they never change)."""
    variant = run.variant
    versions = {} if versions is None else versions
    if (record := versions.get(variant.pk)) is None:
        record = versions[variant.pk] = selectors.prompt_version(prompt=variant.prompt, version=variant.version)
    try:
        rendered = render_version(record, run.item.vars)
        messages = rendered.messages or [{"role": "user", "content": rendered.text}]
    except DomainError as exc:
        return _finish(run, RunStatus.FAILED, error=exc.message, error_kind="render")
    if run.experiment.budget_usd is not None and not _reserve(run, _estimate_cost(variant.endpoint, messages, variant.params)):
        return _finish(run, RunStatus.SKIPPED, error="The experiment's budget would be exceeded.", error_kind="budget")
    try:
        result = gateway.complete(endpoint=variant.endpoint, messages=messages, params=variant.params)
    except (LimitExceeded, CircuitOpen) as exc:
        # No call was made: give the run back and let the endpoint recover.
        _release(run)
        time.sleep(min(exc.retry_after or 1.0, 5.0))
        return run
    except GatewayError as exc:
        return _finish(run, RunStatus.FAILED, messages=messages, **{"output": "", **gateway.failure_fields(exc)})
    return _finish(run, RunStatus.DONE, messages=messages, **gateway.answer_fields(result))


def _estimate_cost(endpoint, messages, params) -> Decimal:
    prices = catalog.prices_per_token(endpoint)
    if prices is None:
        return Decimal(0)
    return prices[0] * _prompt_tokens(endpoint, messages) + prices[1] * params.get("max_tokens", DEFAULT_COMPLETION_TOKENS)


def _prompt_tokens(endpoint, messages) -> int:
    """Prompt tokens of the rendered messages, by LiteLLM's token counter (forecast and budget alike)."""
    return gateway.prepared_litellm().token_counter(model=endpoint.model.split("/", 1)[-1], messages=messages)


@transaction.atomic
def _reserve(run: Run, estimate: Decimal) -> bool:
    """Hold the run's estimated cost against the budget; False when it would be exceeded."""
    experiment = Experiment.objects.select_for_update().get(pk=run.experiment_id)
    if experiment.spent_usd + experiment.reserved_usd + estimate > experiment.budget_usd:
        return False
    Experiment.objects.filter(pk=experiment.pk).update(reserved_usd=F("reserved_usd") + estimate)
    Run.objects.filter(pk=run.pk).update(reserved_usd=estimate)
    run.reserved_usd = estimate
    return True


@transaction.atomic
def _finish(run: Run, status: str, **fields) -> Run:
    """Write the result only while this claim still holds the run, and settle the budget."""
    cost = fields.get("cost_usd") or Decimal(0)
    updated = Run.objects.filter(pk=run.pk, status=RunStatus.RUNNING, claims=run.claims).update(
        status=status, lease_until=None, finished_at=timezone.now(), reserved_usd=0, **fields
    )
    if updated and (cost or run.reserved_usd):
        Experiment.objects.filter(pk=run.experiment_id).update(
            spent_usd=F("spent_usd") + cost, reserved_usd=F("reserved_usd") - run.reserved_usd
        )
    if updated and status == RunStatus.DONE:
        transaction.on_commit(lambda: signals.run_done.send(sender=Run, run_id=run.pk))
    return run


@transaction.atomic
def _release(run: Run) -> None:
    if Run.objects.filter(pk=run.pk, status=RunStatus.RUNNING, claims=run.claims).update(
        status=RunStatus.PENDING, lease_until=None, reserved_usd=0
    ):
        Experiment.objects.filter(pk=run.experiment_id).update(reserved_usd=F("reserved_usd") - run.reserved_usd)


def experiment_finish_if_done(*, experiment_id: int) -> bool:
    """Mark a running experiment finished once no run is pending or in flight; True when
    nothing is left to run (also when the experiment was cancelled)."""
    open_runs = Run.objects.filter(
        experiment_id=experiment_id, experiment__status=ExperimentStatus.RUNNING, status__in=[RunStatus.PENDING, RunStatus.RUNNING]
    )
    if open_runs.exists():
        return False
    Experiment.objects.filter(pk=experiment_id, status=ExperimentStatus.RUNNING).update(
        status=ExperimentStatus.FINISHED, finished_at=timezone.now()
    )
    return True


def experiment_drain(*, experiment_id: int, time_budget_s: float = 240) -> int:
    """Claim and execute runs until none are left or the time budget is spent; returns how many ran."""
    gateway.prepared_litellm()  # before the first claim: a lease must not run out during LiteLLM's import
    deadline = timezone.now() + timedelta(seconds=time_budget_s)
    done, versions = 0, {}
    while timezone.now() < deadline:
        run = run_claim(experiment_id=experiment_id)
        if run is None:
            # Runs still held by others: wait while they may finish, or their lease runs out
            # (their worker died) and one of them can be claimed here.
            held = Run.objects.filter(
                experiment_id=experiment_id, status=RunStatus.RUNNING, lease_until__gt=timezone.now()
            ).aggregate(until=Min("lease_until"))
            if held["until"] is None:
                if experiment_finish_if_done(experiment_id=experiment_id):
                    break
                time.sleep(0.05)  # the runs left were being claimed by others at that instant
                continue
            time.sleep(min(2.0, max(0.1, (held["until"] - timezone.now()).total_seconds())))
            continue
        try:
            run_execute(run=run, versions=versions)
        except Exception as exc:  # a bug must not strand the run as running until its lease ends
            logger.exception("experiments.run_crashed", run_id=run.pk)
            _finish(run, RunStatus.FAILED, error=f"internal error: {type(exc).__name__}: {exc}", error_kind="internal")
        done += 1
    else:
        from experiments.tasks import experiment_drain as task

        task.delay(experiment_id)  # more to do: continue in a fresh task
    logger.info("experiments.drained", experiment_id=experiment_id, runs=done, worker=socket.gethostname())
    return done


def experiments_recover() -> int:
    """Enqueue drains for every running experiment that still has open runs; returns how many."""
    running = Experiment.objects.filter(
        status=ExperimentStatus.RUNNING, runs__status__in=[RunStatus.PENDING, RunStatus.RUNNING]
    ).distinct()
    count = 0
    for experiment in running:
        _enqueue(experiment)
        count += 1
    return count


# --- Actions ------------------------------------------------------------------------------


@transaction.atomic
def experiment_cancel(*, experiment: Experiment, actor) -> Experiment:
    """Cancel pending runs; runs in flight finish."""
    authorize(actor, experiment.project, Action.EDIT)
    Run.objects.filter(experiment=experiment, status=RunStatus.PENDING).update(status=RunStatus.CANCELLED)
    Experiment.objects.filter(pk=experiment.pk, status=ExperimentStatus.RUNNING).update(status=ExperimentStatus.CANCELLED)
    experiment.refresh_from_db()
    return experiment


@transaction.atomic
def experiment_resume(*, experiment: Experiment, actor, retry: tuple[str, ...] = (RunStatus.CANCELLED,)) -> Experiment:
    """Put cancelled runs (and, for retry errors, failed ones) back to pending and run again."""
    authorize(actor, experiment.project, Action.EDIT)
    experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
    if experiment.status == ExperimentStatus.DRAFT:
        raise Invalid("Start the experiment first.")
    reopened = Run.objects.filter(experiment=experiment, status__in=retry).update(
        status=RunStatus.PENDING, error="", error_kind="", finished_at=None
    )
    if reopened or Run.objects.filter(experiment=experiment, status=RunStatus.PENDING).exists():
        experiment.status, experiment.finished_at = ExperimentStatus.RUNNING, None
        experiment.save(update_fields=["status", "finished_at"])
        _enqueue(experiment)
    return experiment


def experiment_retry_errors(*, experiment: Experiment, actor) -> Experiment:
    return experiment_resume(experiment=experiment, actor=actor, retry=(RunStatus.FAILED,))


def experiment_counts(experiment: Experiment) -> dict:
    """Runs by status and the spend, straight from the runs."""
    counts = dict(experiment.runs.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    totals = experiment.runs.aggregate(spent=Sum("cost_usd"))
    return {**{status: counts.get(status, 0) for status in RunStatus.values}, "total": sum(counts.values()),
            "spent_usd": totals["spent"] or Decimal(0)}  # fmt: skip
