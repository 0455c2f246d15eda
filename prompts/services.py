"""Every write to projects and memberships. Commands, admin and pages all call these."""

import structlog
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email, validate_slug
from django.db import transaction
from django.urls import reverse

from prompts import selectors, signals
from prompts.access import Action, authorize
from prompts.models import CallFeedback, Label, LabelMove, Membership, ModelEndpoint, Project, Prompt, PromptCall, PromptCallStatus, Role
from prompts.serving import prompt_cache_invalidate
from prompts.validation import validate_prompt
from promptlab.errors import DomainError, Forbidden, Invalid, validated

logger = structlog.get_logger(__name__)


@transaction.atomic
def user_invite(*, email: str) -> tuple:
    """Return (user, created). A new user gets no usable password and an email with a
    link to choose one; public sign-up stays closed."""
    from allauth.account.forms import default_token_generator
    from allauth.account.utils import user_pk_to_url_str

    email = email.strip()
    try:
        validate_email(email)
    except ValidationError:
        raise Invalid(f"{email!r} is not a valid email address.", details={"email": email}) from None
    user = selectors.user_by_email(email=email)
    if user is not None:
        return user, False
    user = get_user_model().objects.create_user(username=email.lower()[:150], email=email)
    user.set_unusable_password()
    user.save(update_fields=["password"])
    path = reverse(
        "account_reset_password_from_key",
        kwargs={"uidb36": user_pk_to_url_str(user), "key": default_token_generator.make_token(user)},
    )
    transaction.on_commit(
        lambda: send_mail(
            subject="You have been invited to promptlab",
            message=f"Choose a password to sign in to promptlab:\n\n{settings.BASE_URL}{path}\n",
            from_email=None,
            recipient_list=[email],
        )
    )
    logger.info("prompts.user_invited", user_id=user.pk)
    return user, True


@transaction.atomic
def project_create(*, slug: str, name: str = "", owner=None, actor=None) -> Project:
    """Create a project; `owner` (default: the actor) becomes its first owner."""
    try:
        validate_slug(slug)
    except ValidationError:
        raise Invalid(
            f"{slug!r} is not a valid project slug: use letters, numbers, hyphens and underscores.",
            details={"slug": slug},
        ) from None
    if Project.objects.filter(slug=slug).exists():
        raise Invalid(f"A project with the slug {slug!r} already exists.", details={"slug": slug})
    project = Project(slug=slug, name=name or slug)
    project._history_user, project._change_reason = actor, "Created"
    project.save()
    owner = owner or actor
    if owner is not None:
        _membership_write(project=project, user=owner, role=Role.OWNER, actor=actor)
    logger.info("prompts.project_created", project_id=project.pk, slug=slug)
    return project


@transaction.atomic
def membership_set(*, project: Project, user, role: str, actor=None) -> Membership:
    """Add the user to the project with `role`, or change their role.

    Admins manage viewers, editors and admins; only owners grant or take away ownership;
    a project always keeps at least one owner.
    """
    if role not in Role.values:
        raise Invalid(
            f"{role!r} is not a role: choose one of {', '.join(Role.values)}.", details={"role": role}
        )
    current = Membership.objects.select_for_update().filter(project=project, user=user).first()
    touches_owner = role == Role.OWNER or (current is not None and current.role == Role.OWNER)
    authorize(actor, project, Action.OWN if touches_owner else Action.MANAGE)
    if current is not None and current.role == Role.OWNER and role != Role.OWNER:
        _keep_an_owner(project=project, leaving=user)
    membership = _membership_write(project=project, user=user, role=role, actor=actor)
    logger.info("prompts.membership_set", project_id=project.pk, user_id=user.pk, role=role)
    return membership


@transaction.atomic
def membership_remove(*, project: Project, user, actor=None) -> None:
    """Take the user out of the project."""
    current = Membership.objects.select_for_update().filter(project=project, user=user).first()
    if current is None:
        return
    authorize(actor, project, Action.OWN if current.role == Role.OWNER else Action.MANAGE)
    if current.role == Role.OWNER:
        _keep_an_owner(project=project, leaving=user)
    current._history_user, current._change_reason = actor, f"Removed ({current.role})"
    current.delete()
    logger.info("prompts.membership_removed", project_id=project.pk, user_id=user.pk)


