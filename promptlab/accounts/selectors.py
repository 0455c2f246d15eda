"""Every read of projects, memberships and people."""

from django.contrib.auth import get_user_model
from django.db.models import Count, OuterRef, QuerySet, Subquery, Value

from promptlab.accounts.models import Membership, Project, Role
from promptlab.errors import NotFound


def project_list_for(*, user) -> QuerySet[Project]:
    """The projects a user may see (all of them for a superuser), each annotated with
    `role` (the user's role) and `member_count`."""
    if user.is_superuser:
        projects = Project.objects.annotate(role=Value(Role.OWNER.value))
    else:
        own_role = Membership.objects.filter(project=OuterRef("pk"), user=user).values("role")[:1]
        projects = Project.objects.filter(memberships__user=user).annotate(role=Subquery(own_role))
    return projects.annotate(member_count=Count("memberships", distinct=True)).order_by("name")


def project_get(*, slug: str) -> Project:
    project = Project.objects.filter(slug=slug).first()
    if project is None:
        raise NotFound(f"No project with the slug {slug!r}. Create it with `create_project {slug}`.", details={"project": slug})
    return project


def user_by_email(*, email: str):
    """The user with this email (case-insensitive), or None."""
    return get_user_model().objects.filter(email__iexact=email.strip()).first()


def project_for(*, user, slug: str) -> Project:
    """The project by slug if the user may see it, annotated with their `role`; NotFound
    otherwise (a project the user is not a member of is not revealed). The pages and the API
    both find a person's project here."""
    project = project_list_for(user=user).filter(slug=slug).first()
    if project is None:
        raise NotFound(f"There is no project {slug!r}.", details={"project": slug})
    return project
