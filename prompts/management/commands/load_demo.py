from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from promptlab.accounts import services as account_services
from promptlab.accounts.models import Project, Role
from promptlab.llm import services as llm_services
from promptlab.llm.models import DEMO_PROVIDER, ModelEndpoint
from prompts import services
from prompts.models import Prompt

DEMO_EMAIL = "admin@example.com"
DEMO_PASSWORD = "promptlab-demo"
DEMO_SLUG = "demo"
DEMO_ENDPOINT = "demo"
DEMO_PROMPTS = {
    "signature": {"description": "Sign-off shared by the support prompts.", "template": "-- {{ agent }}, Acme support"},
    "support-reply": {
        "description": "Answers a customer's question in the company's voice.",
        "kind": "chat",
        "messages": [
            {"role": "system", "content": "You are a friendly support agent for Acme. Answer in {{ language }}.\n"
                                          "End with:\n{% include 'signature' %}"},
            {"placeholder": "history"},
            {"role": "user", "content": "{{ question }}"},
        ],
        "params": {"temperature": 0.2, "max_tokens": 300},
        "variables": [
            {"name": "language", "type": "string", "default": "English", "description": "Language of the answer"},
            {"name": "agent", "type": "string", "default": "Sam"},
            {"name": "history", "type": "list", "required": False, "description": "Earlier messages"},
            {"name": "question", "type": "string", "description": "The customer's question"},
        ],
        "tags": ["support"],
    },
}


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
            project = account_services.project_create(slug=DEMO_SLUG, name="Demo project", owner=admin)
            self.stdout.write(f"Created the project {project.slug}.")
        elif not project.memberships.filter(user=admin).exists():
            account_services.membership_set(project=project, user=admin, role=Role.OWNER)
        endpoint = ModelEndpoint.objects.filter(name=DEMO_ENDPOINT).first()
        if endpoint is None:
            endpoint, _ = llm_services.endpoint_save(name=DEMO_ENDPOINT, display_name="Demo model", model=f"{DEMO_PROVIDER}/echo")
            self.stdout.write("Added the offline demo model to the catalog.")
        for name, fields in DEMO_PROMPTS.items():
            if not Prompt.objects.filter(project=project, name=name).exists():
                prompt = services.prompt_create(project=project, actor=admin, name=name, message="Demo prompt", endpoint=endpoint, **fields)
                services.label_move(prompt=prompt, actor=admin, label="production", version=prompt.version)
                self.stdout.write(f"Added the demo prompt {name}.")
        self.stdout.write(
            self.style.SUCCESS(
                f"Sign in at {settings.BASE_URL}/accounts/login/ as {DEMO_EMAIL} with the password "
                f"{DEMO_PASSWORD!r} (unless you changed it)."
            )
        )
