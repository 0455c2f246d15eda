import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.management import CommandError, call_command

from promptlab.accounts.models import Membership, Project, Role
from tests.factories import ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)  # the invitation is sent on commit


def test_create_project_with_an_owner_who_is_invited(capsys):
    call_command("create_project", "support-bot", "--name", "Support bot", "--owner", "lead@example.com")

    project = Project.objects.get(slug="support-bot")
    assert project.name == "Support bot"
    assert project.memberships.get().user.email == "lead@example.com"
    assert project.memberships.get().role == Role.OWNER
    assert mail.outbox[0].to == ["lead@example.com"]
    assert "Created project support-bot" in capsys.readouterr().out


def test_create_project_refuses_a_taken_slug_and_changes_nothing():
    ProjectFactory(slug="taken")

    with pytest.raises(CommandError, match="already exists"):
        call_command("create_project", "taken", "--owner", "someone@example.com")

    assert not get_user_model().objects.filter(email="someone@example.com").exists()
    assert mail.outbox == []


def test_add_member_adds_then_changes_the_role(capsys):
    project = ProjectFactory(slug="demo")
    user = UserFactory(email="pm@example.com")

    call_command("add_member", "demo", "pm@example.com", "editor")
    call_command("add_member", "demo", "PM@example.com", "admin")

    assert Membership.objects.get(project=project, user=user).role == Role.ADMIN
    assert "pm@example.com is now admin of demo" in capsys.readouterr().out
    assert mail.outbox == []  # an existing account is not invited


def test_add_member_with_a_bad_role_changes_nothing():
    ProjectFactory(slug="demo")

    with pytest.raises(CommandError, match="'boss' is not a role: choose one of viewer, editor, admin, owner"):
        call_command("add_member", "demo", "new@example.com", "boss")

    assert not get_user_model().objects.filter(email="new@example.com").exists()
    assert not Membership.objects.exists()
    assert mail.outbox == []


def test_add_member_to_an_unknown_project_says_how_to_create_it():
    with pytest.raises(CommandError, match="No project with the slug 'nope'. Create it with `create_project nope`"):
        call_command("add_member", "nope", "new@example.com", "viewer")


def test_load_demo_is_idempotent_and_keeps_a_changed_password(capsys):
    call_command("load_demo")
    admin = get_user_model().objects.get(email="admin@example.com")
    admin.set_password("changed-by-the-user")
    admin.save()

    call_command("load_demo")

    assert Project.objects.filter(slug="demo").count() == 1
    assert Membership.objects.get(project__slug="demo").role == Role.OWNER
    admin.refresh_from_db()
    assert admin.check_password("changed-by-the-user")
    assert "Sign in at http://127.0.0.1:8000/accounts/login/ as admin@example.com" in capsys.readouterr().out


def test_load_demo_is_refused_in_production(settings):
    settings.PRODUCTION = True
    with pytest.raises(CommandError, match="refused when DJANGO_ENV=production"):
        call_command("load_demo")
    assert not get_user_model().objects.exists()


def test_the_demo_prompt_renders_and_runs_on_the_offline_model():
    from promptlab.llm import gateway
    from prompts import selectors
    from prompts.models import Prompt
    from prompts.rendering import render_version

    call_command("load_demo")
    prompt = Prompt.objects.get(name="support-reply")
    version = selectors.prompt_version(prompt=prompt, label="production")

    rendered = render_version(version, {"question": "Where is my parcel?"})
    result = gateway.complete(endpoint=prompt.endpoint, messages=rendered.messages, params=version.params)

    assert rendered.messages[0]["content"].endswith("-- Sam, Acme support")
    assert "Where is my parcel?" in result.text and result.cost == 0
