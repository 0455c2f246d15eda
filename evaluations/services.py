"""Every write to evaluators, scores and ratings. The admin, pages, API and Celery tasks call these."""

import copy
import json
import math
import time
from dataclasses import dataclass
from decimal import Decimal

import structlog
from celery.exceptions import SoftTimeLimitExceeded
from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from evaluations import budget, grading, kinds, selectors
from evaluations.kinds import RunContext, ScoreError
from evaluations.kinds.base import user_input
from evaluations.models import RATING_VALUES, Evaluator, ExperimentEvaluator, HumanRating, RatingScale, Score, ScoreStatus
from experiments import services as experiments
from experiments.models import Experiment, ExperimentStatus, Run, RunStatus
from promptlab import dispatch, leases, sweeper
from promptlab.accounts.access import Action, authorize
from promptlab.accounts.models import Project
from promptlab.errors import DomainError, Invalid
from promptlab.llm.errors import GatewayError

logger = structlog.get_logger(__name__)

RESCORE_CHUNK = 50  # runs per scoring task when a whole experiment is (re)scored
EVALUATOR_FIELDS = {"description", "kind", "config", "weight", "threshold", "inverted", "enabled"}
MAX_COMMENT_CHARS = 5000


# --- Evaluators ------------------------------------------------------------------------------


def evaluator_validate(*, project: Project, kind: str, config: dict | None, weight: float = 1.0,
                       threshold: float | None = None) -> dict:  # fmt: skip
    """The kind's normalized config, or Invalid whose details name each field's problem
    (for a bad regex or JSON schema, the parser's own message)."""
    problems = {}
    try:
        implementation = kinds.get(kind)
    except Invalid as exc:
        problems["kind"] = exc.message
    else:
        try:
            config = implementation.validate_config(copy.deepcopy(config if config is not None else {}), project=project)
        except Invalid as exc:
            problems["config"] = exc.message
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
        problems["weight"] = f"The weight must be a number of 0 or more, not {weight!r}."
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1
    ):
        problems["threshold"] = f"The threshold must be between 0 and 1 (scores are 0 to 1), not {threshold!r}."
    if problems:
        raise Invalid(" ".join(problems.values()), details=problems)
    return config


@transaction.atomic
def evaluator_create(*, project: Project, actor, name: str, kind: str, message: str = "Created", **fields) -> Evaluator:
    """A new evaluator at version 1; nothing is saved when its config is invalid."""
    authorize(actor, project, Action.EDIT)
    try:
        validate_slug(name)
    except ValidationError:
        raise Invalid(f"{name!r} is not a valid evaluator name: use letters, numbers, hyphens and underscores.", details={"name": name}) from None  # fmt: skip
    if name.startswith(grading.INLINE_PREFIX):
        raise Invalid(f"Evaluator names starting with {grading.INLINE_PREFIX!r} are kept for items' own assertions.", details={"name": name})  # fmt: skip
    if Evaluator.objects.filter(project=project, name=name).exists():
        raise Invalid(f"The project already has an evaluator named {name!r}.", details={"name": name})
    evaluator = Evaluator(project=project, name=name, kind=kind)
    _apply(evaluator, fields)
    _normalize(evaluator)
    return _save(evaluator, actor=actor, message=message, new_version=True)


@transaction.atomic
def evaluator_update(*, evaluator: Evaluator, actor, message: str, **fields) -> Evaluator:
    """Save the changed fields. A change to what scores mean (kind, config, threshold,
    inverted) is a new version, so runs can be re-scored with it; a save that changes
    nothing saves nothing."""
    authorize(actor, evaluator.project, Action.EDIT)
    evaluator = Evaluator.objects.select_for_update().get(pk=evaluator.pk)
    before = {field: copy.deepcopy(getattr(evaluator, field)) for field in Evaluator.CONTENT_FIELDS}
    _apply(evaluator, fields)
    _normalize(evaluator)
    after = {field: getattr(evaluator, field) for field in Evaluator.CONTENT_FIELDS}
    if after == before:
        return evaluator
    new_version = any(after[field] != before[field] for field in Evaluator.SCORING_FIELDS)
    return _save(evaluator, actor=actor, message=message, new_version=new_version)


