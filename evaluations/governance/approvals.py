"""Approvals: an editor proposes moving `production` to a version, with the gate's verdict
attached; another person, an admin or owner, approves (the label moves, through
prompts.services.label_move with the approver as actor) or rejects, with a comment.

Nobody decides on their own proposal. Admins and owners may still move `production`
directly unless the project requires approval (Project.require_approval, set by an owner):
then every production move needs an approved proposal, whoever asks: admins and owners, API
keys of every origin, imports and the operator's CLI. Two exceptions: a rollback (back to the
version production held just before, while it passes its gate: prompts.services.label_rollback),
and an owner's emergency override, signed in, with a written reason, recorded on the move and
told to the other admins and owners.
"""

from contextvars import ContextVar

import structlog
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone

from evaluations import gates
from evaluations.governance import notifications, webhooks
from evaluations.governance.models import ApprovalRequest, ApprovalStatus, WebhookEvent
from evaluations.models import PromotionGate
from promptlab.accounts.access import Action, authorize, role_of
from promptlab.accounts.models import Membership, Project, Role
from promptlab.errors import Forbidden, Invalid
from prompts import selectors as prompt_selectors
from prompts import services as prompt_services
from prompts.models import Label, LabelMove, Prompt

logger = structlog.get_logger(__name__)

LABEL = "production"
MAX_TEXT_CHARS = 5000

# The (prompt id, version) an approval is moving right now: the one production move that
# check_approval_required lets through on a project that requires approval.
_approving: ContextVar[tuple[int, int] | None] = ContextVar("approving", default=None)


# --- Services --------------------------------------------------------------------------------


@transaction.atomic
def approval_propose(*, prompt: Prompt, actor, version: int, message: str = "") -> ApprovalRequest:
    """Propose moving production to the version. The admins and owners of the project are
    notified; the gate's verdict on the version (when the prompt has a gate) is attached."""
    authorize(actor, prompt.project, Action.EDIT)
    _a_person(actor, "propose")
    message = _text(message, "message")
    prompt_selectors.prompt_version(prompt=prompt, version=version)  # NotFound for a version that does not exist
    current = Label.objects.filter(prompt=prompt, name=LABEL).values_list("version", flat=True).first()
    if current == version:
        raise Invalid(f"Version {version} of {prompt.name} is already in production.", details={"version": version})
    gate_passed, gate_reason, gate_experiment = None, "", None
    if PromotionGate.objects.filter(prompt=prompt).exists():
        result = gates.gate_result(prompt=prompt, version=version)
        gate_passed, gate_reason, gate_experiment = result.passed, result.reason, result.experiment
    try:
        with transaction.atomic():
            approval = ApprovalRequest.objects.create(
                project=prompt.project, prompt=prompt, prompt_name=prompt.name, version=version, from_version=current,
                message=message, proposed_by=actor, gate_passed=gate_passed, gate_reason=gate_reason, gate_experiment=gate_experiment,
            )  # fmt: skip
    except IntegrityError:
        raise Invalid(
            f"Version {version} of {prompt.name} is already proposed for production and waiting for a decision.",
            details={"version": version},
        ) from None
    notifications.notify(
        users=_deciders(prompt.project, other_than=actor), project=prompt.project, approval=approval, url=_page(prompt.project),
        text=f"{actor.email or actor} proposes moving {prompt.name} production to version {version}.",
    )  # fmt: skip
    _announce(approval, WebhookEvent.APPROVAL_REQUESTED)
    logger.info("governance.approval_proposed", approval_id=approval.pk, prompt_id=prompt.pk, version=version)
    return approval


@transaction.atomic
def approval_approve(*, approval: ApprovalRequest, actor, comment: str = "", override_reason: str = "") -> ApprovalRequest:
    """Approve: production moves to the version now, with the approver as the mover. The
    gate applies at this moment; `override_reason` ships past a gate that has not passed."""
    approval = _decidable(approval, actor)
    if approval.prompt is None:
        raise Invalid("The prompt was deleted: there is nothing to move. Reject the proposal instead.")
    comment = _text(comment, "comment")
    proposer = approval.proposed_by.email if approval.proposed_by else "a deleted user"
    last_move = LabelMove.objects.filter(prompt=approval.prompt, label=LABEL).values_list("pk", flat=True).first() or 0
    token = _approving.set((approval.prompt_id, approval.version))
    try:
        prompt_services.label_move(
            prompt=approval.prompt, actor=actor, label=LABEL, version=approval.version, override_reason=override_reason,
            message=f"Approved proposal #{approval.pk} by {proposer}" + (f": {comment}" if comment else "."),
        )  # fmt: skip
    finally:
        _approving.reset(token)
    approval.label_move = LabelMove.objects.filter(prompt=approval.prompt, label=LABEL, pk__gt=last_move).first()
    return _decide(approval, actor, ApprovalStatus.APPROVED, comment=comment, override_reason=override_reason.strip())


