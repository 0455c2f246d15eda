"""Datasets and experiments in the admin, scoped to the user's projects; actions call the services."""

from django.contrib import admin, messages
from django.utils.html import format_html

from experiments import services
from experiments.models import Dataset, Experiment, ExperimentStatus, Variant
from promptlab.accounts.admin.scoping import ProjectScoped, ScopedChoices
from promptlab.errors import DomainError
from promptlab.llm.models import ModelEndpoint


@admin.register(Dataset)
class DatasetAdmin(ProjectScoped):
    list_display = ["name", "project", "description", "created_at"]
    search_fields = ["name"]


VARIANT_FIELDS = ["name", "prompt", "label", "version", "endpoint", "params"]


class VariantInline(ScopedChoices, admin.TabularInline):
    model = Variant
    fields = VARIANT_FIELDS
    extra = 2
    min_num, validate_min = 1, True

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "endpoint":
            kwargs["queryset"] = ModelEndpoint.objects.filter(enabled=True)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_change_permission(self, request, obj=None):
        return obj is None or obj.status == ExperimentStatus.DRAFT

    has_add_permission = has_delete_permission = has_change_permission


@admin.register(Experiment)
class ExperimentAdmin(ProjectScoped):
    list_display = ["name", "project", "dataset", "status", "progress", "spent_usd", "budget_usd", "created_at"]
    list_filter = [("project", admin.RelatedOnlyFieldListFilter), "status"]
    fields = ["project", "name", "dataset", "repeats", "concurrency", "budget_usd"]
    inlines = [VariantInline]
    actions = ["start", "cancel", "resume", "retry_errors"]

    @admin.display(description="progress")
    def progress(self, experiment):
        return format_html('<a href="/experiments/{}/">live progress</a>', experiment.pk)

    def get_readonly_fields(self, request, obj=None):
        return self.fields if obj is not None and obj.status != ExperimentStatus.DRAFT else []

    def save_model(self, request, obj, form, change):
        """Saved with its variants in save_related, through the services."""

    def save_related(self, request, form, formsets, change):
        if change and form.instance.status != ExperimentStatus.DRAFT:
            return  # nothing of a started experiment is editable
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
        return "Saved the draft and its variants." if add or form.instance.status == ExperimentStatus.DRAFT else ""

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
                usd = f"${forecast.usd:.4f}" if forecast.usd is not None else "an unknown amount"
                self.message_user(request, f"{experiment}: started {forecast.calls} calls, forecast {usd}.", messages.SUCCESS)

    @admin.action(description="Cancel (pending runs; runs in flight finish)")
    def cancel(self, request, queryset):
        self._each(request, queryset, services.experiment_cancel, "cancelled")

    @admin.action(description="Resume cancelled runs")
    def resume(self, request, queryset):
        self._each(request, queryset, services.experiment_resume, "resumed")

    @admin.action(description="Retry failed runs only")
    def retry_errors(self, request, queryset):
        self._each(request, queryset, services.experiment_retry_errors, "retrying failed runs")