@transaction.atomic
def evaluator_delete(*, evaluator: Evaluator, actor) -> None:
    """Delete the evaluator and its scores; its versions stay in the history table."""
    authorize(actor, evaluator.project, Action.MANAGE)
    logger.info("evaluations.evaluator_deleted", evaluator_id=evaluator.pk, name=evaluator.name)
    evaluator._history_user = actor
    evaluator.delete()


def _apply(evaluator: Evaluator, fields: dict) -> None:
    unknown = set(fields) - EVALUATOR_FIELDS
    if unknown:
        raise Invalid(f"Unknown evaluator fields: {', '.join(sorted(unknown))}.")
    for field, value in fields.items():
        setattr(evaluator, field, value)


def _normalize(evaluator: Evaluator) -> None:
    evaluator.config = evaluator_validate(
        project=evaluator.project, kind=evaluator.kind, config=evaluator.config, weight=evaluator.weight, threshold=evaluator.threshold
    )  # fmt: skip


def _save(evaluator: Evaluator, *, actor, message: str, new_version: bool) -> Evaluator:
    if not (message or "").strip():
        raise Invalid("Say what changed: a change message is required.", details={"message": "required"})
    if new_version:
        evaluator.version += 1
    evaluator._change_reason = message.strip()
    evaluator._history_user = actor
    evaluator.save()
    logger.info("evaluations.evaluator_saved", evaluator_id=evaluator.pk, version=evaluator.version)
    return evaluator


# --- Items' own assertions --------------------------------------------------------------------

ASSERTION_KEYS = {"kind", "config", "weight", "metric", "threshold", "inverted"}


def item_assertions_validate(project: Project, assertions, where: str) -> list[dict]:
    """A dataset item's assertions, normalized ({kind, config, weight, metric, threshold,
    inverted} each), or Invalid naming the first problem by its path: "row 3: assert[1]: ...".
    Registered with experiments.extensions, so every write of items goes through it."""
    if not isinstance(assertions, list):
        raise Invalid(f"{where}: assertions are a list of objects such as {{\"kind\": \"contains\", \"config\": {{\"value\": \"Paris\"}}}}.", details={"path": where})  # fmt: skip
    normalized = []
    for index, raw in enumerate(assertions):
        path = f"{where}: assert[{index}]"
        if not isinstance(raw, dict) or not isinstance(raw.get("kind"), str):
            raise Invalid(f"{path}: an assertion is an object with a kind, such as {{\"kind\": \"contains\", \"config\": {{\"value\": \"Paris\"}}}}.", details={"path": path})  # fmt: skip
        if unknown := sorted(set(raw) - ASSERTION_KEYS):
            raise Invalid(f"{path}: unknown keys {', '.join(unknown)} (allowed: {', '.join(sorted(ASSERTION_KEYS))}).", details={"path": path})  # fmt: skip
        weight, threshold, metric = raw.get("weight", 1.0), raw.get("threshold"), raw.get("metric") or ""
        try:
            config = evaluator_validate(project=project, kind=raw["kind"], config=raw.get("config"), weight=weight, threshold=threshold)
        except Invalid as exc:
            raise Invalid(f"{path}: {exc.message}", details={"path": path, **(exc.details or {})}) from None
        if not isinstance(metric, str) or len(metric) > 100:
            raise Invalid(f"{path}: a metric is a name of at most 100 characters, not {metric!r}.", details={"path": path})
        if not isinstance(raw.get("inverted", False), bool):
            raise Invalid(f"{path}: inverted is true or false.", details={"path": path})
        normalized.append({"kind": raw["kind"], "config": config, "weight": float(weight), "metric": metric,
                           "threshold": threshold, "inverted": raw.get("inverted", False)})  # fmt: skip
    return normalized


def inline_evaluators(*, project_id: int, assertions: list[dict]) -> list[Evaluator]:
    """The evaluator that scores each of an item's assertions (identical assertions share one),
    created on first use. They stay out of evaluator lists and never change: a changed
    assertion is another evaluator."""
    evaluators = {}
    for assertion in assertions or []:
        name = grading.inline_name(assertion)
        if name not in evaluators:
            evaluators[name], _ = Evaluator.objects.get_or_create(
                project_id=project_id, name=name,
                defaults={"inline": True, "version": 1, "kind": assertion["kind"], "config": assertion["config"],
                          "threshold": assertion.get("threshold"), "inverted": assertion.get("inverted", False),
                          "description": f"An item assertion: {assertion['kind']} {json.dumps(assertion['config'])[:200]}"},
            )  # fmt: skip
    return list(evaluators.values())


