"""Datasets and experiments in the admin, scoped to the user's projects; actions call the services."""

from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html

from experiments import selectors, services
from experiments.models import Dataset, Experiment, ExperimentStatus, Variant
from promptlab.accounts.admin.scoping import ProjectScoped, ScopedChoices
from promptlab.errors import DomainError, Invalid
from promptlab.llm.models import ModelEndpoint
from promptlab.money import usd
from prompts.versions import reads_as_version, version_ref


@admin.register(Dataset)
class DatasetAdmin(ProjectScoped):
    list_display = ["name", "project", "description", "created_at"]
    search_fields = ["name"]


VARIANT_FIELDS = ["name", "prompt", "label", "version", "endpoint", "params"]


class VariantForm(forms.ModelForm):
    """The version as people type it, v3 or 3, in either box: a label typed so is that version."""

    version = forms.CharField(required=False, max_length=20, help_text="v3 or 3. Empty: the label's version, read at start.")

    def clean_version(self) -> int | None:
        text = self.cleaned_data["version"].strip()
        try:
            number = version_ref(text) if text else None
        except Invalid as exc:
            raise forms.ValidationError(exc.message) from None
        if text and number is None:
            raise forms.ValidationError(f"{text!r} is not a version: type v3 or 3, or put a label in the label box.")
        return number

    def clean(self):
        cleaned = super().clean()
        label = cleaned.get("label") or ""
        if cleaned.get("version") is None and reads_as_version(label):
            try:
                cleaned["version"], cleaned["label"] = version_ref(label), ""
            except Invalid as exc:
                self.add_error("label", exc.message)
        return cleaned


class VariantInline(ScopedChoices, admin.TabularInline):
    model = Variant
    form = VariantForm
    fields = ["shown_as", *VARIANT_FIELDS]
    readonly_fields = ["shown_as"]
    extra = 2
    min_num, validate_min = 1, True

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("prompt", "endpoint")

    @admin.display(description="shown as")
    def shown_as(self, variant: Variant) -> str:
        return variant.display if variant.pk else "—"

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "endpoint":
            kwargs["queryset"] = ModelEndpoint.objects.filter(enabled=True)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_change_permission(self, request, obj=None):
        return obj is None or obj.status == ExperimentStatus.DRAFT

    has_add_permission = has_delete_permission = has_change_permission


@admin.register(Experiment)
class ExperimentAdmin(ProjectScoped):
    list_display = ["name", "project", "dataset", "status", "progress", "spent", "budget_usd", "created_at"]
    list_filter = [("project", admin.RelatedOnlyFieldListFilter), "status"]
    fields = ["project", "name", "dataset", "repeats", "concurrency", "cache_responses", "budget_usd"]
    inlines = [VariantInline]
    actions = ["start", "cancel", "resume", "retry_errors"]

    def get_queryset(self, request):
        return selectors.with_spent(super().get_queryset(request))

    @admin.display(description="spent", ordering="spent")
    def spent(self, experiment) -> str:
        return usd(experiment.spent)

    @admin.display(description="progress")
    def progress(self, experiment):
        return format_html('<a href="/experiments/{}/">live progress</a>', experiment.pk)

    def get_readonly_fields(self, request, obj=None):
        # Once started, only the budget may change: raised, then Resume runs what it skipped.
        if obj is None or obj.status == ExperimentStatus.DRAFT:
            return []
        return [field for field in self.fields if field != "budget_usd"]

    def save_model(self, request, obj, form, change):
        """Saved with its variants in save_related, through the services."""

    def save_related(self, request, form, formsets, change):
        if change and form.instance.status != ExperimentStatus.DRAFT:
            if "budget_usd" in form.changed_data:
                budget = form.cleaned_data["budget_usd"]
                services.experiment_budget_set(experiment=form.instance, actor=request.user, budget_usd=budget)
            return
        variants = [
            {field: variant.cleaned_data.get(field) for field in VARIANT_FIELDS}
            for formset in formsets for variant in formset.forms
            if variant.cleaned_data and not variant.cleaned_data.get("DELETE")
        ]  # fmt: skip
        fields = {field: form.cleaned_data[field] for field in services.DRAFT_FIELDS}
        if change:
            saved = services.experiment_update(experiment=form.instance, actor=request.user, variants=variants, **fields)
        else:
            saved = services.experiment_create(project=form.cleaned_data["project"], actor=request.user, variants=variants, **fields)
        form.instance.pk, form.instance._state.adding = saved.pk, False

    def construct_change_message(self, request, form, formsets, add=False):
        if add or form.instance.status == ExperimentStatus.DRAFT:
            return "Saved the draft and its variants."
        return "Changed the budget." if "budget_usd" in form.changed_data else ""

    def _each(self, request, queryset, action, done: str):
        for experiment in queryset:
            try:
                action(experiment=experiment, actor=request.user)
            except DomainError as exc:
                self.message_user(request, f"{experiment}: {exc.message}", messages.ERROR)
            else:
                self.message_user(request, f"{experiment}: {done}.", messages.SUCCESS)

    @admin.action(description="Start (freezes versions, creates the runs)")
    def start(self, request, queryset):
        for experiment in queryset:
            try:
                forecast = services.experiment_forecast(experiment)
                services.experiment_start(experiment=experiment, actor=request.user)
            except DomainError as exc:
                self.message_user(request, f"{experiment}: {exc.message}", messages.ERROR)
            else:
                self.message_user(request, f"{experiment}: started {forecast.calls} calls, forecast {usd(forecast.usd)}.", messages.SUCCESS)

    @admin.action(description="Cancel (pending runs; runs in flight finish)")
    def cancel(self, request, queryset):
        self._each(request, queryset, services.experiment_cancel, "cancelled")

    @admin.action(description="Resume cancelled runs, and runs skipped for the budget (raise it first)")
    def resume(self, request, queryset):
        self._each(request, queryset, services.experiment_resume, "resumed")

    @admin.action(description="Retry failed runs only")
    def retry_errors(self, request, queryset):
        self._each(request, queryset, services.experiment_retry_errors, "retrying failed runs")
