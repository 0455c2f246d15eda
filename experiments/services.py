"""Every write to experiments and runs. Pages, API, commands and the Celery runner call these."""

import enum
import socket
import time
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import structlog
from django.db import transaction
from django.db.models import Count, Exists, F, Min, OuterRef, Q, QuerySet, Sum
from django.utils import timezone

from experiments import extensions, signals
from experiments.datasets import missing_variables
from experiments.models import Dataset, Experiment, ExperimentStatus, Run, RunStatus, Variant
from promptlab import dispatch, leases, sweeper
from promptlab.accounts.access import Action, authorize
from promptlab.errors import DomainError, Invalid, validated
from promptlab.llm import catalog, estimates, gateway
from promptlab.llm.errors import GatewayError
from promptlab.llm.limits import CircuitOpen, LimitExceeded
from promptlab.llm.models import COST_UNKNOWN, ModelEndpoint
from prompts import selectors
from prompts.rendering import render_version
from prompts.versions import version_or_label

logger = structlog.get_logger(__name__)

@transaction.atomic
def experiment_create(*, project, actor, name: str, dataset: Dataset, variants: list[dict], repeats: int = 1,
                      budget_usd: Decimal | None = None, concurrency: int = 8, cache_responses: bool = False,
                      attach: dict | None = None, start: bool = False) -> Experiment:  # fmt: skip
    """A draft experiment, with what higher layers attach to it (`attach`, by the names in
    experiments.extensions, e.g. {"evaluators": [...]}), started if asked. All or nothing: a
    refused start (say, an item lacks a variable) leaves no draft behind.
    Each variant: {"name", "prompt", "label" or "version", "endpoint"?, "params"?}."""
    authorize(actor, project, Action.EDIT)
    experiment = Experiment(project=project, created_by=actor)
    experiment = _draft_save(experiment, name=name, dataset=dataset, variants=variants, repeats=repeats,
                             budget_usd=budget_usd, concurrency=concurrency, cache_responses=cache_responses)  # fmt: skip
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


DRAFT_FIELDS = {"name", "dataset", "repeats", "budget_usd", "concurrency", "cache_responses"}


