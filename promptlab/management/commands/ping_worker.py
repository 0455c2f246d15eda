from django.core.management.base import BaseCommand, CommandError

from promptlab import workers
from promptlab.errors import Unavailable


class Command(BaseCommand):
    help = "Send a ping through the broker and wait for a worker to write its answer to the database."

    def add_arguments(self, parser):
        parser.add_argument("--timeout", type=float, default=10.0, help="Seconds to wait (default 10).")

    def handle(self, *args, timeout, **options):
        ping = workers.worker_ping_send()
        try:
            ping = workers.worker_ping_wait(ping_id=ping.id, timeout=timeout)
        except Unavailable as exc:
            raise CommandError(exc.message) from None
        latency_ms = (ping.answered_at - ping.sent_at).total_seconds() * 1000
        self.stdout.write(f"Worker {ping.answered_by} answered in {latency_ms:.0f} ms.")
