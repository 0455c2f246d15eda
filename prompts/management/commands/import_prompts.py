from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from promptlab.accounts import selectors as account_selectors
from promptlab.errors import DomainError
from prompts.yaml_io import prompts_import


class Command(BaseCommand):
    help = (
        "Import prompts from a folder of YAML files, one prompt per <name>.yaml. All or nothing: "
        "one invalid file and nothing is imported. Runs as the operator; where a project requires an approval "
        "for production moves, a file that moves production is refused."
    )

    def add_arguments(self, parser):
        parser.add_argument("folder", type=Path)
        parser.add_argument("--project", required=True, help="The project's slug.")
        parser.add_argument("--message", help='Change message of the new versions. Default: "Imported from <file name>".')

    def handle(self, *args, folder, project, message, **options):
        try:
            project = account_selectors.project_get(slug=project)
            report = prompts_import(project=project, actor=None, folder=folder, message=message)
        except DomainError as exc:
            raise CommandError(exc.message) from None
        for verb, names in (("Created", report.created), ("Updated", report.updated), ("Unchanged", report.unchanged)):
            for name in names:
                self.stdout.write(f"{verb} {name}.")
        for name, label, version in report.labels_moved:
            self.stdout.write(f"Moved {label} of {name} to version {version}.")
        total = len(report.created) + len(report.updated) + len(report.unchanged)
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported {total} prompt{'s' * (total != 1)} into {project.slug}: {len(report.created)} created, "
                f"{len(report.updated)} updated, {len(report.unchanged)} unchanged."
            )
        )