@transaction.atomic
def approval_reject(*, approval: ApprovalRequest, actor, comment: str) -> ApprovalRequest:
    """Reject, saying why: production stays where it is."""
    approval = _decidable(approval, actor)
    comment = _text(comment, "comment")
    if not comment:
        raise Invalid("Say why the proposal is rejected: a comment is required.", details={"comment": "required"})
    return _decide(approval, actor, ApprovalStatus.REJECTED, comment=comment)


@transaction.atomic
def approval_withdraw(*, approval: ApprovalRequest, actor) -> ApprovalRequest:
    """The proposer takes back their pending proposal."""
    authorize(actor, approval.project, Action.EDIT)
    approval = _pending(approval)
    if actor is None or approval.proposed_by_id != actor.pk:
        raise Forbidden("Only the person who proposed it may withdraw a proposal; admins and owners reject it instead.")
    approval.status, approval.decided_by, approval.decided_at = ApprovalStatus.WITHDRAWN, actor, timezone.now()
    approval.save(update_fields=["status", "decided_by", "decided_at"])
    notifications.notifications_resolve(approval=approval)
    logger.info("governance.approval_withdrawn", approval_id=approval.pk)
    return approval


def _decidable(approval: ApprovalRequest, actor) -> ApprovalRequest:
    authorize(actor, approval.project, Action.MANAGE)
    _a_person(actor, "decide on a proposal")
    approval = _pending(approval)
    if approval.proposed_by_id == actor.pk:
        raise Forbidden(
            "You proposed this move: another admin or owner must decide on it.", details={"approval": approval.pk}
        )
    return approval


def _pending(approval: ApprovalRequest) -> ApprovalRequest:
    """The approval, locked, while it still waits for a decision; Invalid once decided."""
    approval = (ApprovalRequest.objects.select_for_update(of=("self",))
                .select_related("project", "prompt", "proposed_by").get(pk=approval.pk))  # fmt: skip
    if approval.status != ApprovalStatus.PENDING:
        raise Invalid(f"This proposal was already {approval.status}.", details={"status": approval.status})
    return approval


def _decide(approval: ApprovalRequest, actor, status: str, **fields) -> ApprovalRequest:
    approval.status, approval.decided_by, approval.decided_at = status, actor, timezone.now()
    for field, value in fields.items():
        setattr(approval, field, value)
    approval.save()
    notifications.notifications_resolve(approval=approval)
    notifications.notify(
        users=[approval.proposed_by], project=approval.project, approval=approval, url=_page(approval.project),
        text=f"{actor.email or actor} {status} moving {approval.prompt_name} production to version {approval.version}"
        + (f": {approval.comment}" if approval.comment else "."),
    )  # fmt: skip
    _announce(approval, WebhookEvent.APPROVAL_DECIDED)
    logger.info("governance.approval_decided", approval_id=approval.pk, status=status, decided_by=actor.pk)
    return approval


def _deciders(project: Project, *, other_than) -> list:
    """The project's admins and owners, but for `other_than`."""
    memberships = Membership.objects.filter(project=project, role__in=[Role.ADMIN, Role.OWNER]).exclude(user=other_than)
    return [membership.user for membership in memberships.select_related("user")]


def _a_person(actor, what: str) -> None:
    if actor is None or getattr(actor, "pk", None) is None:
        raise Invalid(f"Only a person can {what}: sign in.")


def _text(value: str, field: str) -> str:
    value = (value or "").strip()
    if len(value) > MAX_TEXT_CHARS:
        raise Invalid(f"The {field} is at most {MAX_TEXT_CHARS} characters.", details={field: len(value)})
    return value


def _page(project: Project) -> str:
    return reverse("approvals", args=[project.slug])