def _draft_save(experiment: Experiment, *, variants: list[dict], **fields) -> Experiment:
    for field, value in fields.items():
        setattr(experiment, field, value)
    if not variants:
        raise Invalid("An experiment needs at least one variant.")
    validated(experiment, "experiment").save()
    for spec in variants:
        # A label typed as a version ("v3", from the admin or a gate's baseline) is that version.
        pin = {"version": spec["version"]} if spec.get("version") else version_or_label(spec.get("label") or "production")
        variant = Variant(
            experiment=experiment, name=spec.get("name") or spec["prompt"].name, prompt=spec["prompt"],
            label=pin.get("label", ""), version=pin.get("version"), endpoint=spec.get("endpoint"), params=spec.get("params") or {},
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
    if problems := _budget_problems(experiment, resolved) + extensions.start_problems(experiment):
        raise Invalid(f"The experiment cannot start: {'; '.join(problems)}.", details={"problems": problems})
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


def _budget_problems(experiment: Experiment, resolved: list[ResolvedVariant]) -> list[str]:
    """With a budget, each variant's calls need a price and a longest answer, so that each call
    can be held against it before it is made."""
    if experiment.budget_usd is None:
        return []
    problems = []
    for item in resolved:
        estimate = estimates.CallEstimate(item.endpoint, 0, estimates.answer_tokens(item.endpoint, item.params))
        if estimate.problem:
            problems.append(f"variant {item.variant.name!r}: {estimate.problem}")
    return problems


def _enqueue(experiment: Experiment) -> None:
    from experiments.tasks import experiment_drain

    for _ in range(experiment.concurrency):
        dispatch.send_on_commit(experiment_drain, experiment.pk)


@dataclass(frozen=True)
class Forecast:
    calls: int
    prompt_tokens: int
    completion_tokens: int
    usd: Decimal | None  # the runs' and the parts'; None when a cost is unknown: `unpriced` says why
    sampled: int | None = None  # when set, tokens were counted on this many items and scaled up
    parts: tuple[extensions.ForecastPart, ...] = ()  # what higher layers do for each run: scoring's judge calls
    unpriced: tuple[str, ...] = ()  # why usd is None: "variant 'a': the model endpoint 'x' has no price, ..."


FORECAST_SAMPLE = 500  # items whose prompts are rendered and counted; a larger dataset is scaled up


def experiment_forecast(experiment: Experiment) -> Forecast:
    return variants_forecast(
        dataset=experiment.dataset, variants=list(experiment.variants.select_related("prompt", "endpoint")),
        repeats=experiment.repeats, experiment=experiment,
    )  # fmt: skip


def variants_forecast(*, dataset: Dataset, variants: list[Variant], repeats: int, experiment: Experiment | None = None,
                      attach: dict | None = None) -> Forecast:  # fmt: skip
    """Calls and estimated cost of running the variants (saved or not) over the dataset, and of
    what higher layers do for each run (scoring: the experiment's evaluators, or for a draft not
    saved yet those in `attach`, by attachment name): prompt tokens counted on the rendered
    messages with LiteLLM's token counter (on the first FORECAST_SAMPLE items, scaled up for a
    larger dataset); completion tokens from earlier runs of the same prompt version when there
    are some, else at their cap (max_tokens, else the model's longest answer), which is what a
    budget holds for each call."""
    from django.db.models import Avg

    total = dataset.items.count()
    sample = list(dataset.items.order_by("row")[:FORECAST_SAMPLE])
    scale = total / len(sample) if sample else 0
    calls = prompt_total = completion_total = 0
    usd, unpriced, planned = Decimal(0), [], []
    for item in [_resolve(variant) for variant in variants]:
        earlier = Run.objects.filter(
            variant__prompt=item.variant.prompt, variant__version=item.record.version, status=RunStatus.DONE
        ).aggregate(avg=Avg("completion_tokens"))["avg"]
        per_call = round(earlier) if earlier is not None else estimates.answer_tokens(item.endpoint, item.params)
        renderable = tokens = 0
        for dataset_item in sample:
            try:
                rendered = render_version(item.record, dataset_item.vars)
            except DomainError:
                continue  # experiment_start reports such items by row
            messages = rendered.messages or [{"role": "user", "content": rendered.text}]
            renderable += 1
            tokens += estimates.prompt_tokens(item.endpoint, messages=messages)
            planned.append(
                extensions.PlannedRun(item=dataset_item, messages=messages, answer_tokens=per_call or 0, runs=scale * repeats)
            )
        variant_calls, variant_tokens = round(renderable * scale) * repeats, round(tokens * scale) * repeats
        calls += variant_calls
        prompt_total += variant_tokens
        completion_total += (per_call or 0) * variant_calls
        estimate = estimates.CallEstimate(item.endpoint, variant_tokens, None if per_call is None else per_call * variant_calls)
        if estimate.usd is None:
            unpriced.append(f"variant {item.variant.name!r}: {estimate.problem}")
        else:
            usd += estimate.usd
    parts = extensions.forecast_parts(dataset=dataset, planned=planned, experiment=experiment, attach=attach or {})
    for part in parts:
        unpriced += part.unpriced
        usd += part.usd or 0
    return Forecast(calls=calls, prompt_tokens=prompt_total, completion_tokens=completion_total, usd=None if unpriced else usd,
                    sampled=len(sample) if total > len(sample) else None, parts=tuple(parts), unpriced=tuple(unpriced))  # fmt: skip


# --- The runner -------------------------------------------------------------------------


def run_claim(*, experiment_id: int) -> Run | None:
    """Claim the next pending run of a running experiment, or one whose lease expired (its
    worker died), with a compare-and-set: two workers never hold the same run. On PostgreSQL
    the rows other workers are claiming are skipped (SKIP LOCKED), so many workers claiming
    at once do not all race for the same row. The lease is renewed while the run executes."""
    while True:
        with transaction.atomic():
            candidate = (
                Run.objects.filter(leases.claimable(), experiment_id=experiment_id, experiment__status=ExperimentStatus.RUNNING)
                .select_related("experiment", "variant__prompt", "variant__endpoint", "item")
                .select_for_update(skip_locked=True, of=("self",)).order_by("id").first()
            )  # fmt: skip
            if candidate is None:
                return None
            lease_until = leases.lease_end()
            won = Run.objects.filter(id=candidate.id, status=candidate.status, claims=candidate.claims).update(
                status=RunStatus.RUNNING, lease_until=lease_until, claims=F("claims") + 1, reserved_usd=0
            )
            if won and candidate.reserved_usd:
                # Its worker died while holding budget for its call: the hold goes, and is held again if it runs.
                budget_settle(experiment_id=experiment_id, reserved=candidate.reserved_usd, cost=None)
        if won:
            candidate.status, candidate.lease_until, candidate.claims = RunStatus.RUNNING, lease_until, candidate.claims + 1
            candidate.reserved_usd = Decimal(0)
            return candidate


def run_execute(*, run: Run, versions: dict | None = None) -> Run:
    """Render and call the model for a claimed run, within the experiment's budget; record the result.
    The run's lease is renewed meanwhile: however slow the call, no other worker takes the run over.
    `versions` keeps the frozen prompt versions a drain has read already (they never change)."""
    with leases.held(_claimed(run)):
        return _execute(run, {} if versions is None else versions)


def _execute(run: Run, versions: dict) -> Run:
    variant = run.variant
    if (record := versions.get(variant.pk)) is None:
        record = versions[variant.pk] = selectors.prompt_version(prompt=variant.prompt, version=variant.version)
    try:
        rendered = render_version(record, run.item.vars)
        messages = rendered.messages or [{"role": "user", "content": rendered.text}]
    except DomainError as exc:
        return _finish(run, RunStatus.FAILED, error=exc.message, error_kind="render")
    if run.experiment.budget_usd is not None:
        estimate = estimates.chat_call(variant.endpoint, messages, variant.params)
        if estimate.usd is None:
            error = f"The experiment has a budget, and {estimate.problem}."
            return _finish(run, RunStatus.SKIPPED, error=error, error_kind="budget")
        hold = budget_reserve(
            experiment_id=run.experiment_id, amount=estimate.usd, holder=_claimed(run), wait_s=RUN_BUDGET_WAIT_SECONDS
        )
        if hold is Hold.SPENT:
            return _finish(run, RunStatus.SKIPPED, error=budget_reached(estimate.usd), error_kind="budget")
        if hold is not Hold.HELD:  # busy: calls in flight hold what is left; it is claimed again later
            _release(run)
            return run
        run.reserved_usd = estimate.usd
    try:
        # Repeats are samples: no answer is reused unless the experiment opts in, and then each repeat keeps its own.
        result = gateway.complete(
            endpoint=variant.endpoint, messages=messages, params=variant.params,
            cache_response=None if run.experiment.cache_responses else False, cache_scope=f"repeat {run.repeat}",
        )  # fmt: skip
    except (LimitExceeded, CircuitOpen) as exc:
        # No call was made: give the run back and let the endpoint recover.
        _release(run)
        time.sleep(min(exc.retry_after or 1.0, 5.0))
        return run
    except GatewayError as exc:
        return _finish(run, RunStatus.FAILED, messages=messages, **{"output": "", **gateway.failure_fields(exc)})
    return _finish(run, RunStatus.DONE, messages=messages, **gateway.answer_fields(result))


def _claimed(run: Run) -> QuerySet:
    """The run, while this claim still holds it."""
    return Run.objects.filter(pk=run.pk, status=RunStatus.RUNNING, claims=run.claims)


@transaction.atomic
def _finish(run: Run, status: str, **fields) -> Run:
    """Write the result only while this claim still holds the run, and settle the budget."""
    updated = _claimed(run).update(status=status, lease_until=None, finished_at=timezone.now(), reserved_usd=0, **fields)
    if updated:
        budget_settle(experiment_id=run.experiment_id, reserved=run.reserved_usd, cost=fields.get("cost_usd"))
    if updated and status == RunStatus.DONE:
        transaction.on_commit(lambda: signals.run_done.send(sender=Run, run_id=run.pk))
    return run


@transaction.atomic
def _release(run: Run) -> None:
    """Give the run back to pending, and its hold on the budget, without a call made."""
    if _claimed(run).update(status=RunStatus.PENDING, lease_until=None, reserved_usd=0):
        budget_settle(experiment_id=run.experiment_id, reserved=run.reserved_usd, cost=None)


# --- The budget ---------------------------------------------------------------------------------
# Every call made for an experiment (its runs', and the judge and embedding calls that score
# them) holds the most it can cost against the budget before it is made, and settles when it is
# recorded: the hold goes and what the call cost is spent. Together the holds never exceed what
# is left, so spent_usd never exceeds budget_usd.

RUN_BUDGET_WAIT_SECONDS = 30  # a run waits this long for calls in flight to settle, then is tried again later
BUDGET_POLL_SECONDS = 0.2


class Hold(enum.Enum):
    HELD = "held"  # on the holder's row and the experiment's: settle it with budget_settle
    BUSY = "busy"  # it fits once calls in flight settle, and they did not within the wait
    SPENT = "spent"  # it can never fit: what is spent already and this are over the budget
    LOST = "lost"  # the holder's claim was taken over by another worker: nothing is held


def budget_reserve(*, experiment_id: int, amount: Decimal, holder: QuerySet, wait_s: float = 0) -> Hold:
    """Hold `amount` against the experiment's budget and on `holder`, the one row (filtered by
    its claim) whose reserved_usd remembers it: a run or a score. While only the holds of calls
    in flight stand in the way, wait up to wait_s for them to settle."""
    deadline = time.monotonic() + wait_s
    while (hold := _hold(experiment_id, amount, holder)) is Hold.BUSY and time.monotonic() < deadline:
        time.sleep(BUDGET_POLL_SECONDS)
    return hold


@transaction.atomic
def _hold(experiment_id: int, amount: Decimal, holder: QuerySet) -> Hold:
    experiment = Experiment.objects.select_for_update().only("budget_usd", "spent_usd", "reserved_usd").get(pk=experiment_id)
    if experiment.budget_usd is not None:
        if experiment.spent_usd + amount > experiment.budget_usd:
            return Hold.SPENT
        if experiment.spent_usd + experiment.reserved_usd + amount > experiment.budget_usd:
            return Hold.BUSY
    if not holder.update(reserved_usd=amount):
        return Hold.LOST
    Experiment.objects.filter(pk=experiment_id).update(reserved_usd=F("reserved_usd") + amount)
    return Hold.HELD


def budget_settle(*, experiment_id: int, reserved: Decimal, cost: Decimal | None) -> None:
    """Release a hold and count what the call cost (None when nothing was billed). Call it in the
    transaction that records the call, and only when that write won its claim: it settles once."""
    if reserved or cost:
        Experiment.objects.filter(pk=experiment_id).update(
            spent_usd=F("spent_usd") + (cost or 0), reserved_usd=F("reserved_usd") - reserved
        )


def budget_reached(usd: Decimal) -> str:
    """Why a call was not made: the runner's and scoring's words alike."""
    return (f"The experiment's budget is reached: this call could cost up to ${usd:f}, more than is left. "
            "Raise the budget and resume the experiment to make it.")  # fmt: skip


def experiment_finish_if_done(*, experiment_id: int) -> bool:
    """Once no run of a running experiment is pending or in flight, it is finished if no score is
    to come (nothing scores its runs, or their scores are in), else scoring until they are. True
    when nothing is left to run (also when the experiment was cancelled: it stays cancelled)."""
    open_runs = Run.objects.filter(
        experiment_id=experiment_id, experiment__status=ExperimentStatus.RUNNING, status__in=[RunStatus.PENDING, RunStatus.RUNNING]
    )
    if open_runs.exists():
        return False
    running = Experiment.objects.filter(pk=experiment_id, status=ExperimentStatus.RUNNING)
    experiment = running.first()
    if experiment is None:
        return True
    if not extensions.scores_to_come(experiment):
        running.update(status=ExperimentStatus.FINISHED, finished_at=timezone.now())
    elif running.update(status=ExperimentStatus.SCORING):
        # A last score written since the question saw "running" and left the state alone: ask again.
        experiment_scored_if_done(experiment_id=experiment_id)
    return True


def experiment_scored_if_done(*, experiment_id: int) -> bool:
    """Finish a scoring experiment once no score is to come (evaluations tells, through
    experiments.extensions). Scoring asks after the scores it writes; the compare-and-set lets
    two tasks that finish at once both ask. True when this call finished it."""
    scoring = Experiment.objects.filter(pk=experiment_id, status=ExperimentStatus.SCORING)
    experiment = scoring.first()
    if experiment is None or extensions.scores_to_come(experiment):
        return False
    return bool(scoring.update(status=ExperimentStatus.FINISHED, finished_at=timezone.now()))


def experiment_scoring_settle(*, experiment_id: int) -> None:
    """After its evaluators change or it is re-scored: a finished experiment whose answered runs
    wait for scores again is scoring until they are in (its verdicts are not final meanwhile),
    and a scoring one with none left to come is finished. Retrying errored scores alone leaves
    a finished experiment finished: an errored score counts as in."""
    finished = Experiment.objects.filter(pk=experiment_id, status=ExperimentStatus.FINISHED)
    experiment = finished.first()
    if experiment is not None and extensions.scores_to_come(experiment):
        finished.update(status=ExperimentStatus.SCORING, finished_at=None)
    else:
        experiment_scored_if_done(experiment_id=experiment_id)


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

        dispatch.send(task, experiment_id)  # more to do: continue in a fresh task
    logger.info("experiments.drained", experiment_id=experiment_id, runs=done, worker=socket.gethostname())
    return done


@sweeper.recovery
def experiments_recover(stale_before=None) -> int:
    """Enqueue drains for running experiments that still have open runs: every one (a worker that
    starts), or, for the sweeper, those with no sign of a drain since `stale_before`: no run in
    flight (a live drain renews its lease) and none finished since; the sweeper also finishes
    one whose last drain died after its last run. Returns how many were enqueued."""
    running = Experiment.objects.filter(status=ExperimentStatus.RUNNING)
    open_runs = Run.objects.filter(experiment=OuterRef("pk"), status__in=[RunStatus.PENDING, RunStatus.RUNNING])
    stalled = running.filter(Exists(open_runs))
    if stale_before is not None:
        alive = Q(status=RunStatus.RUNNING, lease_until__gt=timezone.now()) | Q(finished_at__gt=stale_before)
        stalled = stalled.filter(started_at__lt=stale_before).exclude(Exists(Run.objects.filter(alive, experiment=OuterRef("pk"))))
        for experiment_id in running.filter(started_at__lt=stale_before).exclude(Exists(open_runs)).values_list("pk", flat=True):
            experiment_finish_if_done(experiment_id=experiment_id)
    count = 0
    for experiment in stalled:
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
def experiment_resume(*, experiment: Experiment, actor) -> Experiment:
    """Run again the cancelled runs and those skipped because the budget was reached (once it is
    raised they run as far as it allows); evaluations scores again what errored for the budget."""
    experiment = _reopen(experiment, actor, Q(status=RunStatus.CANCELLED) | Q(status=RunStatus.SKIPPED, error_kind="budget"))
    transaction.on_commit(lambda: signals.experiment_resumed.send(sender=Experiment, experiment_id=experiment.pk))
    return experiment


@transaction.atomic
def experiment_retry_errors(*, experiment: Experiment, actor) -> Experiment:
    """Run the failed runs again."""
    return _reopen(experiment, actor, Q(status=RunStatus.FAILED))


def _reopen(experiment: Experiment, actor, runs: Q) -> Experiment:
    """Put these runs back to pending and run the experiment again."""
    authorize(actor, experiment.project, Action.EDIT)
    experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
    if experiment.status == ExperimentStatus.DRAFT:
        raise Invalid("Start the experiment first.")
    reopened = Run.objects.filter(runs, experiment=experiment).update(
        status=RunStatus.PENDING, error="", error_kind="", finished_at=None
    )
    if reopened or Run.objects.filter(experiment=experiment, status=RunStatus.PENDING).exists():
        experiment.status, experiment.finished_at = ExperimentStatus.RUNNING, None
        experiment.save(update_fields=["status", "finished_at"])
        _enqueue(experiment)
    return experiment


@transaction.atomic
def experiment_budget_set(*, experiment: Experiment, actor, budget_usd: Decimal | None) -> Experiment:
    """Change the budget, also of a started experiment (None: no limit), never to less than it
    has spent. Resuming then runs what was skipped for the budget."""
    authorize(actor, experiment.project, Action.EDIT)
    experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
    experiment.budget_usd = budget_usd
    validated(experiment, "budget").save(update_fields=["budget_usd"])
    logger.info("experiments.budget_set", experiment_id=experiment.pk, budget_usd=str(budget_usd))
    return experiment


def experiment_counts(experiment: Experiment) -> dict:
    """Runs by status and the spend, straight from the runs: None when a run's cost is unknown
    (its model has no price), never the partial sum."""
    counts = dict(experiment.runs.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    totals = experiment.runs.aggregate(spent=Sum("cost_usd"), unknown=Count("id", filter=COST_UNKNOWN))
    return {**{status: counts.get(status, 0) for status in RunStatus.values}, "total": sum(counts.values()),
            "spent_usd": None if totals["unknown"] else totals["spent"] or Decimal(0)}  # fmt: skip
