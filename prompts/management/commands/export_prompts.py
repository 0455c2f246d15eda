from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from promptlab.accounts import selectors as account_selectors
from promptlab.errors import DomainError
from prompts.versions import reads_as_version
from prompts.yaml_io import prompts_export


class Command(BaseCommand):
    help = (
        "Write every prompt of a project to <folder>/<name>.yaml: its latest version, or with --label "
        "the version that label points at. Existing files of the same name are overwritten."
    )

    def add_arguments(self, parser):
        parser.add_argument("folder", type=Path)
        parser.add_argument("--project", required=True, help="The project's slug.")
        parser.add_argument("--label", help="Export the version this label points at, e.g. production.")

    def handle(self, *args, folder, project, label, **options):
        if label and reads_as_version(label):
            raise CommandError(f"--label takes a label such as production; {label!r} is a version number, and every prompt has its own.")
        try:
            project = account_selectors.project_get(slug=project)
            paths = prompts_export(project=project, folder=folder, label=label)
        except DomainError as exc:
            raise CommandError(exc.message) from None
        except OSError as exc:
            raise CommandError(f"Could not write to {folder}: {exc.strerror or exc}.") from None
        if label and not paths:
            raise CommandError(f"No prompt of {project.slug} has the label {label!r}; nothing was exported.")
        for path in paths:
            self.stdout.write(f"Wrote {path}.")
        which = f"the {label} version" if label else "the latest version"
        self.stdout.write(
            self.style.SUCCESS(f"Exported {which} of {len(paths)} prompt{'s' * (len(paths) != 1)} of {project.slug} to {folder}.")
        )
