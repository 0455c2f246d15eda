"""Who may do what in a project: the one policy every service, view and admin page asks.

Roles are ranked viewer < editor < admin < owner; an action needs a minimum role.
Superusers act as owners everywhere. A user marked with an `api_key` (the actor of a
request made with a project API key, see promptlab.accounts.api_keys) has its role in the key's
project only, and none once its creator is gone.
"""

from enum import StrEnum

from django.contrib.auth.models import AbstractBaseUser

from promptlab.accounts.models import Membership, Project, Role
from promptlab.errors import Forbidden

RANK = {role: rank for rank, role in enumerate(Role)}


class Action(StrEnum):
    VIEW = "view"  # read prompts, datasets, experiments, scores
    EDIT = "edit"  # write prompts, datasets, evaluators; run experiments
    MANAGE = "manage"  # members below owner, API keys, endpoints, approvals
    OWN = "own"  # grant or remove ownership, delete the project


MINIMUM_ROLE = {
    Action.VIEW: Role.VIEWER,
    Action.EDIT: Role.EDITOR,
    Action.MANAGE: Role.ADMIN,
    Action.OWN: Role.OWNER,
}


def role_allows(role: Role | str | None, action: Action) -> bool:
    return role is not None and RANK[Role(role)] >= RANK[MINIMUM_ROLE[action]]


def role_of(user: AbstractBaseUser, project: Project) -> Role | None:
    """The user's role in the project, or None when they are not a member."""
    if not user.is_authenticated or not user.is_active:
        return None
    key = getattr(user, "api_key", None)
    if key is not None and (key.project_id != project.pk or user.pk is None):
        return None
    if user.is_superuser:
        return Role.OWNER
    role = Membership.objects.filter(project=project, user=user).values_list("role", flat=True).first()
    return Role(role) if role else None


def can(user: AbstractBaseUser, project: Project, action: Action) -> bool:
    return role_allows(role_of(user, project), action)


def authorize(actor: AbstractBaseUser | None, project: Project, action: Action) -> None:
    """Raise Forbidden unless the actor may perform the action. None is the operator's CLI."""
    if actor is None or can(actor, project, action):
        return
    raise Forbidden(
        f"{actor} may not {action} in project {project.slug}: it needs the {MINIMUM_ROLE[action]} role.",
        details={"project": project.slug, "action": str(action), "required_role": str(MINIMUM_ROLE[action])},
    )
