from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from prompts import services
from prompts.models import DEMO_PROVIDER, ModelEndpoint, Project, Role

DEMO_EMAIL = "admin@example.com"
DEMO_PASSWORD = "promptlab-demo"
DEMO_SLUG = "demo"
DEMO_ENDPOINT = "demo"


class Command(BaseCommand):
    help = "Create the demo project and a demo admin account. Safe to run again: it changes nothing that exists."

    @transaction.atomic
    def handle(self, *args, **options):
        if settings.PRODUCTION:
            raise CommandError("load_demo creates a well-known password and is refused when DJANGO_ENV=production.")
        User = get_user_model()
        admin = User.objects.filter(email__iexact=DEMO_EMAIL).first()
        if admin is None:
            admin = User.objects.create_superuser(username=DEMO_EMAIL, email=DEMO_EMAIL, password=DEMO_PASSWORD)
            self.stdout.write(f"Created the demo admin {DEMO_EMAIL}.")
        project = Project.objects.filter(slug=DEMO_SLUG).first()
        if project is None:
            project = services.project_create(slug=DEMO_SLUG, name="Demo project", owner=admin)
            self.stdout.write(f"Created the project {project.slug}.")
        elif not project.memberships.filter(user=admin).exists():
            services.membership_set(project=project, user=admin, role=Role.OWNER)
        if not ModelEndpoint.objects.filter(name=DEMO_ENDPOINT).exists():
            services.endpoint_save(name=DEMO_ENDPOINT, display_name="Demo model", model=f"{DEMO_PROVIDER}/echo")
            self.stdout.write("Added the offline demo model to the catalog.")
        self.stdout.write(
            self.style.SUCCESS(
                f"Sign in at {settings.BASE_URL}/accounts/login/ as {DEMO_EMAIL} with the password "
                f"{DEMO_PASSWORD!r} (unless you changed it)."
            )
        )