def _keep_an_owner(*, project: Project, leaving) -> None:
    others = Membership.objects.filter(project=project, role=Role.OWNER).exclude(user=leaving)
    if not others.exists():
        raise Invalid(
            f"{leaving} is the last owner of {project.slug}: make someone else owner first.",
            details={"project": project.slug},
        )


def _membership_write(*, project: Project, user, role: str, actor) -> Membership:
    membership = Membership.objects.filter(project=project, user=user).first()
    if membership is None or membership.role != role:  # an unchanged role writes no history
        reason = f"Added as {role}" if membership is None else f"Role {membership.role} → {role}"
        membership = membership or Membership(project=project, user=user)
        membership.role = role
        membership._history_user, membership._change_reason = actor, reason
        membership.save()
    if not user.is_staff:
        # Members work in the admin; it shows them only their own projects.
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    return membership


@transaction.atomic
def project_rename(*, project: Project, name: str, actor=None) -> Project:
    """Change the display name; the slug is permanent because URLs and API clients use it."""
    authorize(actor, project, Action.MANAGE)
    if not name.strip():
        raise Invalid("A project needs a name.", details={"name": name})
    project.name = name.strip()
    project._history_user, project._change_reason = actor, "Renamed"
    project.save(update_fields=["name"])
    return project


@transaction.atomic
def project_require_approval_set(*, project: Project, actor, required: bool) -> Project:
    """Whether `production` moves only through an approved proposal (evaluations.governance).
    Owners decide: an admin who could turn it off could skip the second person it asks for."""
    authorize(actor, project, Action.OWN)
    project = Project.objects.select_for_update().get(pk=project.pk)
    if project.require_approval != required:
        project.require_approval = required
        project._history_user = actor
        project._change_reason = "Production moves need an approval" if required else "Production moves no longer need an approval"
        project.save(update_fields=["require_approval"])
        logger.info("prompts.project_require_approval_set", project_id=project.pk, required=required)
    return project


@transaction.atomic
def project_delete(*, project: Project, actor=None) -> None:
    """Delete the project and everything in it."""
    authorize(actor, project, Action.OWN)
    logger.info("prompts.project_deleted", project_id=project.pk, slug=project.slug)
    project._history_user = actor
    project.delete()


ENDPOINT_FIELDS = {
    "display_name", "model", "api_base", "api_key_env", "input_cost_per_token", "output_cost_per_token",
    "timeout_seconds", "max_retries", "requests_per_minute", "max_concurrency", "enabled",
}  # fmt: skip


