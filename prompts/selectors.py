from django.contrib.auth import get_user_model
from django.db.models import Count, OuterRef, QuerySet, Subquery, Value

from prompts.models import Label, Membership, Project, Prompt, Role
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


def prompt_version(*, prompt: Prompt, version: int | None = None, label: str | None = None):
    """The historical record of one version: by number, by label, or the latest.
    Raises NotFound naming what was asked for."""
    if version is None and label not in (None, "latest"):
        version = Label.objects.filter(prompt=prompt, name=label).values_list("version", flat=True).first()
        if version is None:
            raise NotFound(f"The prompt {prompt.name!r} has no label {label!r}.", details={"label": label})
    records = prompt.history.select_related("history_user")
    record = records.filter(version=version).first() if version is not None else records.order_by("-version").first()
    if record is None:
        raise NotFound(f"The prompt {prompt.name!r} has no version {version}.", details={"version": version})
    return record


def version_for_include(*, project_id: int, name: str, pin: str | None):
    """What `{% include "name[@pin]" %}` means: a version number, a label, or with no pin the
    production version when there is one, else the latest. None when it does not exist."""
    prompt = Prompt.objects.filter(project_id=project_id, name=name).first()
    if prompt is None:
        return None
    try:
        if pin is None:
            has_production = Label.objects.filter(prompt=prompt, name="production").exists()
            return prompt_version(prompt=prompt, label="production" if has_production else None)
        if pin.isdigit():
            return prompt_version(prompt=prompt, version=int(pin))
        return prompt_version(prompt=prompt, label=pin)
    except NotFound:
        return None


def prompt_list(*, project: Project) -> QuerySet[Prompt]:
    return Prompt.objects.filter(project=project).select_related("endpoint").prefetch_related("labels")
