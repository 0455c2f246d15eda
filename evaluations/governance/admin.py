"""Webhooks in the admin, for the admins and owners of each project: register one (its secret
is shown once, on the page that answers the form), change, rotate or delete it, and read the
delivery log, attempt by attempt. Every write goes through evaluations.governance.webhooks."""

from django import forms
from django.contrib import admin, messages
from django.db.models import OuterRef, Subquery
from django.template import engines
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from evaluations.governance import webhooks
from evaluations.governance.models import Webhook, WebhookAttempt, WebhookDelivery, WebhookEvent
from promptlab.accounts import selectors as account_selectors
from promptlab.accounts.access import Action, can, role_allows
from promptlab.accounts.models import Project
from promptlab.errors import DomainError

SECRET_PAGE = engines["django"].from_string(
    """{% extends "admin/base_site.html" %}
{% block content %}
<h1>{{ title }}</h1>
<p>Copy the secret now: it is not shown again. Receivers use it to check the
<code>X-Promptlab-Signature</code> header of every delivery (see the documentation, docs/user-guide/shipping.md, "Webhooks").</p>
{% for webhook, secret in secrets %}
<p>{{ webhook.name }} (<code>{{ webhook.url }}</code>):<br><code class="webhook-secret" style="font-size:1.2em;user-select:all">{{ secret }}</code></p>
{% endfor %}
<p><a href="{{ back }}">Back to the webhooks</a></p>
{% endblock %}"""
)


def _managed_projects(user) -> list:
    return [project for project in account_selectors.project_list_for(user=user) if role_allows(project.role, Action.MANAGE)]


def _secret_page(request, admin_site, title: str, secrets: list) -> TemplateResponse:
    context = {**admin_site.each_context(request), "title": title, "secrets": secrets, "back": reverse("admin:governance_webhook_changelist")}
    response = TemplateResponse(request, SECRET_PAGE, context)
    response["Cache-Control"] = "no-store"
    return response


class WebhookForm(forms.ModelForm):
    url = forms.URLField(max_length=500, assume_scheme="https", help_text=Webhook._meta.get_field("url").help_text)
    events = forms.MultipleChoiceField(choices=WebhookEvent.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = Webhook
        fields = ["project", "name", "url", "events", "enabled"]


class ManagedOnly:
    """Admins and owners of a project see and change its webhooks; other members see nothing."""

    project_path = "project"

    def get_queryset(self, request):
        managed = [project.pk for project in _managed_projects(request.user)]
        return super().get_queryset(request).filter(**{f"{self.project_path}__in": managed})

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff and bool(_managed_projects(request.user))

    def _project(self, obj):
        for part in self.project_path.split("__"):
            obj = getattr(obj, part)
        return obj

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request) and (obj is None or can(request.user, self._project(obj), Action.MANAGE))


@admin.register(Webhook)
class WebhookAdmin(ManagedOnly, admin.ModelAdmin):
    form = WebhookForm
    list_display = ["name", "project", "url", "event_list", "enabled", "deliveries"]
    list_filter = [("project", admin.RelatedOnlyFieldListFilter), "enabled"]
    list_select_related = ["project"]
    search_fields = ["name", "url"]
    actions = ["rotate_secret"]

    @admin.display(description="events")
    def event_list(self, webhook):
        return ", ".join(webhook.events)

    @admin.display(description="delivery log")
    def deliveries(self, webhook):
        return format_html('<a href="{}?webhook__id__exact={}">deliveries</a>', reverse("admin:governance_webhookdelivery_changelist"), webhook.pk)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "project":
            kwargs["queryset"] = Project.objects.filter(pk__in=[p.pk for p in _managed_projects(request.user)])
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return ["project"] if obj is not None else []

    def has_add_permission(self, request):
        return self.has_module_permission(request)

    has_change_permission = has_delete_permission = ManagedOnly.has_view_permission

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if change:
            webhooks.webhook_update(webhook=obj, actor=request.user, name=data["name"], url=data["url"], events=data["events"],
                                    enabled=data["enabled"])  # fmt: skip
            return
        webhook, secret = webhooks.webhook_create(project=data["project"], actor=request.user, name=data["name"], url=data["url"],
                                                  events=data["events"], enabled=data["enabled"])  # fmt: skip
        obj.pk, obj._state.adding = webhook.pk, False
        request.webhook_secret = secret  # for response_add only: the admin instance is shared by all requests

    def response_add(self, request, obj, post_url_continue=None):
        return _secret_page(request, self.admin_site, "Webhook created", [(obj, request.webhook_secret)])

    def delete_model(self, request, obj):
        webhooks.webhook_delete(webhook=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for webhook in queryset.select_related("project"):
            webhooks.webhook_delete(webhook=webhook, actor=request.user)

    @admin.action(description="Rotate the secret of the selected webhooks")
    def rotate_secret(self, request, queryset):
        rotated = []
        for webhook in queryset.select_related("project"):
            try:
                rotated.append(webhooks.webhook_secret_rotate(webhook=webhook, actor=request.user))
            except DomainError as exc:
                self.message_user(request, exc.message, messages.ERROR)
        return _secret_page(request, self.admin_site, "New webhook secrets", rotated) if rotated else None


class ReadOnly:
    """The log is written by the deliveries only."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class WebhookAttemptInline(ReadOnly, admin.TabularInline):
    model = WebhookAttempt
    fields = readonly_fields = ["number", "started_at", "duration_ms", "status_code", "error", "response_excerpt"]
    extra = 0

    def has_view_permission(self, request, obj=None):
        return True  # the delivery's admin has decided who sees the delivery


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnly, ManagedOnly, admin.ModelAdmin):
    """The delivery log: each event sent to each webhook, and every attempt."""

    project_path = "webhook__project"
    list_display = ["created_at", "webhook", "event", "status", "attempts", "last_status_code", "next_attempt_at"]
    list_filter = ["status", "event", ("webhook", admin.RelatedOnlyFieldListFilter)]
    list_select_related = ["webhook"]
    fields = readonly_fields = ["id", "webhook", "event", "event_id", "status", "attempts", "next_attempt_at", "created_at",
                                "finished_at", "payload"]  # fmt: skip
    inlines = [WebhookAttemptInline]
    actions = ["redeliver"]

    def get_queryset(self, request):
        last = WebhookAttempt.objects.filter(delivery=OuterRef("pk")).order_by("-number").values("status_code")[:1]
        return super().get_queryset(request).select_related("webhook__project").annotate(last_status_code=Subquery(last))

    @admin.display(description="last status")
    def last_status_code(self, delivery):
        return delivery.last_status_code or "—"

    @admin.action(description="Deliver the selected events again")
    def redeliver(self, request, queryset):
        sent = 0
        for delivery in queryset:
            try:
                webhooks.webhook_redeliver(delivery=delivery, actor=request.user)
                sent += 1
            except DomainError as exc:
                self.message_user(request, f"{delivery}: {exc.message}", messages.ERROR)
        if sent:
            self.message_user(request, f"Sending {sent} event(s) again, as new deliveries.", messages.SUCCESS)
