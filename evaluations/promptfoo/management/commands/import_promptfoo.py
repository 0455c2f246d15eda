from django.core.management.base import BaseCommand, CommandError

from evaluations.promptfoo.files import FolderFiles
from evaluations.promptfoo.importer import promptfoo_suite_import
from promptlab.accounts import selectors as account_selectors
from promptlab.errors import DomainError


class Command(BaseCommand):
    help = (
        "Import a promptfoo suite (promptfooconfig.yaml and the files it refers to) as prompts, a dataset, "
        "evaluators and a draft experiment. All or nothing; prints everything created and skipped."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="The config file, or the folder holding promptfooconfig.yaml.")
        parser.add_argument("--project", required=True, help="The project's slug.")
        parser.add_argument("--name", help="The suite's name in promptlab (dataset, prompt and evaluator prefix). "
                                           "Default: from the config's description or folder.")  # fmt: skip

    def handle(self, *args, path, project, name, **options):
        try:
            report = promptfoo_suite_import(project=account_selectors.project_get(slug=project), actor=None, files=FolderFiles(path), name=name)
        except DomainError as exc:
            raise CommandError(f"Nothing was imported: {exc.message}") from None
        for line in report.lines():
            self.stdout.write(line)
        self.stdout.write(self.style.SUCCESS(f"Start it with: manage.py run_experiment {report.experiment_id}"))
