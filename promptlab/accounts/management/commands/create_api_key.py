from django.core.management.base import BaseCommand, CommandError

from promptlab.accounts import api_keys, selectors
from promptlab.accounts.models import ApiKeyScope
from promptlab.errors import DomainError


class Command(BaseCommand):
    help = (
        "Create an API key for a project and print it (alone, on the last line). The secret is shown "
        "only now: promptlab keeps only its hash. A key made here acts as the operator within its project and scopes; "
        "like the operator, it cannot move production in a project that requires approval."
    )

    def add_arguments(self, parser):
        parser.add_argument("project", help="The project's slug.")
        parser.add_argument(
            "--scopes", nargs="+", default=["read"], metavar="SCOPE",
            help=f"Any of {', '.join(ApiKeyScope.values)} (space- or comma-separated; default: read).",
        )  # fmt: skip
        parser.add_argument("--name", default="", help="What will use the key (default: 'created with create_api_key').")

    def handle(self, *args, project, scopes, name, **options):
        scopes = [scope.strip() for item in scopes for scope in item.split(",") if scope.strip()]
        try:
            key, secret = api_keys.api_key_create(
                project=selectors.project_get(slug=project), actor=None, name=name or "created with create_api_key", scopes=scopes
            )
        except DomainError as exc:
            raise CommandError(exc.message) from None
        self.stderr.write(
            f"Created API key {key.prefix} for {key.project.slug} with scopes {', '.join(key.scopes)}. "
            "Copy it now: it is not shown again."
        )
        self.stdout.write(secret)