@transaction.atomic
def experiment_evaluators_set(*, experiment: Experiment, actor, evaluators: list[Evaluator]) -> list[Evaluator]:
    """Make these the evaluators of the experiment. Runs already done are scored by the ones
    added, in the background (a finished experiment is scoring again until they are in);
    scores of the ones removed are kept."""
    authorize(actor, experiment.project, Action.EDIT)
    _check_same_project(experiment, evaluators)
    wanted = {evaluator.pk for evaluator in evaluators}
    removed, _ = ExperimentEvaluator.objects.filter(experiment=experiment).exclude(evaluator_id__in=wanted).delete()
    added = _attach(experiment, evaluators)
    if added and experiment.runs.filter(status=RunStatus.DONE).exists():
        _enqueue_rescore(experiment, added, retry_errors=False)
    if added or removed:
        experiments.experiment_scoring_settle(experiment_id=experiment.pk)
    return list(evaluators)


def _check_same_project(experiment: Experiment, evaluators: list[Evaluator]) -> None:
    foreign = [evaluator.name for evaluator in evaluators if evaluator.project_id != experiment.project_id]
    if foreign:
        raise Invalid(f"These evaluators belong to another project: {', '.join(foreign)}.", details={"evaluators": foreign})


def _attach(experiment: Experiment, evaluators: list[Evaluator]) -> list[int]:
    """Link the evaluators (idempotently); the ids of those that were not linked yet."""
    present = set(ExperimentEvaluator.objects.filter(experiment=experiment).values_list("evaluator_id", flat=True))
    added = [evaluator.pk for evaluator in evaluators if evaluator.pk not in present]
    ExperimentEvaluator.objects.bulk_create(
        [ExperimentEvaluator(experiment=experiment, evaluator_id=pk) for pk in added], ignore_conflicts=True
    )
    return added


# --- Scoring ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreOutcome:
    ok: int = 0  # scores this call wrote as ok
    errored: int = 0  # and as errored
    retry_ids: tuple[int, ...] = ()  # evaluators to try again later: transient failure, or another task holds the score
    retry_after: float | None = None  # seconds the provider asked for, if it did


def score_run(*, run_id: int, evaluator_ids: list[int] | None = None, retry_errors: bool = False,
              settle: bool = True) -> ScoreOutcome:  # fmt: skip
    """Score a done run with its experiment's enabled evaluators and its item's own assertions
    (or the given ones of them), each once per evaluator version: a score that exists is kept, unless it errored for a
    reason that may clear up (or `retry_errors`). Runs no model for the run itself. Then, with
    `settle`, a scoring experiment whose last score this was is finished.

    Each score is claimed with a compare-and-set before scoring, so two tasks never call a
    judge twice for it, and written in its own transaction, so an error stays recorded.
    """
    run = Run.objects.select_related("item", "experiment").filter(pk=run_id).first()
    if run is None or run.status != RunStatus.DONE:
        return ScoreOutcome()
    evaluators = list(selectors.evaluators_of_experiment(experiment_id=run.experiment_id, ids=evaluator_ids))
    evaluators += [
        evaluator for evaluator in inline_evaluators(project_id=run.experiment.project_id, assertions=run.item.assertions)
        if evaluator_ids is None or evaluator.pk in evaluator_ids
    ]  # fmt: skip
    context = run_context(run)
    ok = errored = 0
    retry: list[int] = []
    retry_after = None
    for position, evaluator in enumerate(evaluators):
        claim = _claim(run, evaluator, retry_errors=retry_errors)
        if claim is None:
            continue
        if claim == "held":
            retry.append(evaluator.pk)
            continue
        with leases.held(_owned(claim)):  # renewed while a judge answers: no other task scores it meanwhile
            fields, wait = _evaluate(evaluator, context, claim=claim, run=run)
        _record(claim, run, fields)
        if fields["status"] == ScoreStatus.OK:
            ok += 1
        else:
            errored += 1
        if fields["retryable"]:
            retry.append(evaluator.pk)
            if wait is not None:
                retry_after = max(retry_after or 0, wait)
        if fields["error_kind"] == "time_limit":
            retry.extend(later.pk for later in evaluators[position + 1 :])
            break
    logger.info("evaluations.run_scored", run_id=run_id, ok=ok, errored=errored, retry=len(retry))
    if settle:
        experiments.experiment_scored_if_done(experiment_id=run.experiment_id)
    return ScoreOutcome(ok=ok, errored=errored, retry_ids=tuple(retry), retry_after=retry_after)


