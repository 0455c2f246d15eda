"""Every write to projects and memberships. Commands, admin and pages all call these."""

from datetime import datetime

import structlog
from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import transaction
from django.utils import timezone

from promptlab import dispatch, leases, sweeper
from promptlab.accounts.access import Action, authorize
from promptlab.accounts.models import Project
from promptlab.errors import DomainError, Invalid, validated
from promptlab.llm.models import ModelEndpoint
from prompts import checks, selectors, signals
from prompts.models import CallFeedback, Label, LabelMove, Prompt, PromptCall, PromptCallStatus
from prompts.serving import prompt_cache_invalidate
from prompts.validation import validate_prompt
from prompts.versions import reads_as_version

logger = structlog.get_logger(__name__)
























# --- Prompts and labels --------------------------------------------------------------------

PROMPT_FIELDS = {"description", "tags", "kind", "template", "messages", "endpoint", "params", "variables", "strict_variables"}


@transaction.atomic
def prompt_create(*, project: Project, actor, name: str, message: str, **fields) -> Prompt:
    """Create a prompt as version 1."""
    authorize(actor, project, Action.EDIT)
    try:
        validate_slug(name)
    except ValidationError:
        raise Invalid(f"{name!r} is not a valid prompt name: use letters, numbers, hyphens and underscores.", details={"name": name}) from None
    if Prompt.objects.filter(project=project, name=name).exists():
        raise Invalid(f"The project already has a prompt named {name!r}.", details={"name": name})
    prompt = Prompt(project=project, name=name)
    _apply(prompt, fields)
    return _save_version(prompt, actor=actor, message=message)


@transaction.atomic
def prompt_update(*, prompt: Prompt, actor, message: str, base_version: int | None = None, **fields) -> Prompt:
    """Save the changed fields as the next version; a save that changes nothing creates none.
    With `base_version` (the version the editor started from), a newer save is never undone."""
    authorize(actor, prompt.project, Action.EDIT)
    prompt = Prompt.objects.select_for_update().get(pk=prompt.pk)
    if base_version is not None and prompt.version != base_version:
        raise Invalid(
            f"Version {prompt.version} was saved after version {base_version}, which you started from: "
            "reload the prompt and make your change again.",
            details={"base_version": base_version, "current_version": prompt.version},
        )
    before = {field: getattr(prompt, field) for field in Prompt.CONTENT_FIELDS}
    _apply(prompt, fields)
    if {field: getattr(prompt, field) for field in Prompt.CONTENT_FIELDS} == before:
        return prompt
    return _save_version(prompt, actor=actor, message=message)


@transaction.atomic
def prompt_revert(*, prompt: Prompt, actor, version: int, message: str = "") -> Prompt:
    """Save the content of an earlier version as a new version."""
    authorize(actor, prompt.project, Action.EDIT)
    old = selectors.prompt_version(prompt=prompt, version=version)
    content = {field: getattr(old, field) for field in Prompt.CONTENT_FIELDS}
    content["endpoint"] = ModelEndpoint.objects.get(pk=content.pop("endpoint_id"))
    return prompt_update(prompt=prompt, actor=actor, message=message or f"Revert to version {version}", **content)


@transaction.atomic
def prompt_delete(*, prompt: Prompt, actor) -> None:
    """Delete the prompt and its labels; its versions stay in the history table for audit."""
    authorize(actor, prompt.project, Action.MANAGE)
    logger.info("prompts.prompt_deleted", prompt_id=prompt.pk, name=prompt.name)
    prompt._history_user = actor
    prompt.delete()
    prompt_cache_invalidate(project_id=prompt.project_id, name=prompt.name)


@transaction.atomic
def label_move(*, prompt: Prompt, actor, label: str, version: int, message: str = "", override_reason: str = "") -> Label:
    """Point the label at the version, recording who moved it from where. Moving production
    needs an admin; other labels need an editor. The checks registered in prompts.checks (approvals,
    the promotion gate) may refuse the move; `override_reason` is an admin's written reason to ship
    past a gate (and an owner's to ship without a required approval)."""
    return _label_move(prompt=prompt, actor=actor, label=label, version=version, message=message, override_reason=override_reason)


