from django.db import connection
from django.db.models import BooleanField, OuterRef, Q, QuerySet, Subquery
from django.db.models.expressions import RawSQL
from django.shortcuts import get_object_or_404

from promptlab.accounts.models import Project
from promptlab.errors import NotFound
from prompts.models import Label, Prompt


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


# --- The prompt pages -------------------------------------------------------------------------




def prompt_for(*, project: Project, name: str) -> Prompt:
    """The project's prompt by name with its model and labels, else 404."""
    return get_object_or_404(prompt_list(project=project), name=name)


def prompt_search(*, project: Project, text: str = "", tag: str = "", label: str = "") -> QuerySet[Prompt]:
    """The project's prompts by name: `text` in the name or description, carrying `tag`, with a
    label named `label`. Each with its model, labels and `last_author` (the email of the newest
    version's author; None for the operator's CLI)."""
    prompts = prompt_list(project=project)
    if text:
        prompts = prompts.filter(Q(name__icontains=text) | Q(description__icontains=text))
    if tag:
        prompts = _tagged(prompts, tag)
    if label:
        prompts = prompts.filter(labels__name=label)  # at most one label of a name per prompt: no duplicates
    newest = Prompt.history.model.objects.filter(id=OuterRef("pk")).order_by("-version").values("history_user__email")[:1]
    return prompts.annotate(last_author=Subquery(newest)).order_by("name")


def _tagged(prompts: QuerySet[Prompt], tag: str) -> QuerySet[Prompt]:
    if connection.features.supports_json_field_contains:
        return prompts.filter(tags__contains=[tag])
    # SQLite (the embedded default) has no JSON containment: look through the array instead.
    table = Prompt._meta.db_table
    exists = RawSQL(f'EXISTS (SELECT 1 FROM json_each("{table}"."tags") WHERE json_each.value = %s)', [tag], output_field=BooleanField())
    return prompts.alias(tagged=exists).filter(tagged=True)


def prompt_tags(*, project: Project) -> list[str]:
    """Every tag used by a prompt of the project, sorted."""
    tag_lists = Prompt.objects.filter(project=project).values_list("tags", flat=True)
    return sorted({tag for tags in tag_lists if isinstance(tags, list) for tag in tags if isinstance(tag, str)})


def label_names(*, project: Project) -> list[str]:
    """Every label name in use on a prompt of the project, sorted."""
    return list(Label.objects.filter(prompt__project=project).order_by("name").values_list("name", flat=True).distinct())


def prompt_timeline(*, prompt: Prompt) -> QuerySet:
    """Every version of the prompt, newest first, with its author."""
    return prompt.history.select_related("history_user").order_by("-version")
