from django.contrib import admin, messages
from django.db import models

from promptlab.llm import catalog, limits, services
from promptlab.llm.models import ModelEndpoint


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
