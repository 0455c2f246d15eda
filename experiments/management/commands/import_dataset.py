import sys

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from experiments.datasets import FORMATS, TARGETS_HELP, dataset_create, dataset_import, format_from_name, mapping_from_lines
from experiments.models import Dataset
from promptlab.accounts import selectors as account_selectors
from promptlab.errors import DomainError


def format_for(path: str, given: str | None) -> str:
    """--format, or the one the file name's extension says."""
    if given:
        return given
    format = format_from_name(path)
    if format is None:
        raise CommandError(f"Cannot tell the format of {path} from its name: pass --format csv or --format jsonl.")
    return format


class Command(BaseCommand):
    help = (
        "Import dataset items from a CSV or JSONL file (- reads standard input), creating the dataset "
        "if it does not exist. All or nothing: one bad row and nothing is imported."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="The file to read, or - for standard input.")
        parser.add_argument("--project", required=True, help="The project's slug.")
        parser.add_argument("--dataset", required=True, help="The dataset's name.")
        parser.add_argument("--format", choices=FORMATS, help="Default: from the file's extension (.csv, .jsonl).")
        parser.add_argument(
            "--map", action="append", default=[], metavar="COLUMN=TARGET", dest="mapping",
            help=f"Send a file column to a target: {TARGETS_HELP} (COLUMN=). Repeat for more columns.",
        )  # fmt: skip
        parser.add_argument("--replace", action="store_true", help="Replace the dataset's items instead of adding to them.")

    def handle(self, *args, file, project, dataset, format, mapping, replace, **options):
        if file == "-" and not format:
            raise CommandError("Reading standard input needs --format csv or --format jsonl.")
        format = format_for(file, format)
        try:
            columns = mapping_from_lines(mapping)
        except DomainError as exc:
            raise CommandError(f"--map {exc.message}") from None
        try:
            stream = sys.stdin.buffer if file == "-" else open(file, "rb")  # noqa: SIM115 (closed below)
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror or exc}.") from None
        try:
            project = account_selectors.project_get(slug=project)
            with transaction.atomic():  # a dataset created here goes away again if the import fails
                target = Dataset.objects.filter(project=project, name=dataset).first()
                created = target is None
                if created:
                    target = dataset_create(project=project, actor=None, name=dataset)
                added = dataset_import(dataset=target, actor=None, file=stream, format=format, mapping=columns, replace=replace)
        except DomainError as exc:
            raise CommandError(exc.message) from None
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror or exc}.") from None
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()
        total = target.items.count()
        self.stdout.write(
            self.style.SUCCESS(
                f"Imported {added} item{'s' * (added != 1)} into {project.slug}/{target.name}"
                f"{' (a new dataset)' if created else ''}; it has {total} item{'s' * (total != 1)}."
            )
        )
