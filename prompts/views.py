"""The prompt workbench outside the admin: a project's prompts, and each prompt's content,
versions, side-by-side diffs and render preview. These pages only read; prompts are edited
in the admin."""

import json

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_http_methods

from promptlab.accounts import selectors as account_selectors
from promptlab.accounts.access import Action, role_allows
from promptlab.errors import DomainError, Invalid, NotFound
from promptlab.htmx import page_or_fragment, wants_fragment
from prompts import diff, rendering, selectors
from prompts.versions import version_or_label

PROMPTS_PER_PAGE = 25


@require_GET
@login_required
def home(request):
    """The projects the user belongs to, with their role in each."""
    projects = account_selectors.project_list_for(user=request.user)
    return render(request, "prompts/home.html", {"projects": projects})


# --- The prompt list ---------------------------------------------------------------------------


class PromptFilterForm(forms.Form):
    q = forms.CharField(required=False, max_length=200, label="Search")
    tag = forms.CharField(required=False, max_length=100)
    label = forms.CharField(required=False, max_length=50)


@require_GET
@login_required
def prompt_list(request, slug: str):
    """The project's prompts, 25 a page, filtered by text, tag and label; for htmx only the
    list fragment. Filters that cannot be read (too long, a NUL byte) are a 400."""
    project = account_selectors.project_for(user=request.user, slug=slug)
    form = PromptFilterForm(request.GET)
    context = {"project": project, "form": form, "can_edit": role_allows(project.role, Action.EDIT)}
    if form.is_valid():
        filters = {"text": form.cleaned_data["q"], "tag": form.cleaned_data["tag"], "label": form.cleaned_data["label"]}
        page = Paginator(selectors.prompt_search(project=project, **filters), PROMPTS_PER_PAGE).get_page(request.GET.get("page"))
        context.update(
            page_obj=page, filtered=any(filters.values()),
            page_range=page.paginator.get_elided_page_range(page.number, on_each_side=2, on_ends=1),
        )  # fmt: skip
    if not wants_fragment(request, "prompt-list"):  # the filter form is outside the list
        context["choices"] = [
            _choice(form, "tag", selectors.prompt_tags(project=project)),
            _choice(form, "label", selectors.label_names(project=project)),
        ]
    return page_or_fragment(
        request, "prompts/prompt_list.html", context, fragment_template="prompts/partials/prompt-list.html", target="prompt-list",
        status=200 if form.is_valid() else 400,
    )  # fmt: skip


def _choice(form, name: str, values: list[str]) -> dict:
    """A select of the filter form. A value asked for that the project does not use stays
    selectable, so the form shows what was asked."""
    selected = form.data.get(name, "")
    return {"name": name, "selected": selected, "values": values + ([selected] if selected and selected not in values else [])}


# --- One prompt --------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@login_required
def prompt_detail(request, slug: str, name: str):
    """A prompt: its current content, every version, a side-by-side diff of any two
    (`?a=1&b=3`, `?a=v1&b=production`; by default the latest against the one before) and a
    render preview. For htmx only the fragment swapped: `prompt-diff` or `prompt-preview`.

    The preview is a POST (variables can be long) that only reads, so viewers may use it;
    a GET for the preview fragment changes its version. A number that is no version (v0) is
    a 400 and an unknown version or label a 404, with the page saying which."""
    project = account_selectors.project_for(user=request.user, slug=slug)
    prompt = selectors.prompt_get(project=project, name=name)
    data = request.POST if request.method == "POST" else request.GET
    context = {"project": project, "prompt": prompt, "versions": _versions(prompt)}
    page = "prompts/prompt_detail.html"
    if wants_fragment(request, "prompt-diff"):
        diff_context, status = _diff_context(prompt, request.GET)
        return page_or_fragment(
            request, page, {**context, **diff_context}, fragment_template="prompts/partials/prompt-diff.html", target="prompt-diff",
            status=status,
        )  # fmt: skip
    preview_context, status = _preview_context(prompt, data, render=request.method == "POST")
    context.update(preview_context)
    if wants_fragment(request, "prompt-preview"):
        return page_or_fragment(
            request, page, context, fragment_template="prompts/partials/prompt-preview.html", target="prompt-preview", status=status
        )  # fmt: skip
    diff_context, diff_status = _diff_context(prompt, request.GET)
    context.update(
        diff_context, can_edit=role_allows(project.role, Action.EDIT), variables=_variable_fields(prompt, {}),
        params=[(key, _shown(value)) for key, value in (prompt.params or {}).items()],
    )  # fmt: skip
    return page_or_fragment(request, page, context, status=max(status, diff_status))


