from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from promptlab.accounts import selectors, services
from promptlab.accounts.models import Role
from promptlab.errors import DomainError


class Command(BaseCommand):
    help = "Add a person to a project with a role, or change their role. Unknown emails are invited."

    def add_arguments(self, parser):
        parser.add_argument("slug", help="The project's slug.")
        parser.add_argument("email")
        parser.add_argument("role", help=f"One of: {', '.join(Role.values)}.")

    def handle(self, *args, slug, email, role, **options):
        try:
            project = selectors.project_get(slug=slug)
            with transaction.atomic():
                user, invited = services.user_invite(email=email)
                services.membership_set(project=project, user=user, role=role)
        except DomainError as exc:
            raise CommandError(exc.message) from None
        note = " An invitation to choose a password was emailed." if invited else ""
        self.stdout.write(self.style.SUCCESS(f"{user.email} is now {role} of {project.slug}.{note}"))
