"""Governance pages: a project's approvals (propose, approve, reject, withdraw; the owner's
require-approval switch), its audit log with CSV export, and each person's notifications."""

import csv

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_GET, require_POST

from evaluations.governance import approvals, audit, notifications
from evaluations.governance.models import ApprovalRequest
from promptlab.accounts import selectors as account_selectors
from promptlab.accounts import services as account_services
from promptlab.accounts.access import Action, role_allows
from promptlab.csv_cells import csv_cell
from promptlab.errors import DomainError, Invalid
from promptlab.htmx import page_or_fragment, wants_fragment
from prompts import selectors as prompt_selectors

DECIDED_PER_PAGE = 25
AUDIT_PER_PAGE = 50
EXPORT_CHUNK = 500
NOTIFICATIONS_PER_PAGE = 25


# --- Approvals -------------------------------------------------------------------------------


@require_GET
@login_required
def approvals_page(request, slug: str):
    """Pending proposals (with approve / reject forms for admins and owners) and the decided
    ones, 25 a page; for htmx only the #approval-list fragment."""
    project = account_selectors.project_for(user=request.user, slug=slug)
    return _approvals_response(request, project)


def _approvals_response(request, project, *, error: str = "", status: int = 200):
    decided = Paginator(approvals.approvals_decided(project=project), DECIDED_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "project": project, "pending": approvals.approvals_pending(project=project), "decided": decided, "error": error,
        "can_decide": role_allows(project.role, Action.MANAGE), "can_own": role_allows(project.role, Action.OWN),
    }  # fmt: skip
    return page_or_fragment(
        request, "governance/approvals.html", context, fragment_template="governance/partials/approval-list.html", target="approval-list",
        status=status,
    )  # fmt: skip


@require_POST
@login_required
def approval_propose(request, slug: str):
    """The prompt page's "Propose for production" form: on success to the approvals page,
    else back to the prompt with the reason."""
    project = account_selectors.project_for(user=request.user, slug=slug)
    prompt = prompt_selectors.prompt_get(project=project, name=request.POST.get("prompt", ""))
    try:
        version = int(request.POST.get("version", ""))
        approval = approvals.approval_propose(prompt=prompt, actor=request.user, version=version, message=request.POST.get("message", ""))
    except ValueError:
        messages.error(request, "Choose the version to propose.")
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Proposed moving {prompt.name} production to version {approval.version}; an admin or owner decides.")
        return redirect("approvals", project.slug)
    return redirect("prompt_detail", project.slug, prompt.name)


DECISIONS = {
    "approve": lambda approval, request: approvals.approval_approve(
        approval=approval, actor=request.user, comment=request.POST.get("comment", ""),
        override_reason=request.POST.get("override_reason", ""),
    ),
    "reject": lambda approval, request: approvals.approval_reject(approval=approval, actor=request.user, comment=request.POST.get("comment", "")),
    "withdraw": lambda approval, request: approvals.approval_withdraw(approval=approval, actor=request.user),
}  # fmt: skip


@require_POST
@login_required
def approval_decide(request, slug: str, pk: int):
    """Approve, reject or withdraw a proposal. For htmx the updated #approval-list (with the
    refusal, if any, and a toast); otherwise back to the page with a message."""
    project = account_selectors.project_for(user=request.user, slug=slug)
    approval = get_object_or_404(ApprovalRequest, project=project, pk=pk)
    decision = request.POST.get("decision", "")
    error = ""
    try:
        if decision not in DECISIONS:
            raise Invalid("Choose approve, reject or withdraw.")
        decided = DECISIONS[decision](approval, request)
    except DomainError as exc:
        error = exc.message
    if request.htmx:
        response = _approvals_response(request, project, error=error, status=400 if error else 200)
        if not error:
            response["HX-Trigger"] = f'{{"approvalDecided": {{"id": {decided.pk}, "status": "{decided.status}"}}}}'
        return response
    if error:
        messages.error(request, error)
    else:
        messages.success(request, f"Proposal #{decided.pk} {decided.status}.")
    return redirect("approvals", project.slug)


@require_POST
@login_required
def approval_policy(request, slug: str):
    """The owner's switch: whether production moves only through approved proposals."""
    project = account_selectors.project_for(user=request.user, slug=slug)
    try:
        account_services.project_require_approval_set(project=project, actor=request.user, required=request.POST.get("required") == "on")
    except DomainError as exc:
        messages.error(request, exc.message)
    return redirect("approvals", project.slug)


