from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from promptlab.accounts import services
from promptlab.errors import DomainError


class Command(BaseCommand):
    help = "Create a project, optionally with an owner (invited by email when they have no account)."

    def add_arguments(self, parser):
        parser.add_argument("slug", help="Permanent identifier used in URLs and the API, e.g. support-bot.")
        parser.add_argument("--name", default="", help="Display name (default: the slug).")
        parser.add_argument("--owner", metavar="EMAIL", help="Email of the first owner.")

    def handle(self, *args, slug, name, owner, **options):
        try:
            with transaction.atomic():
                owner_user = services.user_invite(email=owner)[0] if owner else None
                project = services.project_create(slug=slug, name=name, owner=owner_user)
        except DomainError as exc:
            raise CommandError(exc.message) from None
        owned = f" owned by {owner_user.email}" if owner_user else ""
        self.stdout.write(self.style.SUCCESS(f"Created project {project.slug} ({project.name}){owned}."))
