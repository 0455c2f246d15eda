"""Evaluators in the admin, scoped to the user's projects, with their history, and which
experiments they score. Every save goes through evaluations.services, so the admin
validates a config exactly as the API and the tasks do."""

from django import forms
from django.contrib import admin, messages
from simple_history.admin import SimpleHistoryAdmin

from evaluations import gates, kinds, selectors, services
from evaluations.models import Evaluator, ExperimentEvaluator, GateDecision, PromotionGate
from promptlab.accounts import selectors as account_selectors
from promptlab.accounts.access import Action, can
from promptlab.accounts.admin.scoping import ProjectScoped
from promptlab.errors import DomainError, Invalid

FORM_FIELDS = ["project", "name", "description", "kind", "config", "weight", "threshold", "inverted", "enabled"]
SERVICE_FIELDS = FORM_FIELDS[2:]


class EvaluatorForm(forms.ModelForm):
    kind = forms.ChoiceField()
    change_message = forms.CharField(
        max_length=500, help_text="Required: what changed and why. It is kept with the version.",
        widget=forms.TextInput(attrs={"size": 80}),
    )  # fmt: skip

    class Meta:
        model = Evaluator
        fields = FORM_FIELDS

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        available = kinds.kinds()
        self.fields["kind"].choices = [(name, name) for name in sorted(available)]
        self.fields["kind"].help_text = " ".join(
            f"{name}: {getattr(kind, 'description', '')}" for name, kind in sorted(available.items())
        )

    def clean(self):
        """The service's own validation, each problem shown on its field."""
        cleaned = super().clean()
        if self.errors:
            return cleaned
        project = cleaned.get("project") or getattr(self.instance, "project", None)
        try:
            cleaned["config"] = services.evaluator_validate(
                project=project, kind=cleaned.get("kind"), config=cleaned.get("config"),
                weight=cleaned.get("weight"), threshold=cleaned.get("threshold"),
            )  # fmt: skip
        except Invalid as exc:
            for field, message in exc.details.items():
                self.add_error(field if field in self.fields else None, message)
        return cleaned