def _announce(approval: ApprovalRequest, event: str) -> None:
    project = approval.project
    data = {
        "approval": approval.pk, "status": approval.status, "prompt": approval.prompt_name, "label": LABEL,
        "version": approval.version, "from_version": approval.from_version, "message": approval.message,
        "proposed_by": approval.proposed_by.email if approval.proposed_by else None,
        "gate": None if approval.gate_passed is None else {"passed": approval.gate_passed, "reason": approval.gate_reason},
        "decided_by": approval.decided_by.email if approval.decided_by else None, "comment": approval.comment,
        "override_reason": approval.override_reason, "url": webhooks.absolute_url(_page(project)),
    }  # fmt: skip
    transaction.on_commit(lambda: _emit(project, event, data), robust=True)


def _emit(project: Project, event: str, data: dict) -> None:
    try:
        webhooks.webhook_event_emit(project=project, event=event, data=data)
    except Exception:  # a webhook must never undo or fail a decision
        logger.exception("governance.webhook_emit_failed", webhook_event=event, approval=data["approval"])


# --- The label-move check (registered in prompts.checks) -----------------------------------------------------------------


def check_approval_required(*, prompt: Prompt, label: str, version: int, actor, override_reason: str, rollback: bool,
                            **_) -> str | None:  # fmt: skip
    """Refuse a production move on a project that requires approval, whoever asks (the operator's
    CLI and its API keys too: no path skips the second person). An approval in progress moves its
    own version; a rollback (label_rollback has checked it is one) needs none; an owner may
    override with a written reason."""
    if label != LABEL or rollback or _approving.get() == (prompt.pk, version):
        return None
    if not Project.objects.filter(pk=prompt.project_id, require_approval=True).exists():
        return None
    if not override_reason:
        raise _refusal(prompt, version, f"Production in project {prompt.project.slug} requires an approval")
    return _approval_override(prompt=prompt, version=version, actor=actor, reason=_text(override_reason, "override reason"))


def _approval_override(*, prompt: Prompt, version: int, actor, reason: str) -> str:
    """An owner's emergency move without an approval. Only a person signed in as an owner: a key
    or the CLI names no one who answers for it. Recorded on the move (the audit log shows it) and
    told to the other admins and owners, who would have decided on it."""
    if actor is None or getattr(actor, "api_key", None) is not None or role_of(actor, prompt.project) != Role.OWNER:
        raise _refusal(prompt, version, f"Only an owner, signed in (not with an API key or the CLI), may move production in "
                                        f"project {prompt.project.slug} without an approval")  # fmt: skip
    who = actor.email or str(actor)
    notifications.notify(
        users=_deciders(prompt.project, other_than=actor), project=prompt.project,
        url=reverse("audit_log", args=[prompt.project.slug]),
        text=f"{who} moved {prompt.name} production to version {version} without an approval (owner's override): {reason}",
    )  # fmt: skip
    logger.warning("governance.approval_overridden", prompt_id=prompt.pk, version=version, actor_id=actor.pk)
    return f"Approval overridden by the owner {who}: {reason}"


def _refusal(prompt: Prompt, version: int, rule: str) -> Forbidden:
    """The rule, and where to ask for the approval it wants."""
    return Forbidden(
        f"{rule}: propose version {version} of {prompt.name} at {webhooks.absolute_url(_page(prompt.project))}, and another "
        "admin or owner approves it.",
        details={"approvals": _page(prompt.project), "version": version},
    )  # fmt: skip


# --- Selectors -------------------------------------------------------------------------------


def approvals_pending(*, project: Project) -> QuerySet[ApprovalRequest]:
    """The project's proposals waiting for a decision, oldest first, with where production points now."""
    from django.db.models import OuterRef, Subquery

    production = Label.objects.filter(prompt=OuterRef("prompt"), name=LABEL).values("version")[:1]
    return (ApprovalRequest.objects.filter(project=project, status=ApprovalStatus.PENDING)
            .select_related("proposed_by", "gate_experiment").annotate(production_version=Subquery(production))
            .order_by("proposed_at", "id"))  # fmt: skip


def approvals_decided(*, project: Project) -> QuerySet[ApprovalRequest]:
    """The project's decided (or withdrawn) proposals, newest decision first."""
    return (ApprovalRequest.objects.filter(project=project).exclude(status=ApprovalStatus.PENDING)
            .select_related("proposed_by", "decided_by", "gate_experiment").order_by("-decided_at", "-id"))  # fmt: skip
