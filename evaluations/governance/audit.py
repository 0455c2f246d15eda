"""A project's audit log: every change to its prompts, labels, datasets, evaluators, members,
API keys, webhooks, approvals and settings, and to the model catalog that all projects
share, with who, when and what changed.

Read where the changes are recorded: the simple-history tables, LabelMove and
ApprovalRequest. A page is one UNION query over all of them (filtered and ordered by time in
SQL), then, per kind of entry on the page, one query for its records and one for the
versions before them (and one per kind of referenced row shown in a diff): the number of
queries does not grow with the page.
"""

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db.models import CharField, F, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.urls import reverse
from django.utils import timezone

from evaluations.governance.models import ApprovalRequest, Webhook
from evaluations.models import Evaluator
from experiments.models import Dataset
from promptlab.accounts.models import ApiKey, Membership, Project
from promptlab.llm.models import ModelEndpoint
from prompts.models import LabelMove, Prompt

KINDS = {
    "prompt": "Prompt", "label": "Label", "dataset": "Dataset", "evaluator": "Evaluator", "endpoint": "Model endpoint",
    "membership": "Member", "api_key": "API key", "webhook": "Webhook", "approval": "Approval", "project": "Project",
}  # fmt: skip
ACTIONS = {"+": "created", "~": "changed", "-": "deleted"}
# Never shown as a change: bookkeeping, or shown elsewhere in the entry.
SKIPPED = {"id", "project", "version", "used_variables"}


@dataclass(frozen=True)
class Change:
    field: str
    old: str
    new: str


@dataclass
class Entry:
    at: datetime
    user: object  # the User, or None for the operator's CLI (or a deleted user)
    kind: str
    title: str  # which object: a prompt's name, a member's email...
    action: str
    reason: str = ""
    changes: list[Change] = field(default_factory=list)
    url: str = ""

    @property
    def kind_label(self) -> str:
        return KINDS[self.kind]

    @property
    def changes_text(self) -> str:
        return "; ".join(f"{change.field}: {change.old or '∅'} → {change.new or '∅'}" for change in self.changes)


@dataclass(frozen=True)
class Filters:
    kind: str = ""
    text: str = ""
    user: int | str | None = None  # a user id, or "operator" for changes made without a person
    since: date | None = None
    until: date | None = None


# --- Where changes are recorded --------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    kind: str  # the entry kind ("approval" has two sources: proposals and decisions)
    rows: str  # the union's audit_kind for this source
    queryset: object  # project -> the source's rows of that project
    at: str
    who: str
    title: str
    ref: str = "history_id"


def _history(model):
    return model.history.model.objects


SOURCES = [
    _Source("prompt", "prompt", lambda p: _history(Prompt).filter(project_id=p.pk), "history_date", "history_user_id", "name"),
    _Source("label", "label", lambda p: LabelMove.objects.filter(prompt__project=p), "moved_at", "actor_id", "prompt_name", "id"),
    _Source("dataset", "dataset", lambda p: _history(Dataset).filter(project_id=p.pk), "history_date", "history_user_id", "name"),
    _Source("evaluator", "evaluator", lambda p: _history(Evaluator).filter(project_id=p.pk), "history_date", "history_user_id", "name"),
    # The catalog is shared: its changes show in every project's log.
    _Source("endpoint", "endpoint", lambda p: _history(ModelEndpoint).all(), "history_date", "history_user_id", "name"),
    _Source("membership", "membership", lambda p: _history(Membership).filter(project_id=p.pk), "history_date", "history_user_id", "user__email"),
    _Source("api_key", "api_key", lambda p: _history(ApiKey).filter(project_id=p.pk), "history_date", "history_user_id", "name"),
    _Source("webhook", "webhook", lambda p: _history(Webhook).filter(project_id=p.pk), "history_date", "history_user_id", "name"),
    _Source("approval", "approval_proposed", lambda p: ApprovalRequest.objects.filter(project=p), "proposed_at", "proposed_by_id", "prompt_name", "id"),
    _Source("approval", "approval_decided", lambda p: ApprovalRequest.objects.filter(project=p, decided_at__isnull=False), "decided_at",
            "decided_by_id", "prompt_name", "id"),
    _Source("project", "project", lambda p: _history(Project).filter(id=p.pk), "history_date", "history_user_id", "name"),
]  # fmt: skip