def run_context(run: Run) -> RunContext:
    """What kinds see of a run."""
    return RunContext(
        run_id=run.pk, project_id=run.experiment.project_id, output=run.output, expected=run.item.expected,
        vars=run.item.vars or {}, metadata=run.item.metadata or {}, input=user_input(run.messages),
        latency_ms=run.latency_ms, cost_usd=run.cost_usd, cached=run.cached,
    )  # fmt: skip


def _claim(run: Run, evaluator: Evaluator, *, retry_errors: bool):
    """The score row this call now owns (pending), "held" when another task owns it, or None
    when it is already scored."""
    now = timezone.now()
    lease = leases.lease_end()
    score, created = Score.objects.get_or_create(
        run=run, evaluator=evaluator, evaluator_version=evaluator.version,
        defaults={"status": ScoreStatus.PENDING, "attempts": 1, "lease_until": lease},
    )  # fmt: skip
    if created:
        return score
    claimable = Q(status=ScoreStatus.PENDING, lease_until__lt=now) | Q(status=ScoreStatus.ERRORED, retryable=True)
    if retry_errors:
        claimable |= Q(status=ScoreStatus.ERRORED)
    with transaction.atomic():
        # Locked, so that what its last task held on the budget (it died in its call) is given back once.
        claimed = Score.objects.select_for_update().filter(claimable, pk=score.pk, attempts=score.attempts)
        held = claimed.values_list("reserved_usd", flat=True).first()
        won = held is not None and Score.objects.filter(pk=score.pk).update(
            status=ScoreStatus.PENDING, value=None, passed=None, attempts=F("attempts") + 1, lease_until=lease, updated_at=now,
            reserved_usd=0,
        )  # fmt: skip
        if won and held:
            experiments.budget_settle(experiment_id=run.experiment_id, reserved=held, cost=None)
    if won:
        score.attempts, score.reserved_usd = score.attempts + 1, Decimal(0)
        return score
    status = Score.objects.filter(pk=score.pk).values_list("status", flat=True).first()
    return "held" if status == ScoreStatus.PENDING else None


def _evaluate(evaluator: Evaluator, context: RunContext, *, claim: Score, run: Run) -> tuple[dict, float | None]:
    """The score's fields, and how long to wait before a retry when it errored transiently.
    A call to a model is first held against the experiment's budget, on the claim. Never
    raises: whatever goes wrong is the score's error."""
    try:
        budget.score_hold(claim=claim, run=run, evaluator=evaluator, context=context)
        result = kinds.get(evaluator.kind).score(context, evaluator.config)
        value = float(result.value)
        if not 0 <= value <= 1:
            raise ScoreError(f"The {evaluator.kind} kind gave the score {value}, outside 0 to 1.", kind="invalid_result")
    except budget.BudgetRefused as exc:
        return _errored("budget", exc.message, retryable=exc.retryable), None
    except GatewayError as exc:
        # The gateway already retried a transient failure as far as the endpoint allows.
        return _errored(exc.kind, exc.message, retryable=exc.transient, cost=exc.details.get("cost")), exc.retry_after
    except ScoreError as exc:
        return _errored(exc.kind, exc.message, cost=exc.cost_usd), None
    except SoftTimeLimitExceeded:
        return _errored("time_limit", "The scoring task ran out of time; it is tried again.", retryable=True), None
    except DomainError as exc:
        return _errored(exc.code, exc.message), None
    except Exception as exc:  # a bug in a kind (a plugin's, say) errors this score, not the others
        logger.exception("evaluations.kind_crashed", evaluator_id=evaluator.pk, kind=evaluator.kind, run_id=context.run_id)
        return _errored("internal", f"internal error: {type(exc).__name__}: {exc}"), None
    passed = value >= evaluator.threshold if evaluator.threshold is not None else bool(result.passed)
    reason = result.reason
    if evaluator.inverted:
        value, passed, reason = 1.0 - value, not passed, f"Inverted: {reason}"
    return {
        "status": ScoreStatus.OK, "value": value, "passed": passed, "reason": reason, "error_kind": "", "retryable": False,
        "cost_usd": result.cost_usd, "latency_ms": result.latency_ms,
    }, None  # fmt: skip