def _label_move(*, prompt: Prompt, actor, label: str, version: int, message: str = "", override_reason: str = "",
                rollback: bool = False) -> Label:  # fmt: skip
    """label_move; `rollback` only from label_rollback, which has checked that it is one (the checks trust it)."""
    authorize(actor, prompt.project, Action.MANAGE if label == "production" else Action.EDIT)
    if label == "latest":
        raise Invalid("'latest' always means the newest version and cannot be moved.", details={"label": label})
    try:
        validate_slug(label)
    except ValidationError:
        raise Invalid(f"{label!r} is not a valid label name.", details={"label": label}) from None
    if reads_as_version(label):
        raise Invalid(f"{label!r} reads as a version number, so no one could ask for it as a label: name it with a word, e.g. staging.",
                      details={"label": label})  # fmt: skip
    selectors.prompt_version(prompt=prompt, version=version)  # raises NotFound for a version that does not exist
    current = Label.objects.select_for_update().filter(prompt=prompt, name=label).first()
    if current is not None and current.version == version:
        return current
    notes = checks.label_move_notes(
        prompt=prompt, label=label, version=version, actor=actor, override_reason=override_reason.strip(), rollback=rollback
    )
    message = " ".join([message.strip(), *notes]).strip()
    moved, _ = Label.objects.update_or_create(prompt=prompt, name=label, defaults={"version": version})
    prompt_cache_invalidate(project_id=prompt.project_id, name=prompt.name)
    move = LabelMove.objects.create(
        prompt=prompt, prompt_name=prompt.name, label=label, from_version=current and current.version, to_version=version,
        actor=actor, message=message,
    )  # fmt: skip
    transaction.on_commit(lambda: signals.label_moved.send(sender=LabelMove, label_move_id=move.pk, rollback=rollback), robust=True)
    logger.info("prompts.label_moved", prompt_id=prompt.pk, label=label, to_version=version)
    return moved


@transaction.atomic
def label_rollback(*, prompt: Prompt, actor, label: str) -> Label:
    """Undo the label's last move: back to the version it held just before. Only that is a
    rollback (no approval needed; the gate must still pass, see prompts.checks): undoing a move
    that itself undid the one before would re-ship the version just pulled, so it is refused."""
    authorize(actor, prompt.project, Action.MANAGE if label == "production" else Action.EDIT)
    moves = list(LabelMove.objects.filter(prompt=prompt, label=label)[:2])  # the last move, then the one before it
    if not moves or moves[0].from_version is None:
        raise Invalid(f"The label {label!r} has no earlier version to roll back to.", details={"label": label})
    last = moves[0]
    if len(moves) == 2 and (last.from_version, last.to_version) == (moves[1].to_version, moves[1].from_version):
        raise Invalid(
            f"The last move of {label} (version {last.from_version} to {last.to_version}) undid the one before it: rolling back "
            f"would re-ship version {last.from_version}, which was just pulled. Move {label} to it instead (a move has its gate "
            "and, where required, its approval).",
            details={"label": label, "version": last.from_version},
        )  # fmt: skip
    return _label_move(prompt=prompt, actor=actor, label=label, version=last.from_version,
                       message=f"Roll back from version {last.to_version}", rollback=True)  # fmt: skip


def _apply(prompt: Prompt, fields: dict) -> None:
    unknown = set(fields) - PROMPT_FIELDS
    if unknown:
        raise Invalid(f"Unknown prompt fields: {', '.join(sorted(unknown))}.")
    for field, value in fields.items():
        setattr(prompt, field, value)


def _save_version(prompt: Prompt, *, actor, message: str) -> Prompt:
    if not (message or "").strip():
        raise Invalid("Say what changed: a change message is required.", details={"message": "required"})
    prompt.used_variables = validate_prompt(prompt)
    prompt.version += 1
    prompt._change_reason = message.strip()
    prompt._history_user = actor
    prompt.save()
    prompt_cache_invalidate(project_id=prompt.project_id, name=prompt.name)
    prompt_id, version = prompt.pk, prompt.version
    transaction.on_commit(
        lambda: signals.prompt_version_created.send(sender=Prompt, prompt_id=prompt_id, version=version), robust=True
    )
    logger.info("prompts.prompt_saved", prompt_id=prompt.pk, version=prompt.version)
    return prompt


# --- Calls through the serving API -----------------------------------------------------------