def audit_rows(*, project: Project, filters: Filters = Filters()) -> QuerySet:
    """The project's changes as one UNION query of (audit_kind, audit_ref, audit_at, audit_who,
    audit_title) rows, newest first: page it with a Paginator and read a page with audit_entries()."""
    parts = []
    for source in SOURCES:
        if filters.kind and source.kind != filters.kind:
            continue
        rows = source.queryset(project)
        if filters.user == "operator":
            rows = rows.filter(**{f"{source.who}__isnull": True})
        elif filters.user:
            rows = rows.filter(**{source.who: filters.user})
        if filters.since:
            rows = rows.filter(**{f"{source.at}__gte": _day_start(filters.since)})
        if filters.until:
            rows = rows.filter(**{f"{source.at}__lt": _day_start(filters.until + timedelta(days=1))})
        if filters.text:
            rows = rows.filter(**{f"{source.title}__icontains": filters.text})
        parts.append(rows.annotate(
            audit_kind=Value(source.rows, output_field=CharField()), audit_ref=F(source.ref), audit_at=F(source.at),
            audit_who=F(source.who), audit_title=F(source.title),
        ).values("audit_kind", "audit_ref", "audit_at", "audit_who", "audit_title").order_by())  # fmt: skip
    if not parts:
        return ApprovalRequest.objects.none().values("id")
    union = parts[0].union(*parts[1:], all=True) if len(parts) > 1 else parts[0]
    return union.order_by("-audit_at", "-audit_ref", "audit_kind")


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def audit_users(*, project: Project) -> QuerySet:
    """The people a log can be filtered by: the project's members, past ones included."""
    ever = _history(Membership).filter(project_id=project.pk).values("user_id")
    return get_user_model().objects.filter(pk__in=ever).order_by("email")


# --- Reading a page --------------------------------------------------------------------------


def audit_entries(rows, *, project: Project) -> list[Entry]:
    """The entries of a page of audit_rows(), in its order, with their diffs."""
    rows = list(rows)
    refs = defaultdict(list)
    for row in rows:
        refs[row["audit_kind"]].append(row["audit_ref"])
    entries = {}
    for kind, ids in refs.items():
        for ref, entry in READERS[kind](ids, project).items():
            entries[(kind, ref)] = entry
    return [entries[(row["audit_kind"], row["audit_ref"])] for row in rows if (row["audit_kind"], row["audit_ref"]) in entries]


def _history_entries(model, ids, *, kind: str, related=(), describe=None, url=None) -> dict[int, Entry]:
    """Entries of the history records `ids` of `model`, each diffed against the record before it."""
    history = model.history.model
    before = history.objects.filter(id=OuterRef("id"), history_id__lt=OuterRef("history_id")).order_by("-history_id")
    records = list(
        history.objects.filter(history_id__in=ids).select_related("history_user", *related)
        .annotate(previous_id=Subquery(before.values("history_id")[:1], output_field=IntegerField()))
    )  # fmt: skip
    previous = history.objects.in_bulk([record.previous_id for record in records if record.previous_id])
    raw = {record.history_id: _diff(record, previous.get(record.previous_id)) for record in records}
    names = _referenced(model, raw.values())

    def shown(name, value):
        return _shown(value, names.get((name, value)) if model._meta.get_field(name).is_relation else None)

    entries = {}
    for record in records:
        changes = [Change(label, shown(name, old), shown(name, new)) for name, label, old, new in raw[record.history_id]]
        entry = Entry(
            at=record.history_date, user=record.history_user, kind=kind, title=str(getattr(record, "name", "") or ""),
            action=ACTIONS[record.history_type], reason=record.history_change_reason or "", changes=changes,
        )  # fmt: skip
        if describe:
            describe(entry, record)
        if url and record.history_type != "-":
            entry.url = url(record)
        entries[record.history_id] = entry
    return entries


def _diff(record, previous) -> list[tuple[str, str, object, object]]:
    """(field name, label, old, new) for each tracked field that differs (every set field of a new record)."""
    if record.history_type == "-":
        return []
    # A new record is compared with an empty one: every field it sets is a change.
    before = previous or type(record)(**{model_field.attname: None for model_field in record.tracked_fields})
    changed = {change.field: (change.old, change.new) for change in record.diff_against(before, excluded_fields=SKIPPED).changes}
    # diff_against leaves out fields that are not editable (django-simple-history#1019), and
    # the log shows some: a project's require_approval, an API key's prefix.
    for model_field in record.tracked_fields:
        old, new = getattr(before, model_field.attname), getattr(record, model_field.attname)
        if not model_field.editable and model_field.name not in SKIPPED and old != new:
            changed[model_field.name] = (old, new)
    return [
        (model_field.name, str(model_field.verbose_name), *changed[model_field.name]) for model_field in record.tracked_fields
        if model_field.name in changed and not (previous is None and changed[model_field.name][1] in (None, "", [], {}))
    ]  # fmt: skip


