import sys
import threading
import time

from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from experiments import services
from experiments.models import Experiment, ExperimentStatus
from promptlab.errors import DomainError

BAR = 30


class Command(BaseCommand):
    help = (
        "Start an experiment if it is a draft (after printing its forecast), then show a progress bar "
        "until it finishes. Exits with status 1 if any run failed."
    )

    def add_arguments(self, parser):
        parser.add_argument("experiment_id", type=int)
        parser.add_argument("--inline", action="store_true", help="Run the calls in this process instead of waiting for workers.")
        parser.add_argument("--timeout", type=float, default=None, help="Give up waiting after this many seconds.")

    def handle(self, *args, experiment_id, inline, timeout, **options):
        experiment = Experiment.objects.filter(pk=experiment_id).first()
        if experiment is None:
            raise CommandError(f"No experiment with id {experiment_id}.")
        try:
            if experiment.status == ExperimentStatus.DRAFT:
                forecast = services.experiment_forecast(experiment)
                usd = f"${forecast.usd:.4f}" if forecast.usd is not None else "unknown (a model has no price)"
                self.stdout.write(f"{forecast.calls} calls, about {forecast.prompt_tokens + forecast.completion_tokens} tokens, {usd}.")
                services.experiment_start(experiment=experiment, actor=None)
        except DomainError as exc:
            raise CommandError(exc.message) from None
        drain = threading.Thread(target=_drain, args=[experiment.pk], daemon=True) if inline else None
        if drain:
            drain.start()
        deadline = time.monotonic() + timeout if timeout else None
        while True:
            experiment.refresh_from_db()
            counts = services.experiment_counts(experiment)
            finished = counts["done"] + counts["failed"] + counts["skipped"] + counts["cancelled"]
            filled = BAR * finished // max(counts["total"], 1)
            self.stdout.write(
                f"\r[{'#' * filled}{'.' * (BAR - filled)}] {finished}/{counts['total']} "
                f"done {counts['done']} failed {counts['failed']} skipped {counts['skipped']} ${counts['spent_usd']:.4f}",
                ending="",
            )
            self.stdout.flush()
            if experiment.status != ExperimentStatus.RUNNING:
                break
            if deadline and time.monotonic() > deadline:
                self.stdout.write("")
                raise CommandError("Timed out waiting: is a worker running (celery -A promptlab worker)?")
            time.sleep(0.5)
        self.stdout.write("")
        if drain:
            drain.join(timeout=30)
        if counts["failed"]:
            self.stderr.write(f"{counts['failed']} run(s) failed; `retry errors` runs only those again.")
            sys.exit(1)


def _drain(experiment_id: int) -> None:
    try:
        services.experiment_drain(experiment_id=experiment_id)
    finally:
        connection.close()  # the thread's own connection; nothing else would close it
