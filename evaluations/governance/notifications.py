"""In-app notifications: a count in the top bar of every page and a list at /notifications/,
until the person marks them read."""

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from evaluations.governance.models import ApprovalRequest, Notification
from promptlab.accounts.models import Project
from promptlab.errors import Invalid


def notify(*, users, project: Project, text: str, url: str = "", approval: ApprovalRequest | None = None) -> list[Notification]:
    """One notification per user (each user once, nobody without an id)."""
    seen, rows = set(), []
    for user in users:
        if user is None or user.pk in seen:
            continue
        seen.add(user.pk)
        rows.append(Notification(user=user, project=project, approval=approval, text=text[:500], url=url[:500]))
    return Notification.objects.bulk_create(rows)


@transaction.atomic
def notifications_mark_read(*, actor, ids: list[int] | None = None) -> int:
    """Mark the actor's unread notifications read (only `ids`, when given); returns how many."""
    if actor is None or not getattr(actor, "is_authenticated", False) or actor.pk is None:
        raise Invalid("Notifications are a person's: sign in to read yours.")
    unread = Notification.objects.filter(user=actor, read_at__isnull=True)
    if ids is not None:
        unread = unread.filter(pk__in=ids)
    return unread.update(read_at=timezone.now())


def notifications_resolve(*, approval: ApprovalRequest) -> int:
    """Mark read what asked people to decide on a proposal that is decided (or withdrawn) now."""
    return Notification.objects.filter(approval=approval, read_at__isnull=True).update(read_at=timezone.now())


# --- Selectors -------------------------------------------------------------------------------


def notification_list(*, user) -> QuerySet[Notification]:
    """The user's notifications, newest first, with their project."""
    return Notification.objects.filter(user=user).select_related("project").order_by("-created_at", "-id")


def notifications_unread_count(*, user) -> int:
    return Notification.objects.filter(user=user, read_at__isnull=True).count()
