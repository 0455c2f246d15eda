from django.core.management.base import BaseCommand, CommandError

from experiments.datasets import FORMATS, dataset_export, dataset_get
from experiments.management.commands.import_dataset import format_for
from promptlab.accounts import selectors as account_selectors
from promptlab.errors import DomainError


class Command(BaseCommand):
    help = "Write a dataset's items to a CSV or JSONL file (- writes to standard output), in row order."

    def add_arguments(self, parser):
        parser.add_argument("file", help="The file to write (overwritten), or - for standard output.")
        parser.add_argument("--project", required=True, help="The project's slug.")
        parser.add_argument("--dataset", required=True, help="The dataset's name.")
        parser.add_argument("--format", choices=FORMATS, help="Default: from the file's extension; csv on standard output.")

    def handle(self, *args, file, project, dataset, format, **options):
        format = format_for(file, format) if file != "-" else format or "csv"
        try:
            project = account_selectors.project_get(slug=project)
            dataset = dataset_get(project=project, name=dataset)
            if file == "-":
                count = dataset_export(dataset=dataset, format=format, out=self.stdout)
            else:
                # newline="": the csv module writes its own line endings.
                with open(file, "w", encoding="utf-8", newline="") as out:
                    count = dataset_export(dataset=dataset, format=format, out=out)
        except DomainError as exc:
            raise CommandError(exc.message) from None
        except OSError as exc:
            raise CommandError(f"Cannot write {file}: {exc.strerror or exc}.") from None
        summary = f"Exported {count} item{'s' * (count != 1)} of {project.slug}/{dataset.name} to {file}."
        if file == "-":
            self.stderr.write(summary)  # on standard output it would end up in the data
        else:
            self.stdout.write(self.style.SUCCESS(summary))
