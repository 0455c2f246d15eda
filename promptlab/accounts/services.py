"""Every write to projects, memberships and invitations. Commands, admin and pages all call these."""

import structlog
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email, validate_slug
from django.db import transaction
from django.urls import reverse

from promptlab.accounts import selectors
from promptlab.accounts.access import Action, authorize
from promptlab.accounts.models import Membership, Project, Role
from promptlab.errors import Forbidden, Invalid

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
    logger.info("accounts.user_invited", user_id=user.pk)
    return user, True


@transaction.atomic
def project_create(*, slug: str, name: str = "", owner=None, actor=None) -> Project:
    """Create a project; `owner` (default: the actor) becomes its first owner. Only the operator
    (no actor: the CLI) and superusers create projects."""
    if actor is not None and not actor.is_superuser:
        raise Forbidden("Only a superuser creates projects; ask your operator, who can also run manage.py create_project.")
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
    logger.info("accounts.project_created", project_id=project.pk, slug=slug)
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
    logger.info("accounts.membership_set", project_id=project.pk, user_id=user.pk, role=role)
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
    logger.info("accounts.membership_removed", project_id=project.pk, user_id=user.pk)


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
        logger.info("accounts.project_require_approval_set", project_id=project.pk, required=required)
    return project


@transaction.atomic
def project_delete(*, project: Project, actor=None) -> None:
    """Delete the project and everything in it."""
    authorize(actor, project, Action.OWN)
    logger.info("accounts.project_deleted", project_id=project.pk, slug=project.slug)
    project._history_user = actor
    project.delete()