def _errored(kind: str, message: str, *, retryable: bool = False, cost=None) -> dict:
    return {
        "status": ScoreStatus.ERRORED, "value": None, "passed": None, "reason": message[:5000], "error_kind": kind[:32],
        "retryable": retryable, "cost_usd": cost, "latency_ms": None,
    }  # fmt: skip


def _owned(claim: Score):
    """The score, while this claim still owns it."""
    return Score.objects.filter(pk=claim.pk, status=ScoreStatus.PENDING, attempts=claim.attempts)


@transaction.atomic
def _record(claim: Score, run: Run, fields: dict) -> None:
    """Write the result while this call still owns the score, and settle its hold on the budget."""
    if _owned(claim).update(lease_until=None, updated_at=timezone.now(), reserved_usd=0, **fields):
        experiments.budget_settle(experiment_id=run.experiment_id, reserved=claim.reserved_usd, cost=fields["cost_usd"])


def score_runs(*, run_ids: list[int], evaluator_ids: list[int] | None = None, retry_errors: bool = False,
               time_budget_s: float = 240) -> None:  # fmt: skip
    """Score runs one after another within the time budget; the rest continue in a new task,
    and a run with transient failures is retried in a task of its own. Their experiments are
    asked once, at the end, whether they are finished (not after each run: see score_run)."""
    from evaluations import tasks

    deadline = time.monotonic() + time_budget_s
    for position, run_id in enumerate(run_ids):
        if time.monotonic() > deadline:
            dispatch.send(tasks.score_runs, run_ids[position:], evaluator_ids, retry_errors)
            return
        outcome = score_run(run_id=run_id, evaluator_ids=evaluator_ids, retry_errors=retry_errors, settle=False)
        if outcome.retry_ids:
            dispatch.send(tasks.score_run, run_id, list(outcome.retry_ids), False,
                          countdown=tasks.retry_countdown(0, outcome.retry_after))  # fmt: skip
    for experiment_id in Run.objects.filter(pk__in=run_ids).values_list("experiment_id", flat=True).distinct():
        experiments.experiment_scored_if_done(experiment_id=experiment_id)


@transaction.atomic
def experiment_rescore(*, experiment: Experiment, actor, evaluators: list[Evaluator] | None = None,
                       retry_errors: bool = True) -> int:  # fmt: skip
    """Score the experiment's done runs again in the background, with the given evaluators
    (attached to it if they were not) or all of its enabled ones. Only evaluator versions
    that have no score yet are computed (and errored scores, with `retry_errors`); the models
    of the runs are never called again. A finished experiment whose runs now wait for scores
    (evaluators added, an evaluator's new version) is scoring until they are in. Returns how
    many runs will be looked at."""
    authorize(actor, experiment.project, Action.EDIT)
    ids = None
    if evaluators is not None:
        if not evaluators:
            raise Invalid("Choose at least one evaluator to re-score with.")
        _check_same_project(experiment, evaluators)
        _attach(experiment, evaluators)
        ids = [evaluator.pk for evaluator in evaluators]
    runs = experiment.runs.filter(status=RunStatus.DONE).count()
    if runs:
        _enqueue_rescore(experiment, ids, retry_errors=retry_errors)
        experiments.experiment_scoring_settle(experiment_id=experiment.pk)
    logger.info("evaluations.rescore_requested", experiment_id=experiment.pk, runs=runs, evaluators=ids)
    return runs


def _enqueue_rescore(experiment: Experiment, evaluator_ids: list[int] | None, *, retry_errors: bool) -> None:
    from evaluations import tasks

    dispatch.send_on_commit(tasks.rescore_experiment, experiment.pk, evaluator_ids, retry_errors)


