"""The prompt workbench in the admin: versions, diffs, labels, revert and a live preview.

Every change goes through prompts.services; the admin only collects input and shows results.
"""

import io
import json
import zipfile

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, Subquery
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path
from django.views.decorators.http import require_POST

from promptlab.accounts.access import Action, can
from promptlab.accounts.admin.scoping import ProjectScoped
from promptlab.accounts.models import Project
from promptlab.errors import DomainError, Invalid
from promptlab.llm.models import ModelEndpoint
from prompts import diff, rendering, selectors, services, yaml_io
from prompts.models import Prompt
from prompts.validation import template_variables, validate_prompt
from prompts.versions import version_or_label

FORM_FIELDS = ["project", "name", "description", "tags", "kind", "template", "messages", "endpoint", "params", "variables", "strict_variables"]  # fmt: skip


class PromptForm(forms.ModelForm):
    base_version = forms.IntegerField(widget=forms.HiddenInput, required=False)
    change_message = forms.CharField(
        max_length=500, help_text="Required: what changed and why. It is kept with the version.",
        widget=forms.TextInput(attrs={"size": 80}),
    )  # fmt: skip

    class Meta:
        model = Prompt
        fields = FORM_FIELDS

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "endpoint" in self.fields:
            self.fields["endpoint"].queryset = ModelEndpoint.objects.filter(enabled=True)
        self.fields["base_version"].initial = self.instance.version or None

    def clean(self):
        """Run the same validation as every save path, showing each problem on its field."""
        cleaned = super().clean()
        if self.errors:
            return cleaned
        base = cleaned.get("base_version")
        if self.instance.pk and base is not None:
            current = Prompt.objects.values_list("version", flat=True).get(pk=self.instance.pk)
            if current != base:
                raise forms.ValidationError(
                    f"Someone saved version {current} after version {base}, which you started from: reload the "
                    "page to see it, then make your change again. Nothing was saved."
                )
        candidate = Prompt(project_id=getattr(cleaned.get("project"), "pk", self.instance.project_id), name=cleaned.get("name", self.instance.name))
        for field in FORM_FIELDS[2:]:
            setattr(candidate, field, cleaned.get(field))
        try:
            validate_prompt(candidate)
        except Invalid as exc:
            for field, message in exc.details.items():
                self.add_error(field if field in self.fields else None, message)
        return cleaned