# --- Audit log -------------------------------------------------------------------------------


class AuditFilterForm(forms.Form):
    type = forms.ChoiceField(required=False, choices=[("", "any"), *audit.KINDS.items()])
    object = forms.CharField(required=False, max_length=200, label="Object name")
    user = forms.ChoiceField(required=False)
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, project, **kwargs):
        super().__init__(*args, **kwargs)
        people = [(str(user.pk), user.email or user.get_username()) for user in audit.audit_users(project=project)]
        self.fields["user"].choices = [("", "anyone"), *people, ("operator", "(operator)")]

    def filters(self) -> audit.Filters:
        data = self.cleaned_data
        user = data["user"]
        return audit.Filters(kind=data["type"], text=data["object"].strip(), since=data["since"], until=data["until"],
                             user=user if user in ("", "operator") else int(user))  # fmt: skip


@require_GET
@login_required
def audit_log(request, slug: str):
    """The project's changes, 50 a page, filtered by kind of object, object name, person and
    dates; for htmx only the #audit-log fragment. Unreadable filters are a 400."""
    project = account_selectors.project_for(user=request.user, slug=slug)
    form = AuditFilterForm(request.GET, project=project)
    context = {"project": project, "form": form}
    if form.is_valid():
        page = Paginator(audit.audit_rows(project=project, filters=form.filters()), AUDIT_PER_PAGE).get_page(request.GET.get("page"))
        context |= {
            "page_obj": page, "entries": audit.audit_entries(page.object_list, project=project),
            "page_range": page.paginator.get_elided_page_range(page.number, on_each_side=2, on_ends=1),
        }  # fmt: skip
    return page_or_fragment(
        request, "governance/audit.html", context, fragment_template="governance/partials/audit-log.html", target="audit-log",
        status=200 if form.is_valid() else 400,
    )  # fmt: skip


class _Echo:
    def write(self, value):
        return value


CSV_HEADER = ["time", "user", "type", "object", "action", "changes", "reason"]


@require_GET
@login_required
def audit_export(request, slug: str):
    """The log as CSV, with the page's filters, every matching entry, streamed in chunks."""
    project = account_selectors.project_for(user=request.user, slug=slug)
    form = AuditFilterForm(request.GET, project=project)
    if not form.is_valid():
        return HttpResponse("These filters cannot be used: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()),
                            status=400, content_type="text/plain")  # fmt: skip
    rows = audit.audit_rows(project=project, filters=form.filters())

    def lines():
        writer = csv.writer(_Echo())
        yield writer.writerow(CSV_HEADER)
        offset = 0
        while chunk := list(rows[offset:offset + EXPORT_CHUNK]):
            for entry in audit.audit_entries(chunk, project=project):
                user = (entry.user.email or entry.user.get_username()) if entry.user else "(operator)"
                yield writer.writerow([csv_cell(value) for value in (
                    entry.at.isoformat(timespec="seconds"), user, entry.kind_label, entry.title, entry.action, entry.changes_text, entry.reason,
                )])  # fmt: skip
            offset += EXPORT_CHUNK

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{project.slug}-audit.csv"'
    return response


# --- Notifications ---------------------------------------------------------------------------


@require_GET
@login_required
def notifications_page(request):
    """The person's notifications, 25 a page. For htmx, #notification-badge (the top bar's
    unread count, which every page loads after it renders) or the #notification-list fragment."""
    if wants_fragment(request, "notification-badge"):
        unread = notifications.notifications_unread_count(user=request.user)
        return page_or_fragment(
            request, "governance/notifications.html", {"unread": unread},
            fragment_template="governance/partials/notification-badge.html", target="notification-badge",
        )  # fmt: skip
    return _notifications_response(request)


def _notifications_response(request):
    page = Paginator(notifications.notification_list(user=request.user), NOTIFICATIONS_PER_PAGE).get_page(request.GET.get("page"))
    context = {"page_obj": page, "unread": notifications.notifications_unread_count(user=request.user)}
    return page_or_fragment(
        request, "governance/notifications.html", context,
        fragment_template="governance/partials/notification-list.html", target="notification-list",
    )  # fmt: skip


@require_POST
@login_required
def notifications_read(request):
    """Mark every notification read; for htmx the updated list, told to refresh the badge."""
    notifications.notifications_mark_read(actor=request.user)
    if not request.htmx:
        return redirect("notifications")
    response = _notifications_response(request)
    response["HX-Trigger"] = "notificationsRead"
    return response