@sweeper.recovery
def scoring_recover(stale_before) -> int:
    """Score again the experiments whose scores stopped coming (their messages were lost with the
    broker): scoring, with no run finished and no score written since `stale_before`, nor one in flight.
    Only what has no score yet is computed. Returns how many experiments."""
    recent = Q(finished_at__gt=stale_before) | Q(scores__updated_at__gt=stale_before) | Q(scores__lease_until__gt=timezone.now())
    stalled = Experiment.objects.filter(status=ExperimentStatus.SCORING).exclude(
        Exists(Run.objects.filter(recent, experiment=OuterRef("pk")))
    )
    count = 0
    for experiment in stalled:
        _enqueue_rescore(experiment, None, retry_errors=False)
        count += 1
    return count


def experiment_rescore_fan_out(*, experiment_id: int, evaluator_ids: list[int] | None, retry_errors: bool) -> int:
    """Enqueue one scoring task per chunk of the experiment's done runs; returns how many tasks."""
    from evaluations import tasks

    run_ids = Run.objects.filter(experiment_id=experiment_id, status=RunStatus.DONE).order_by("pk").values_list("pk", flat=True)
    chunk, enqueued = [], 0
    for run_id in run_ids.iterator(chunk_size=2000):
        chunk.append(run_id)
        if len(chunk) == RESCORE_CHUNK:
            dispatch.send(tasks.score_runs, chunk, evaluator_ids, retry_errors)
            chunk, enqueued = [], enqueued + 1
    if chunk:
        dispatch.send(tasks.score_runs, chunk, evaluator_ids, retry_errors)
        enqueued += 1
    return enqueued


# --- Human ratings ---------------------------------------------------------------------------


@transaction.atomic
def rating_set(*, run: Run, actor, scale: str, value: int, comment: str = "") -> HumanRating:
    """Record the actor's rating of a run, replacing their earlier one. Viewers may rate:
    reviewing is what the viewer role is for. All ratings of an experiment use one scale,
    so that raters can be compared."""
    if actor is None or not getattr(actor, "is_authenticated", False):
        raise Invalid("A rating is a person's: sign in to rate.")
    experiment = Experiment.objects.select_for_update(of=("self",)).select_related("project").get(pk=run.experiment_id)
    authorize(actor, experiment.project, Action.VIEW)
    if scale not in RatingScale.values:
        raise Invalid(f"{scale!r} is not a rating scale: choose one of {', '.join(RatingScale.values)}.", details={"scale": scale})
    allowed = RATING_VALUES[RatingScale(scale)]
    if isinstance(value, bool) or value not in allowed:
        raise Invalid(
            f"On the {RatingScale(scale).label} scale a rating is one of {', '.join(map(str, allowed))}, not {value!r}.",
            details={"value": value},
        )
    if run.status != RunStatus.DONE:
        raise Invalid(f"Only answered runs can be rated; this one is {run.status}.")
    other = HumanRating.objects.filter(run__experiment=experiment).exclude(scale=scale).exclude(run=run, user=actor)
    if used := other.values_list("scale", flat=True).first():
        raise Invalid(
            f"This experiment is rated on the {RatingScale(used).label} scale; rate on that scale too.",
            details={"scale": used},
        )
    comment = (comment or "").strip()
    if len(comment) > MAX_COMMENT_CHARS:
        raise Invalid(f"A comment is at most {MAX_COMMENT_CHARS} characters.", details={"comment": len(comment)})
    rating, _ = HumanRating.objects.update_or_create(
        run=run, user=actor, defaults={"scale": scale, "value": int(value), "comment": comment}
    )
    logger.info("evaluations.rated", run_id=run.pk, user_id=actor.pk, scale=scale, value=value)
    return rating


@transaction.atomic
def rating_delete(*, run: Run, actor, user=None) -> None:
    """Remove the actor's rating of the run, or with `user` someone else's (admins only)."""
    if actor is None or not getattr(actor, "is_authenticated", False):
        raise Invalid("Sign in to remove a rating.")
    user = user or actor
    project = Experiment.objects.select_related("project").get(pk=run.experiment_id).project
    authorize(actor, project, Action.VIEW if user.pk == actor.pk else Action.MANAGE)
    HumanRating.objects.filter(run=run, user=user).delete()