@admin.register(Prompt)
class PromptAdmin(ProjectScoped):
    form = PromptForm
    list_display = ["name", "project", "kind", "endpoint", "version", "label_list", "updated_at", "last_author"]
    list_filter = [("project", admin.RelatedOnlyFieldListFilter), "kind"]  # only projects the user sees
    search_fields = ["name", "description"]
    actions = ["export_yaml"]
    change_form_template = "admin/prompts/prompt/change_form.html"
    fields = [*FORM_FIELDS, "change_message", "base_version"]

    def get_queryset(self, request):
        last_author = (
            Prompt.history.model.objects.filter(id=OuterRef("pk")).order_by("-version").values("history_user__email")[:1]
        )
        return (
            super()
            .get_queryset(request)
            .select_related("project", "endpoint")
            .prefetch_related("labels")
            .annotate(last_author=Subquery(last_author))
        )

    def get_readonly_fields(self, request, obj=None):
        return ["project", "name"] if obj is not None else []

    @admin.display(description="labels")
    def label_list(self, prompt):
        return ", ".join(f"{label.name} → v{label.version}" for label in prompt.labels.all()) or "—"

    @admin.display(description="last change by")
    def last_author(self, prompt):
        return prompt.last_author or "—"

    def save_model(self, request, obj, form, change):
        fields = {field: form.cleaned_data[field] for field in FORM_FIELDS[2:] if field in form.cleaned_data}
        message = form.cleaned_data["change_message"]
        if change:
            before = obj.version
            saved = services.prompt_update(
                prompt=Prompt.objects.get(pk=obj.pk), actor=request.user, message=message,
                base_version=form.cleaned_data.get("base_version"), **fields,
            )  # fmt: skip
            if saved.version == before:
                self.message_user(request, "Nothing changed, so no new version was created.", messages.INFO)
        else:
            saved = services.prompt_create(
                project=form.cleaned_data["project"], actor=request.user, name=form.cleaned_data["name"], message=message, **fields
            )
        obj.pk, obj.version, obj._state.adding = saved.pk, saved.version, False

    def delete_model(self, request, obj):
        services.prompt_delete(prompt=obj, actor=request.user)

    def construct_change_message(self, request, form, formsets, add=False):
        return form.cleaned_data.get("change_message", "")

    @admin.action(description="Export the selected prompts as YAML (zip)")
    def export_yaml(self, request, queryset):
        """The latest version of each, in the files `import_prompts` reads, one folder per project."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for prompt in queryset.select_related("project").prefetch_related("labels"):
                archive.writestr(f"{prompt.project.slug}/{prompt.name}.yaml", yaml_io.prompt_document(prompt))
        response = HttpResponse(buffer.getvalue(), content_type="application/zip")
        response["Content-Disposition"] = 'attachment; filename="prompts.zip"'
        return response

    # --- Versions, diffs, labels ----------------------------------------------------------

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/versions/", wrap(self.versions_view), name="prompts_prompt_versions"),
            path("<int:pk>/compare/", wrap(self.compare_view), name="prompts_prompt_compare"),
            path("<int:pk>/revert/", wrap(require_POST(self.revert_view)), name="prompts_prompt_revert"),
            path("<int:pk>/label/", wrap(require_POST(self.label_view)), name="prompts_prompt_label"),
            path("<int:pk>/rollback/", wrap(require_POST(self.rollback_view)), name="prompts_prompt_rollback"),
            path("preview/", wrap(require_POST(self.preview_view)), name="prompts_prompt_preview"),
            *super().get_urls(),
        ]

    def _prompt(self, request, pk, action=Action.VIEW) -> Prompt:
        prompt = get_object_or_404(self.get_queryset(request), pk=pk)
        if not can(request.user, prompt.project, action):
            raise PermissionDenied
        return prompt

    def versions_view(self, request, pk):
        prompt = self._prompt(request, pk)
        records = list(prompt.history.select_related("history_user").order_by("version"))
        labels = selectors.prompt_labels_by_version(prompt=prompt)
        rows = [
            {"record": record, "labels": labels.get(record.version, []), "diff": diff.version_diff(previous, record)}
            for previous, record in zip([None, *records], records)
        ]
        context = {
            **self.admin_site.each_context(request), "opts": self.model._meta, "prompt": prompt, "title": f"Versions of {prompt.name}",
            "rows": list(reversed(rows)), "label_moves": prompt.label_moves.select_related("actor")[:50],
            "can_edit": can(request.user, prompt.project, Action.EDIT),
            "can_ship": can(request.user, prompt.project, Action.MANAGE),
        }  # fmt: skip
        return TemplateResponse(request, "admin/prompts/prompt/versions.html", context)

    def compare_view(self, request, pk):
        prompt = self._prompt(request, pk)
        try:  # typed by hand: v3, 3 or a label
            a, b = [selectors.prompt_version(prompt=prompt, **version_or_label(request.GET.get(key, ""))) for key in ("a", "b")]
        except DomainError as exc:
            messages.error(request, f"Choose two existing versions to compare: {exc.message}")
            return redirect("admin:prompts_prompt_versions", pk)
        context = {
            **self.admin_site.each_context(request), "opts": self.model._meta, "prompt": prompt,
            "title": f"{prompt.name}: version {a.version} → {b.version}", "a": a, "b": b, "diff": diff.version_diff(a, b),
        }  # fmt: skip
        return TemplateResponse(request, "admin/prompts/prompt/compare.html", context)

    def revert_view(self, request, pk):
        prompt = self._prompt(request, pk, Action.EDIT)
        return self._run(request, pk, lambda: services.prompt_revert(prompt=prompt, actor=request.user, version=int(request.POST["version"])),
                         lambda saved: f"Saved the content of version {request.POST['version']} as version {saved.version}.")  # fmt: skip

    def label_view(self, request, pk):
        prompt = self._prompt(request, pk)
        label, version = request.POST.get("label", "").strip(), request.POST.get("version", "")
        return self._run(
            request, pk,
            lambda: services.label_move(prompt=prompt, actor=request.user, label=label, version=int(version), message=request.POST.get("message", ""),
                                        override_reason=request.POST.get("override_reason", "")),
            lambda moved: f"{moved.name} now points at version {moved.version}.",
        )  # fmt: skip

    def rollback_view(self, request, pk):
        prompt = self._prompt(request, pk)
        return self._run(request, pk, lambda: services.label_rollback(prompt=prompt, actor=request.user, label=request.POST.get("label", "")),
                         lambda moved: f"Rolled {moved.name} back to version {moved.version}.")  # fmt: skip

    def _run(self, request, pk, action, success):
        try:
            result = action()
        except (ValueError, KeyError):
            messages.error(request, "Choose a version.")
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, success(result))
        return redirect("admin:prompts_prompt_versions", pk)

    def preview_view(self, request):
        """Render the form's current (unsaved) content with sample variables: the htmx preview."""
        context = {}
        try:
            candidate = Prompt(project_id=int(request.POST.get("project") or 0) or None, name=request.POST.get("name") or "preview")
            if request.POST.get("prompt_id"):
                candidate.project_id = self._prompt(request, int(request.POST["prompt_id"])).project_id
            elif candidate.project_id is None or not can(request.user, Project(pk=candidate.project_id), Action.VIEW):
                raise Invalid("Choose a project first.")
            candidate.kind = request.POST.get("kind", "text")
            candidate.template = request.POST.get("template", "")
            candidate.messages = _json(request.POST.get("messages"), [], "messages")
            candidate.variables = _json(request.POST.get("variables"), [], "variables")
            candidate.strict_variables = request.POST.get("strict_variables") == "on"
            candidate.used_variables = sorted(template_variables(candidate))
            context["used_variables"] = candidate.used_variables
            context["rendered"] = rendering.render_version(candidate, _json(request.POST.get("sample_variables"), {}, "sample variables"))
        except DomainError as exc:
            context["error"] = exc.message
        return TemplateResponse(request, "admin/prompts/prompt/render_preview.html", context)


def _json(raw, default, what):
    if not (raw or "").strip():
        return default
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise Invalid(f"The {what} are not valid JSON: {exc}.") from None