@transaction.atomic
def endpoint_save(*, name: str, actor=None, **fields) -> tuple[ModelEndpoint, bool]:
    """Create the model endpoint `name` or update the given fields; (endpoint, created).

    The catalog is shared by all projects, so only superusers (or the operator's CLI) edit it.
    """
    unknown = set(fields) - ENDPOINT_FIELDS
    if unknown:
        raise Invalid(f"Unknown model endpoint fields: {', '.join(sorted(unknown))}.")
    if actor is not None and not actor.is_superuser:
        raise Forbidden("Only superusers may change the model catalog.")
    endpoint = ModelEndpoint.objects.select_for_update().filter(name=name).first()
    created = endpoint is None
    if created:
        endpoint = ModelEndpoint(name=name, display_name=fields.get("display_name") or name)
    changed = sorted(field for field, value in fields.items() if getattr(endpoint, field) != value)
    for field, value in fields.items():
        setattr(endpoint, field, value)
    validated(endpoint, f"model endpoint {name!r}")
    if created or changed:  # re-running a command with the same values records nothing
        endpoint._history_user = actor
        endpoint._change_reason = "Created" if created else f"Changed {', '.join(changed)}"
        endpoint.save()
    logger.info("prompts.endpoint_saved", endpoint=name, created=created)
    return endpoint, created


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
def label_move(*, prompt: Prompt, actor, label: str, version: int, message: str = "", override_reason: str = "",
               rollback: bool = False) -> Label:  # fmt: skip
    """Point the label at the version, recording who moved it from where. Moving production
    needs an admin; other labels need an editor. Checks of higher layers (the promotion gate)
    may refuse the move; `override_reason` is an admin's written reason to ship anyway."""
    authorize(actor, prompt.project, Action.MANAGE if label == "production" else Action.EDIT)
    if label == "latest":
        raise Invalid("'latest' always means the newest version and cannot be moved.", details={"label": label})
    try:
        validate_slug(label)
    except ValidationError:
        raise Invalid(f"{label!r} is not a valid label name.", details={"label": label}) from None
    selectors.prompt_version(prompt=prompt, version=version)  # raises NotFound for a version that does not exist
    current = Label.objects.select_for_update().filter(prompt=prompt, name=label).first()
    if current is not None and current.version == version:
        return current
    notes = signals.label_moving.send(
        sender=Label, prompt=prompt, label=label, version=version, actor=actor, override_reason=override_reason.strip(),
        rollback=rollback,
    )  # fmt: skip
    message = " ".join([message.strip(), *(note for _, note in notes if note)]).strip()
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
    """Move the label back to where its last move took it from."""
    authorize(actor, prompt.project, Action.MANAGE if label == "production" else Action.EDIT)
    last = LabelMove.objects.filter(prompt=prompt, label=label).first()
    if last is None or last.from_version is None:
        raise Invalid(f"The label {label!r} has no earlier version to roll back to.", details={"label": label})
    return label_move(prompt=prompt, actor=actor, label=label, version=last.from_version,
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
    from prompts import catalog
    from prompts.params import validate_params
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

    prompt_invoke.delay_on_commit(str(call.pk))
    logger.info("prompts.call_created", call_id=str(call.pk), prompt_id=prompt.pk, version=record.version)
    return call


def prompt_call_execute(*, call_id) -> PromptCall | None:
    """Claim a pending call with a compare-and-set (a second delivery finds it taken and calls
    nothing), call the model through the gateway, and record the answer or the error."""
    from django.utils import timezone

    from prompts import gateway
    from prompts.llm_errors import GatewayError

    if not PromptCall.objects.filter(pk=call_id, status=PromptCallStatus.PENDING).update(status=PromptCallStatus.RUNNING):
        logger.info("prompts.call_taken", call_id=str(call_id))
        return None
    call = PromptCall.objects.select_related("endpoint").get(pk=call_id)
    fields = {}
    try:
        if call.endpoint is None:
            raise Invalid("The prompt's model was deleted before the call was made.")
        result = gateway.complete(endpoint=call.endpoint, messages=call.messages, params=call.params)
    except GatewayError as exc:  # the gateway has retried what could clear up
        billed = {field: exc.details[field] for field in ("prompt_tokens", "completion_tokens", "output") if field in exc.details}
        fields = dict(status=PromptCallStatus.FAILED, error=exc.message, error_code=exc.code, error_kind=exc.kind,
                      attempts=exc.details.get("attempts", 1), cost_usd=exc.details.get("cost"), **billed)  # fmt: skip
    except DomainError as exc:  # the endpoint was disabled or lost its key since the call was recorded
        fields = dict(status=PromptCallStatus.FAILED, error=exc.message, error_code=exc.code, error_kind=exc.code)
    except Exception as exc:  # a bug must not leave the caller waiting on a call that never finishes
        logger.exception("prompts.call_crashed", call_id=str(call_id))
        fields = dict(status=PromptCallStatus.FAILED, error=f"internal error: {type(exc).__name__}", error_code="internal", error_kind="internal")
    else:
        fields = dict(
            status=PromptCallStatus.DONE, output=result.text, finish_reason=result.finish_reason,
            prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens, cost_usd=result.cost,
            latency_ms=result.latency_ms, attempts=result.attempts, cached=result.cached,
        )  # fmt: skip
    fields["finished_at"] = timezone.now()
    PromptCall.objects.filter(pk=call_id, status=PromptCallStatus.RUNNING).update(**fields)
    for name, value in fields.items():
        setattr(call, name, value)
    logger.info("prompts.call_finished", call_id=str(call_id), status=call.status, error_kind=call.error_kind)
    return call


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
