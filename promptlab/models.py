import uuid

from django.db import models


class WorkerPing(models.Model):
    """A round trip through the broker to a worker and back to the database.

    It proves more than Celery's own ping: the worker is consuming the queue *and* can
    write to the database the web process reads.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    sent_at = models.DateTimeField(auto_now_add=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    answered_by = models.CharField(max_length=255, blank=True, help_text="Hostname of the worker that answered.")

    class Meta:
        ordering = ["-sent_at"]

    def __str__(self):
        return f"ping {self.id} ({'answered by ' + self.answered_by if self.answered_at else 'waiting'})"
