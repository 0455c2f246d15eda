import json
import sys

from django.core.management.base import BaseCommand, CommandError

from evaluations.promptfoo.results import promptfoo_results
from experiments.models import Experiment
from promptlab.errors import DomainError


class Command(BaseCommand):
    help = (
        "Write an experiment's results as promptfoo's JSON output (results.results[] with success, score and "
        "gradingResult.componentResults), with promptfoo's per-test verdicts, for scripts that read promptfoo output."
    )

    def add_arguments(self, parser):
        parser.add_argument("experiment_id", type=int)
        parser.add_argument("-o", "--output", help="The file to write; default: standard output.")
        parser.add_argument("--partial", action="store_true", help="Export before every run is made and scored (those are errors).")
        parser.add_argument("--fail-on-error", action="store_true", help="Exit with status 100 when a test failed or errored, as promptfoo eval does.")  # fmt: skip

    def handle(self, *args, experiment_id, output, partial, fail_on_error, **options):
        experiment = Experiment.objects.select_related("project", "dataset").filter(pk=experiment_id).first()
        if experiment is None:
            raise CommandError(f"No experiment with id {experiment_id}.")
        try:
            results = promptfoo_results(experiment=experiment, partial=partial)
        except DomainError as exc:
            raise CommandError(exc.message) from None
        text = json.dumps(results, ensure_ascii=False, indent=2, default=str) + "\n"
        if output:
            try:
                with open(output, "w", encoding="utf-8") as file:
                    file.write(text)
            except OSError as exc:
                raise CommandError(f"Cannot write {output}: {exc.strerror or exc}.") from None
        else:
            self.stdout.write(text, ending="")
        stats = results["results"]["stats"]
        self.stderr.write(f"{stats['successes']} passed, {stats['failures']} failed, {stats['errors']} errors.")
        if fail_on_error and (stats["failures"] or stats["errors"]):
            sys.exit(100)
