from django.urls import path

from evaluations.governance import views

urlpatterns = [
    path("projects/<slug:slug>/approvals/", views.approvals_page, name="approvals"),
    path("projects/<slug:slug>/approvals/propose/", views.approval_propose, name="approval_propose"),
    path("projects/<slug:slug>/approvals/policy/", views.approval_policy, name="approval_policy"),
    path("projects/<slug:slug>/approvals/<int:pk>/decide/", views.approval_decide, name="approval_decide"),
    path("projects/<slug:slug>/audit/", views.audit_log, name="audit_log"),
    path("projects/<slug:slug>/audit/export.csv", views.audit_export, name="audit_export"),
    path("notifications/", views.notifications_page, name="notifications"),
    path("notifications/read/", views.notifications_read, name="notifications_read"),
]
