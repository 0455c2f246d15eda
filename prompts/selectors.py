from django.contrib.auth import get_user_model
from django.db.models import Count, OuterRef, QuerySet, Subquery, Value

from prompts.models import Membership, Project, Role


def project_list_for(*, user) -> QuerySet[Project]:
    """The projects a user may see (all of them for a superuser), each annotated with
    `role` (the user's role) and `member_count`."""
    if user.is_superuser:
        projects = Project.objects.annotate(role=Value(Role.OWNER.value))
    else:
        own_role = Membership.objects.filter(project=OuterRef("pk"), user=user).values("role")[:1]
        projects = Project.objects.filter(memberships__user=user).annotate(role=Subquery(own_role))
    return projects.annotate(member_count=Count("memberships", distinct=True)).order_by("name")


def user_by_email(*, email: str):
    """The user with this email (case-insensitive), or None."""
    return get_user_model().objects.filter(email__iexact=email.strip()).first()
