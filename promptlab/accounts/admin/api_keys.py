"""API keys in the admin: list and revoke them; creating one shows its secret once, on the
page that answers the form (never stored, not even in a message)."""

from django import forms
from django.contrib import admin, messages
from django.template import engines
from django.template.response import TemplateResponse

from promptlab.accounts import api_keys, selectors
from promptlab.accounts.access import Action, can, role_allows
from promptlab.accounts.models import ApiKey, ApiKeyScope, Project
from promptlab.errors import DomainError

CREATED_PAGE = engines["django"].from_string(
    """{% extends "admin/base_site.html" %}
{% block content %}
<h1>API key created</h1>
<p>Copy the key now: promptlab keeps only its hash and cannot show it again.</p>
<p><code id="api-key-secret" style="font-size:1.2em;user-select:all">{{ secret }}</code></p>
<p>Project <strong>{{ key.project.slug }}</strong>, scopes <strong>{{ key.scopes|join:", " }}</strong>.
Use it as <code>Authorization: Bearer &lt;key&gt;</code>.</p>
<p><a href="{{ back }}">Back to the API keys</a></p>
{% endblock %}"""
)


def _managed_projects(user) -> list:
    """The projects whose keys the user manages, in one query (the selector annotates the role)."""
    return [project for project in selectors.project_list_for(user=user) if role_allows(project.role, Action.MANAGE)]


class ApiKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=ApiKeyScope.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = ApiKey
        fields = ["project", "name", "scopes"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Admins and owners of a project manage its keys; other members see nothing here."""

    form = ApiKeyForm
    list_display = ["prefix", "name", "project", "scope_list", "created_by", "created_at", "last_used_at", "state"]
    list_filter = [("project", admin.RelatedOnlyFieldListFilter), ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["prefix", "name"]
    actions = ["revoke"]
    readonly_fields = ["prefix", "project", "name", "scope_list", "created_by", "created_at", "last_used_at", "revoked_at", "revoked_by"]

    @admin.display(description="scopes")
    def scope_list(self, key):
        return ", ".join(key.scopes)

    @admin.display(description="state")
    def state(self, key):
        return f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"

    def get_queryset(self, request):
        managed = [project.pk for project in _managed_projects(request.user)]
        return super().get_queryset(request).filter(project__in=managed).select_related("project", "created_by")

    def get_fields(self, request, obj=None):
        return ["project", "name", "scopes"] if obj is None else self.readonly_fields

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "project":
            kwargs["queryset"] = Project.objects.filter(pk__in=[p.pk for p in _managed_projects(request.user)])
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff and bool(_managed_projects(request.user))

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request) and (obj is None or can(request.user, obj.project, Action.MANAGE))

    def has_add_permission(self, request):
        return self.has_module_permission(request)

    def has_change_permission(self, request, obj=None):
        return False  # a key never changes; revoke it and make another

    def has_delete_permission(self, request, obj=None):
        return False  # revoked keys stay listed, with who revoked them

    def save_model(self, request, obj, form, change):
        key, secret = api_keys.api_key_create(
            project=form.cleaned_data["project"], actor=request.user, name=form.cleaned_data["name"],
            scopes=form.cleaned_data["scopes"],
        )  # fmt: skip
        obj.pk, obj._state.adding = key.pk, False
        request.api_key_secret = secret  # for response_add only: the admin instance is shared by all requests

    def response_add(self, request, obj, post_url_continue=None):
        key = ApiKey.objects.select_related("project").get(pk=obj.pk)
        context = {**self.admin_site.each_context(request), "key": key, "secret": request.api_key_secret, "title": "API key created",
                   "back": "../"}  # fmt: skip
        response = TemplateResponse(request, CREATED_PAGE, context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request, queryset):
        revoked = 0
        for key in queryset.select_related("project"):
            try:
                api_keys.api_key_revoke(key=key, actor=request.user)
                revoked += 1
            except DomainError as exc:
                self.message_user(request, exc.message, messages.ERROR)
        self.message_user(request, f"Revoked {revoked} key(s): they are refused from now on.", messages.SUCCESS)