def _versions(prompt) -> list[dict]:
    """The timeline: every version, newest first, with its author, the labels on it and the
    number of the version before it."""
    labels = selectors.prompt_labels_by_version(prompt=prompt)
    records = list(selectors.prompt_timeline(prompt=prompt))
    return [
        {"record": record, "labels": labels.get(record.version, []), "previous": older.version if older else None}
        for record, older in zip(records, [*records[1:], None])
    ]


def _version_asked(data, key: str, default: int) -> dict:
    """The version `key` names, as a person may type it in the address: v3, 3 or a label
    (production, latest); `default` when it is left out."""
    raw = (data.get(key) or "").strip()
    return version_or_label(raw) if raw else {"version": default}


def _diff_context(prompt, query) -> tuple[dict, int]:
    """The two versions `a` and `b` of the query and what changed between them."""
    try:
        a = selectors.prompt_version(prompt=prompt, **_version_asked(query, "a", max(prompt.version - 1, 1)))
        b = selectors.prompt_version(prompt=prompt, **_version_asked(query, "b", prompt.version))
    except DomainError as exc:
        return {"diff_error": exc.message}, 404 if isinstance(exc, NotFound) else 400
    return {"a": a, "b": b, "diff": diff.version_diff(a, b)}, 200


def _preview_context(prompt, data, *, render: bool) -> tuple[dict, int]:
    """The preview form for the version asked for (the latest by default), its variables
    filled in from `data`; with `render`, the rendered text or messages, or the renderer's error."""
    try:
        record = selectors.prompt_version(prompt=prompt, **_version_asked(data, "version", prompt.version))
    except DomainError as exc:
        return {"preview_version_error": exc.message}, 404 if isinstance(exc, NotFound) else 400
    fields = _variable_fields(record, data)
    context = {"preview_record": record, "preview_fields": fields}
    if render:
        try:
            context["rendered"] = rendering.render_version(record, _variable_values(fields))
        except DomainError as exc:
            context["preview_error"] = exc.message
    return context, 200


def _variable_fields(record, data) -> list[dict]:
    """One input per variable of the version: the declared ones in their order, then those
    its templates use without declaring them (a chat placeholder takes a list of messages)."""
    declared = {spec["name"]: spec for spec in record.variables or []}
    placeholders = set(record.placeholders())
    names = [*declared, *sorted(set(record.used_variables) - declared.keys())]
    fields = []
    for name in names:
        spec = declared.get(name, {})
        default = spec.get("default")
        fields.append({
            "name": name, "declared": name in declared, "description": spec.get("description") or "",
            "type": spec.get("type", "string") if spec else "list" if name in placeholders else "string",
            "optional": spec.get("required") is False or default is not None, "default": "" if default is None else _shown(default),
            "value": (data.get(f"var_{name}") or "").replace("\r\n", "\n"),  # browsers send textareas with CRLF
        })  # fmt: skip
    return fields


def _shown(value) -> str:
    """A setting as people write it: text as is, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _variable_values(fields: list[dict]) -> dict:
    """The values typed in: text as typed for strings, JSON for other types; a blank field is
    left out so that the declared default applies."""
    values = {}
    for field in fields:
        if not field["value"].strip():
            continue
        if field["type"] == "string":
            values[field["name"]] = field["value"]
            continue
        try:
            values[field["name"]] = json.loads(field["value"])
        except ValueError:
            raise Invalid(f"The variable {field['name']} needs a JSON value of type {field['type']}, e.g. {_EXAMPLES[field['type']]}.") from None
    return values


_EXAMPLES = {"number": "3.5", "integer": "42", "boolean": "true", "list": '["a", "b"]', "object": '{"key": "value"}'}
