import time

from django.db import connection
from django.db.models import BooleanField, OuterRef, Q, QuerySet, Subquery
from django.db.models.expressions import RawSQL

from promptlab.accounts.models import Project
from promptlab.errors import Invalid, NotFound
from prompts.models import Label, Prompt, PromptCall, PromptCallStatus
from prompts.versions import version_or_label


def prompt_version(*, prompt: Prompt, version: int | None = None, label: str | None = None):
    """The historical record of one version: by number, by label, or the latest.
    Raises NotFound naming what was asked for."""
    if version is None and label not in (None, "latest"):
        version = label_version(prompt=prompt, label=label)
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
        return prompt_version(prompt=prompt, **version_or_label(pin))
    except (NotFound, Invalid):
        return None


def label_version(*, prompt: Prompt, label: str) -> int | None:
    """The version the prompt's label points at; None when the prompt has no such label."""
    return Label.objects.filter(prompt=prompt, name=label).values_list("version", flat=True).first()


def prompt_list(*, project: Project) -> QuerySet[Prompt]:
    return Prompt.objects.filter(project=project).select_related("project", "endpoint").prefetch_related("labels")


def prompt_get(*, project: Project, name: str) -> Prompt:
    """The project's prompt by name with its model and labels; NotFound otherwise (another
    project's is not found either)."""
    prompt = prompt_list(project=project).filter(name=name).first()
    if prompt is None:
        raise NotFound(f"There is no prompt named {name!r} in this project.", details={"prompt": name})
    return prompt


def prompt_search(*, project: Project, name: str = "", text: str = "", tag: str = "", label: str = "") -> QuerySet[Prompt]:
    """The project's prompts by name: `name` in the name (the API), `text` in the name or the
    description (the pages), carrying `tag`, with a label named `label`. Each with its model,
    labels and `last_author` (the email of the newest version's author; None for the
    operator's CLI)."""
    prompts = prompt_list(project=project)
    if name:
        prompts = prompts.filter(name__icontains=name)
    if text:
        prompts = prompts.filter(Q(name__icontains=text) | Q(description__icontains=text))
    if tag:
        prompts = _tagged(prompts, tag)
    if label:
        prompts = prompts.filter(labels__name=label)  # at most one label of a name per prompt: no duplicates
    newest = Prompt.history.model.objects.filter(id=OuterRef("pk")).order_by("-version").values("history_user__email")[:1]
    return prompts.annotate(last_author=Subquery(newest)).order_by("name")


def _tagged(prompts: QuerySet[Prompt], tag: str) -> QuerySet[Prompt]:
    """The prompts whose tags include `tag` exactly (case and all), on any database."""
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


def prompt_labels_by_version(*, prompt: Prompt) -> dict[int, list[str]]:
    """{version: the names of its labels}, by name; no query when prompt_list prefetched them."""
    labels = {}
    for label in prompt.labels.all():  # Label's ordering sorts by name
        labels.setdefault(label.version, []).append(label.name)
    return labels


# --- Calls made through the invoke API ---------------------------------------------------------


def prompt_call_get(*, project: Project, call_id) -> PromptCall:
    """The project's call by id; NotFound otherwise."""
    call = PromptCall.objects.filter(project=project, pk=call_id).first()
    if call is None:
        raise NotFound(f"There is no call {call_id} in this project.", details={"call": str(call_id)})
    return call


def prompt_call_wait(*, call: PromptCall, seconds: float) -> bool:
    """Wait up to `seconds` for a worker to finish the call; True when it did (the call is
    re-read). Polls its row, every 20 ms at first and at most every 100 ms: one primary-key
    read each time, on any database and broker, and no message to lose."""
    deadline = time.monotonic() + seconds
    pause = 0.02
    while True:
        status = PromptCall.objects.filter(pk=call.pk).values_list("status", flat=True).first()
        if status in (PromptCallStatus.DONE, PromptCallStatus.FAILED):
            call.refresh_from_db()
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(pause, left))
        pause = min(pause * 1.5, 0.1)