@admin.register(Evaluator)
class EvaluatorAdmin(SimpleHistoryAdmin, ProjectScoped):
    form = EvaluatorForm
    list_display = ["name", "project", "kind", "version", "enabled", "weight", "threshold", "inverted", "updated_at"]
    list_filter = [("project", admin.RelatedOnlyFieldListFilter), "kind", "enabled"]
    search_fields = ["name", "description"]
    fields = [*FORM_FIELDS, "change_message"]
    history_list_display = ["version", "kind", "history_change_reason"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("project")

    def get_readonly_fields(self, request, obj=None):
        return ["project", "name"] if obj is not None else []

    def changelist_view(self, request, extra_context=None):
        for problem in kinds.plugin_errors():
            self.message_user(request, f"Evaluator plugin {problem.name!r} ({problem.target}) failed to load: {problem.error}", messages.WARNING)  # fmt: skip
        return super().changelist_view(request, extra_context)

    def save_model(self, request, obj, form, change):
        fields = {field: form.cleaned_data[field] for field in SERVICE_FIELDS if field in form.cleaned_data}
        message = form.cleaned_data["change_message"]
        if change:
            before = Evaluator.objects.get(pk=obj.pk)
            saved = services.evaluator_update(evaluator=before, actor=request.user, message=message, **fields)
            if saved.version == before.version:
                self.message_user(request, "Scores keep their meaning, so this is still the same version.", messages.INFO)
        else:
            saved = services.evaluator_create(
                project=form.cleaned_data["project"], actor=request.user, name=form.cleaned_data["name"], message=message, **fields
            )
        obj.pk, obj.version, obj._state.adding = saved.pk, saved.version, False

    def delete_model(self, request, obj):
        services.evaluator_delete(evaluator=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for evaluator in queryset:
            services.evaluator_delete(evaluator=evaluator, actor=request.user)

    def construct_change_message(self, request, form, formsets, add=False):
        return form.cleaned_data.get("change_message", "")


class ExperimentEvaluatorForm(forms.ModelForm):
    class Meta:
        model = ExperimentEvaluator
        fields = ["experiment", "evaluator"]

    def clean(self):
        cleaned = super().clean()
        experiment, evaluator = cleaned.get("experiment"), cleaned.get("evaluator")
        if experiment and evaluator and experiment.project_id != evaluator.project_id:
            self.add_error("evaluator", f"{evaluator.name} belongs to another project than the experiment.")
        return cleaned


@admin.register(ExperimentEvaluator)
class ExperimentEvaluatorAdmin(admin.ModelAdmin):
    """Which evaluators score which experiments. Adding one scores the experiment's done runs."""

    form = ExperimentEvaluatorForm
    list_display = ["experiment", "evaluator", "project"]
    list_filter = [("experiment__project", admin.RelatedOnlyFieldListFilter)]
    actions = ["rescore"]

    def get_queryset(self, request):
        visible = account_selectors.project_list_for(user=request.user).values("pk")
        return super().get_queryset(request).filter(experiment__project__in=visible).select_related("experiment__project", "evaluator")

    @admin.display(description="project")
    def project(self, link):
        return link.experiment.project

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name in ("experiment", "evaluator"):
            editable = [p.pk for p in account_selectors.project_list_for(user=request.user) if can(request.user, p, Action.EDIT)]
            kwargs["queryset"] = db_field.related_model.objects.filter(project__in=editable)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request) and (obj is None or can(request.user, obj.experiment.project, Action.VIEW))

    def has_add_permission(self, request):
        return self.has_module_permission(request)

    def has_change_permission(self, request, obj=None):
        return False  # a link is added or removed, never changed

    def has_delete_permission(self, request, obj=None):
        return self.has_module_permission(request) and (obj is None or can(request.user, obj.experiment.project, Action.EDIT))

    def save_model(self, request, obj, form, change):
        experiment = obj.experiment
        current = list(selectors.evaluators_of_experiment(experiment_id=experiment.pk, enabled_only=False))
        services.experiment_evaluators_set(experiment=experiment, actor=request.user, evaluators=[*current, obj.evaluator])
        obj.pk = ExperimentEvaluator.objects.get(experiment=experiment, evaluator=obj.evaluator).pk

    def delete_model(self, request, obj):
        self.delete_queryset(request, ExperimentEvaluator.objects.filter(pk=obj.pk))

    def delete_queryset(self, request, queryset):
        for link in queryset.select_related("experiment__project"):
            current = selectors.evaluators_of_experiment(experiment_id=link.experiment_id, enabled_only=False)
            remaining = [evaluator for evaluator in current if evaluator.pk != link.evaluator_id]
            services.experiment_evaluators_set(experiment=link.experiment, actor=request.user, evaluators=remaining)

    @admin.action(description="Re-score their experiments with the selected evaluators (no model calls for the runs)")
    def rescore(self, request, queryset):
        chosen: dict = {}
        for link in queryset.select_related("experiment__project", "evaluator"):
            chosen.setdefault(link.experiment, []).append(link.evaluator)
        for experiment, evaluators in chosen.items():
            try:
                runs = services.experiment_rescore(experiment=experiment, actor=request.user, evaluators=evaluators)
            except DomainError as exc:
                self.message_user(request, f"{experiment}: {exc.message}", messages.ERROR)
            else:
                names = ", ".join(evaluator.name for evaluator in evaluators)
                self.message_user(request, f"{experiment}: re-scoring {runs} done runs with {names} in the background.", messages.SUCCESS)


class PromotionGateForm(forms.ModelForm):
    class Meta:
        model = PromotionGate
        fields = ["prompt", "dataset", "evaluators", "baseline_label", "min_pass_rate", "alpha", "no_evaluator_regression"]

    def clean(self):
        cleaned = super().clean()
        prompt = cleaned.get("prompt")
        if prompt is not None:
            for field in ("dataset", "evaluators"):
                chosen = cleaned.get(field)
                if any(other.project_id != prompt.project_id for other in ([chosen] if field == "dataset" and chosen else chosen or [])):
                    self.add_error(field, "Choose from the prompt's own project.")
        return cleaned


@admin.register(PromotionGate)
class PromotionGateAdmin(admin.ModelAdmin):
    """A prompt's promotion gate; saving goes through evaluations.gates, and an action starts
    the gate experiment on the prompt's newest version."""

    form = PromotionGateForm
    list_display = ["prompt", "project", "dataset", "baseline_label", "min_pass_rate", "alpha", "updated_at"]
    list_filter = [("prompt__project", admin.RelatedOnlyFieldListFilter)]
    actions = ["start_gate_experiment"]

    def get_queryset(self, request):
        visible = account_selectors.project_list_for(user=request.user).values("pk")
        return super().get_queryset(request).filter(prompt__project__in=visible).select_related("prompt__project", "dataset")

    @admin.display(description="project")
    def project(self, gate):
        return gate.prompt.project

    def _managed(self, request) -> list[int]:
        return [p.pk for p in account_selectors.project_list_for(user=request.user) if can(request.user, p, Action.MANAGE)]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        kwargs["queryset"] = db_field.related_model.objects.filter(project__in=self._managed(request))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        kwargs["queryset"] = Evaluator.objects.filter(project__in=self._managed(request))
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request) and (obj is None or can(request.user, obj.prompt.project, Action.VIEW))

    def has_add_permission(self, request):
        return self.has_module_permission(request)

    def has_change_permission(self, request, obj=None):
        return self.has_module_permission(request) and (obj is None or can(request.user, obj.prompt.project, Action.MANAGE))

    has_delete_permission = has_change_permission

    def save_model(self, request, obj, form, change):
        fields = {field: form.cleaned_data[field] for field in ["dataset", "evaluators", "baseline_label", "min_pass_rate", "alpha",
                                                                "no_evaluator_regression"]}  # fmt: skip
        saved = gates.gate_set(prompt=form.cleaned_data["prompt"], actor=request.user, **{**fields, "evaluators": list(fields["evaluators"])})
        obj.pk, obj._state.adding = saved.pk, False

    def save_related(self, request, form, formsets, change):
        """The evaluators were set by gate_set."""

    @admin.action(description="Start the gate experiment on each prompt's newest version")
    def start_gate_experiment(self, request, queryset):
        for gate in queryset.select_related("prompt__project"):
            try:
                experiment = gates.gate_experiment_start(prompt=gate.prompt, version=gate.prompt.version, actor=request.user)
            except DomainError as exc:
                self.message_user(request, f"{gate.prompt}: {exc.message}", messages.ERROR)
            else:
                self.message_user(request, f"{gate.prompt}: started {experiment} (live progress at /experiments/{experiment.pk}/).", messages.SUCCESS)


@admin.register(GateDecision)
class GateDecisionAdmin(admin.ModelAdmin):
    """Why production moved: each gate verdict or override, read-only."""

    list_display = ["prompt", "version", "passed", "reason", "override_reason", "actor", "decided_at"]
    list_filter = [("prompt__project", admin.RelatedOnlyFieldListFilter), "passed"]

    def get_queryset(self, request):
        visible = account_selectors.project_list_for(user=request.user).values("pk")
        return super().get_queryset(request).filter(prompt__project__in=visible).select_related("prompt", "actor")

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request) and (obj is None or can(request.user, obj.prompt.project, Action.VIEW))

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
