from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import models, transaction

from prompts import catalog, limits, selectors, services
from prompts.access import Action, can
from prompts.models import Membership, ModelEndpoint, Project
from promptlab.errors import DomainError


class MembershipForm(forms.ModelForm):
    email = forms.EmailField(help_text="Someone without an account gets an email invitation.")

    class Meta:
        model = Membership
        fields = ["role"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["email"].initial = self.instance.user.email
            self.fields["email"].disabled = True
            self.fields["email"].help_text = ""


class _DryRun(Exception):
    pass


class MembershipFormSet(forms.BaseInlineFormSet):
    """Applies the changes through the services; `clean` applies them once in a rolled-back
    savepoint so that a refused change shows on the form and saves nothing."""

    def clean(self):
        super().clean()
        if any(self.errors):
            return
        try:
            with transaction.atomic():
                self.apply(actor=self.actor)
                raise _DryRun
        except _DryRun:
            pass
        except DomainError as exc:
            raise ValidationError(exc.message) from None

    def apply(self, *, actor):
        """Write the changes through the services, recording them as formset.save() would
        so that the admin's history names them."""
        project = self.instance
        self.new_objects, self.changed_objects, self.deleted_objects = [], [], []
        for form in self.initial_forms:
            if self._should_delete_form(form):
                services.membership_remove(project=project, user=form.instance.user, actor=actor)
                self.deleted_objects.append(form.instance)
            elif form.has_changed():
                membership = services.membership_set(
                    project=project, user=form.instance.user, role=form.cleaned_data["role"], actor=actor
                )
                self.changed_objects.append((membership, form.changed_data))
        for form in self.extra_forms:
            if form.has_changed() and not self._should_delete_form(form):
                user, _ = services.user_invite(email=form.cleaned_data["email"])
                membership = services.membership_set(
                    project=project, user=user, role=form.cleaned_data["role"], actor=actor
                )
                self.new_objects.append(membership)


class MembershipInline(admin.TabularInline):
    model = Membership
    form = MembershipForm
    formset = MembershipFormSet
    fields = ["email", "role"]
    extra = 1

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        formset.actor = request.user
        return formset

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user")

    # `obj` is the project; without one (the inline's queryset) the project admin has
    # already decided what the user may see.
    def has_view_permission(self, request, obj=None):
        return obj is None or can(request.user, obj, Action.VIEW)

    def has_change_permission(self, request, obj=None):
        return obj is None or can(request.user, obj, Action.MANAGE)

    has_add_permission = has_change_permission
    has_delete_permission = has_change_permission


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    """Members see their own projects only; what they may change follows their role."""

    list_display = ["name", "slug", "role", "member_count", "created_at"]
    search_fields = ["name", "slug"]
    inlines = [MembershipInline]

    def get_queryset(self, request):
        return selectors.project_list_for(user=request.user)

    def get_inlines(self, request, obj):
        # On creation the creator becomes the owner; members are added afterwards.
        return self.inlines if obj is not None else []

    def get_readonly_fields(self, request, obj=None):
        return ["slug"] if obj is not None else []

    def get_prepopulated_fields(self, request, obj=None):
        return {"slug": ["name"]} if obj is None else {}

    @admin.display(description="your role")
    def role(self, project):
        return project.role

    @admin.display(description="members")
    def member_count(self, project):
        return project.member_count

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request) and (obj is None or can(request.user, obj, Action.VIEW))

    def has_add_permission(self, request):
        return self.has_module_permission(request)

    def has_change_permission(self, request, obj=None):
        return self.has_module_permission(request) and (obj is None or can(request.user, obj, Action.MANAGE))

    def has_delete_permission(self, request, obj=None):
        return obj is not None and can(request.user, obj, Action.OWN)

    def save_model(self, request, obj, form, change):
        if change:
            services.project_rename(project=obj, name=obj.name, actor=request.user)
            return
        project = services.project_create(slug=obj.slug, name=obj.name, actor=request.user)
        obj.pk, obj.created_at = project.pk, project.created_at
        obj._state.adding = False

    def delete_model(self, request, obj):
        services.project_delete(project=obj, actor=request.user)

    def save_formset(self, request, form, formset, change):
        formset.apply(actor=request.user)


@admin.register(ModelEndpoint)
class ModelEndpointAdmin(admin.ModelAdmin):
    """The model catalog: every member may look, superusers edit (it is shared by all projects)."""

    list_display = ["label", "name", "model", "enabled", "prices", "limits", "circuit_breaker"]
    list_filter = ["enabled"]
    search_fields = ["name", "display_name", "model"]
    actions = ["reset_circuit_breaker"]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    fieldsets = [
        (None, {"fields": ["name", "display_name", "model", "enabled"]}),
        ("Connection", {"fields": ["api_base", "api_key_env", "timeout_seconds", "max_retries"]}),
        ("Prices (USD per token; leave both empty for LiteLLM's price list)", {"fields": ["input_cost_per_token", "output_cost_per_token"]}),
        ("Limits shared by all workers", {"fields": ["requests_per_minute", "max_concurrency"]}),
    ]  # fmt: skip

    @admin.display(description="endpoint", ordering="display_name")
    def label(self, endpoint):
        return str(endpoint)

    @admin.display(description="USD per 1M tokens (in / out)")
    def prices(self, endpoint):
        prices = catalog.prices_per_token(endpoint)
        if prices is None:
            return "unknown"
        source = "" if endpoint.input_cost_per_token is not None or endpoint.is_demo else " (LiteLLM)"
        per_million = [format((price * 1_000_000).normalize(), "f") for price in prices]
        return f"{per_million[0]} / {per_million[1]}{source}"

    @admin.display(description="limits")
    def limits(self, endpoint):
        rpm = f"{endpoint.requests_per_minute}/min" if endpoint.requests_per_minute else "no rate limit"
        concurrency = f"{endpoint.max_concurrency} at once" if endpoint.max_concurrency else "no concurrency limit"
        return f"{rpm}, {concurrency}"

    @admin.display(description="circuit breaker")
    def circuit_breaker(self, endpoint):
        return str(limits.breaker_state(endpoint))

    @admin.action(description="Reset the circuit breaker of the selected endpoints")
    def reset_circuit_breaker(self, request, queryset):
        for endpoint in queryset:
            limits.breaker_close(endpoint)
        self.message_user(request, f"Reset {len(queryset)} circuit breaker(s).", messages.SUCCESS)

    def get_readonly_fields(self, request, obj=None):
        return ["name"] if obj is not None else []

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request)

    def has_add_permission(self, request):
        return request.user.is_active and request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return self.has_add_permission(request)

    def has_delete_permission(self, request, obj=None):
        return self.has_add_permission(request)

    def save_model(self, request, obj, form, change):
        fields = {field: form.cleaned_data[field] for field in services.ENDPOINT_FIELDS if field in form.cleaned_data}
        saved, _ = services.endpoint_save(name=obj.name, actor=request.user, **fields)
        obj.pk, obj._state.adding = saved.pk, False