def _referenced(model, diffs) -> dict[tuple[str, object], str]:
    """What the ids of foreign keys in the diffs name, one query per referenced model."""
    wanted = defaultdict(set)
    for diff in diffs:
        for name, _, old, new in diff:
            model_field = model._meta.get_field(name)
            if model_field.is_relation:
                wanted[name] |= {value for value in (old, new) if value is not None}
    names = {}
    for name, ids in wanted.items():
        related = model._meta.get_field(name).related_model
        for pk, obj in related._default_manager.in_bulk(ids).items():
            names[(name, pk)] = getattr(obj, "email", None) or str(obj)
    return names


def _shown(value, name: str | None = None) -> str:
    if name is not None:
        return name
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    return str(value)


def _prompt_entries(ids, project):
    def describe(entry, record):
        entry.action = {"+": f"created version {record.version}", "~": f"saved version {record.version}"}.get(record.history_type, "deleted")

    return _history_entries(Prompt, ids, kind="prompt", describe=describe,
                            url=lambda record: reverse("prompt_detail", args=[project.slug, record.name]))  # fmt: skip


def _membership_entries(ids, project):
    def describe(entry, record):
        entry.title = record.user.email if record.user else f"user {record.user_id}"
        entry.changes = [change for change in entry.changes if change.field != "user"]
        entry.action = {"+": f"added as {record.role}", "~": f"role is now {record.role}"}.get(record.history_type, "removed")

    return _history_entries(Membership, ids, kind="membership", related=["user"], describe=describe)


def _api_key_entries(ids, project):
    def describe(entry, record):
        entry.title = f"{record.name} ({record.prefix}…)"
        if record.history_type == "~" and record.revoked_at:
            entry.action = "revoked"

    return _history_entries(ApiKey, ids, kind="api_key", describe=describe)


def _project_entries(ids, project):
    return _history_entries(Project, ids, kind="project")


def _label_entries(ids, project) -> dict[int, Entry]:
    entries = {}
    for move in LabelMove.objects.filter(pk__in=ids).select_related("actor"):
        entries[move.pk] = Entry(
            at=move.moved_at, user=move.actor, kind="label", title=move.prompt_name,
            action=f"moved {move.label} to version {move.to_version}", reason=move.message,
            changes=[Change(move.label, f"v{move.from_version}" if move.from_version else "", f"v{move.to_version}")],
            url=reverse("prompt_detail", args=[project.slug, move.prompt_name]),
        )  # fmt: skip
    return entries


def _approval_entries(ids, project, *, decided: bool) -> dict[int, Entry]:
    """A proposal, or its decision (the same record, at its decision's time and by its decider)."""
    entries = {}
    for approval in ApprovalRequest.objects.filter(pk__in=ids).select_related("proposed_by", "decided_by"):
        if decided:
            override = f"Gate overridden: {approval.override_reason}" if approval.override_reason else ""
            at, user, verb, why = approval.decided_at, approval.decided_by, approval.status, (approval.comment, override)
        else:
            gate = "" if approval.gate_passed is None else f"Gate {'passed' if approval.gate_passed else 'not passed'}: {approval.gate_reason}."
            at, user, verb, why = approval.proposed_at, approval.proposed_by, "proposed", (approval.message, gate)
        entries[approval.pk] = Entry(
            at=at, user=user, kind="approval", title=approval.prompt_name, action=f"{verb} production → version {approval.version} (#{approval.pk})",
            reason=" ".join(part for part in why if part), url=reverse("approvals", args=[project.slug]),
        )  # fmt: skip
    return entries


READERS = {
    "prompt": _prompt_entries,
    "label": _label_entries,
    "dataset": lambda ids, project: _history_entries(
        Dataset, ids, kind="dataset", url=lambda record: reverse("dataset_detail", args=[project.slug, record.name])
    ),
    "evaluator": lambda ids, project: _history_entries(Evaluator, ids, kind="evaluator"),
    "endpoint": lambda ids, project: _history_entries(ModelEndpoint, ids, kind="endpoint"),
    "membership": _membership_entries,
    "api_key": _api_key_entries,
    "webhook": lambda ids, project: _history_entries(Webhook, ids, kind="webhook"),
    "approval_proposed": lambda ids, project: _approval_entries(ids, project, decided=False),
    "approval_decided": lambda ids, project: _approval_entries(ids, project, decided=True),
    "project": _project_entries,
}