@transaction.atomic
def prompt_call_create(*, prompt: Prompt, actor, variables: dict, label: str | None = None, version: int | None = None,
                       params: dict | None = None, api_key_id: int | None = None) -> PromptCall:  # fmt: skip
    """Render the version (by number, or by label, default production) and record a pending
    call; a worker makes it (task prompts.invoke) once this commits. Nothing is recorded when
    the prompt cannot be rendered or its model cannot be called."""
    from promptlab.llm import catalog
    from promptlab.llm.params import validate_params
    from prompts.rendering import render_version

    authorize(actor, prompt.project, Action.EDIT)
    if version is None:
        label = label or "production"
    record = selectors.prompt_version(prompt=prompt, version=version, label=label)
    rendered = render_version(record, variables)
    endpoint = ModelEndpoint.objects.filter(pk=record.endpoint_id).first()
    if endpoint is None:
        raise Invalid(f"The model of version {record.version} no longer exists.", details={"version": record.version})
    catalog.endpoint_credentials(endpoint)  # disabled, a refused api_base or a missing key: say so now
    call = PromptCall.objects.create(
        project_id=prompt.project_id, prompt=prompt, prompt_name=prompt.name, version=record.version,
        label=label if version is None else "", endpoint=endpoint, model=endpoint.model, api_key_id=api_key_id,
        user=_person(actor), vars=variables,
        messages=rendered.messages or [{"role": "user", "content": rendered.text}],
        params=validate_params({**(record.params or {}), **(params or {})}),
    )  # fmt: skip
    from prompts.tasks import prompt_invoke

    dispatch.send_on_commit(prompt_invoke, str(call.pk))
    logger.info("prompts.call_created", call_id=str(call.pk), prompt_id=prompt.pk, version=record.version)
    return call


def prompt_call_execute(*, call_id) -> PromptCall | None:
    """Claim the call with a compare-and-set, when it is pending or its worker died (its lease ran
    out): a second delivery finds it taken and calls nothing. Call the model through the gateway
    under a lease renewed meanwhile, and record the answer or the error while the claim holds."""
    from promptlab.llm import gateway
    from promptlab.llm.errors import GatewayError

    claimed = leases.claim(PromptCall.objects.filter(pk=call_id))
    if claimed is None:
        logger.info("prompts.call_taken", call_id=str(call_id))
        return None
    call = PromptCall.objects.select_related("endpoint").get(pk=call_id)
    try:
        if call.endpoint is None:
            raise Invalid("The prompt's model was deleted before the call was made.")
        with leases.held(claimed):
            result = gateway.complete(endpoint=call.endpoint, messages=call.messages, params=call.params)
    except GatewayError as exc:  # the gateway has retried what could clear up
        fields = dict(status=PromptCallStatus.FAILED, error_code=exc.code, **gateway.failure_fields(exc))
    except DomainError as exc:  # the endpoint was disabled or lost its key since the call was recorded
        fields = dict(status=PromptCallStatus.FAILED, error=exc.message, error_code=exc.code, error_kind=exc.code)
    except Exception as exc:  # a bug must not leave the caller waiting on a call that never finishes
        logger.exception("prompts.call_crashed", call_id=str(call_id))
        fields = dict(status=PromptCallStatus.FAILED, error=f"internal error: {type(exc).__name__}", error_code="internal", error_kind="internal")
    else:
        fields = dict(status=PromptCallStatus.DONE, **gateway.answer_fields(result))
    fields.update(finished_at=timezone.now(), lease_until=None)
    if not claimed.update(**fields):  # another worker took it over: its answer is the one kept
        logger.info("prompts.call_lost", call_id=str(call_id))
        return None
    for name, value in fields.items():
        setattr(call, name, value)
    logger.info("prompts.call_finished", call_id=str(call_id), status=call.status, error_kind=call.error_kind)
    return call


@sweeper.recovery
def prompt_calls_recover(stale_before: datetime | None = None) -> int:
    """Send again the invoke calls whose worker died or whose message was lost (leases.stranded:
    pending since before `stale_before`, default a lease ago). Returns how many."""
    from prompts.tasks import prompt_invoke

    call_ids = leases.stranded(PromptCall.objects.all(), pending_before=stale_before)
    for call_id in call_ids:
        dispatch.send(prompt_invoke, str(call_id))
    return len(call_ids)


@transaction.atomic
def prompt_call_feedback(*, call: PromptCall, actor, thumbs: int | None = None, score: float | None = None,
                         comment: str = "", api_key_id: int | None = None) -> CallFeedback:  # fmt: skip
    """Record what a user thought of a call's answer: thumbs (1 up, -1 down), a score from 0 to
    1, a comment, or several of them."""
    authorize(actor, call.project, Action.VIEW)
    if thumbs is None and score is None and not (comment or "").strip():
        raise Invalid("Give thumbs, a score or a comment.", details={"feedback": "empty"})
    feedback = CallFeedback(
        call=call, thumbs=thumbs, score=score, comment=(comment or "").strip(), api_key_id=api_key_id, user=_person(actor)
    )
    validated(feedback, "feedback").save()
    logger.info("prompts.call_feedback", call_id=str(call.pk), feedback_id=feedback.pk)
    return feedback


def _person(actor):
    """The user to record as having done it: nobody for the operator or an API key (the key is recorded)."""
    return None if actor is None or getattr(actor, "api_key", None) is not None else actor
