import pytest
from django.core import mail

from promptlab.accounts import services as account_services
from promptlab.accounts.models import Membership, Project, Role
from promptlab.errors import Forbidden, Invalid
from tests.factories import MembershipFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_project_create_makes_the_actor_owner_and_staff():
    actor = UserFactory(is_superuser=True)

    project = account_services.project_create(slug="support-bot", name="Support bot", actor=actor)

    assert Membership.objects.get(project=project, user=actor).role == Role.OWNER
    actor.refresh_from_db()
    assert actor.is_staff


@pytest.mark.parametrize("slug", ["has space", "", "ümlaut!"])
def test_project_create_rejects_a_bad_slug_and_creates_nothing(slug):
    with pytest.raises(Invalid, match="not a valid project slug"):
        account_services.project_create(slug=slug)
    assert not Project.objects.exists()


def test_project_create_rejects_a_taken_slug():
    ProjectFactory(slug="taken")
    with pytest.raises(Invalid, match="already exists"):
        account_services.project_create(slug="taken")


def test_admin_manages_members_below_owner():
    admin = MembershipFactory(role=Role.ADMIN)
    newcomer = UserFactory()

    account_services.membership_set(project=admin.project, user=newcomer, role=Role.EDITOR, actor=admin.user)

    assert Membership.objects.get(project=admin.project, user=newcomer).role == Role.EDITOR


def test_admin_cannot_grant_ownership():
    admin = MembershipFactory(role=Role.ADMIN)
    newcomer = UserFactory()

    with pytest.raises(Forbidden, match="needs the owner role"):
        account_services.membership_set(project=admin.project, user=newcomer, role=Role.OWNER, actor=admin.user)
    assert not Membership.objects.filter(user=newcomer).exists()


def test_editor_cannot_add_members():
    editor = MembershipFactory(role=Role.EDITOR)
    with pytest.raises(Forbidden):
        account_services.membership_set(project=editor.project, user=UserFactory(), role=Role.VIEWER, actor=editor.user)


def test_members_of_another_project_cannot_touch_this_one():
    outsider = MembershipFactory(role=Role.OWNER)
    project = ProjectFactory()
    with pytest.raises(Forbidden):
        account_services.membership_set(project=project, user=UserFactory(), role=Role.VIEWER, actor=outsider.user)


def test_the_last_owner_cannot_step_down_or_leave():
    owner = MembershipFactory(role=Role.OWNER)

    with pytest.raises(Invalid, match="last owner"):
        account_services.membership_set(project=owner.project, user=owner.user, role=Role.ADMIN, actor=owner.user)
    with pytest.raises(Invalid, match="last owner"):
        account_services.membership_remove(project=owner.project, user=owner.user, actor=owner.user)
    assert Membership.objects.get(pk=owner.pk).role == Role.OWNER


def test_an_owner_can_hand_over_and_leave():
    owner = MembershipFactory(role=Role.OWNER)
    successor = MembershipFactory(project=owner.project, role=Role.ADMIN)

    account_services.membership_set(project=owner.project, user=successor.user, role=Role.OWNER, actor=owner.user)
    account_services.membership_remove(project=owner.project, user=owner.user, actor=owner.user)

    assert list(owner.project.memberships.values_list("user", "role")) == [(successor.user.pk, Role.OWNER)]


def test_unknown_role_is_rejected_naming_the_choices():
    project = ProjectFactory()
    with pytest.raises(Invalid, match="choose one of viewer, editor, admin, owner"):
        account_services.membership_set(project=project, user=UserFactory(), role="boss")


def test_invite_creates_a_user_without_password_and_emails_a_link(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        user, created = account_services.user_invite(email="New.Person@example.com")

    assert created and not user.has_usable_password()
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["New.Person@example.com"]
    assert "/accounts/password/reset/key/" in mail.outbox[0].body


def test_invite_finds_an_existing_user_case_insensitively():
    existing = UserFactory(email="known@example.com")

    user, created = account_services.user_invite(email="KNOWN@example.com")

    assert (user, created) == (existing, False)
    assert mail.outbox == []


def test_invite_rejects_a_bad_email():
    with pytest.raises(Invalid, match="not a valid email"):
        account_services.user_invite(email="not-an-email")


def test_project_rename_needs_manage_and_keeps_the_slug():
    editor = MembershipFactory(role=Role.EDITOR)
    with pytest.raises(Forbidden):
        account_services.project_rename(project=editor.project, name="New", actor=editor.user)

    admin = MembershipFactory(project=editor.project, role=Role.ADMIN)
    account_services.project_rename(project=editor.project, name="  New name ", actor=admin.user)
    editor.project.refresh_from_db()
    assert editor.project.name == "New name"


def test_project_delete_needs_an_owner():
    admin = MembershipFactory(role=Role.ADMIN)
    with pytest.raises(Forbidden):
        account_services.project_delete(project=admin.project, actor=admin.user)
    assert Project.objects.filter(pk=admin.project.pk).exists()


def test_only_a_superuser_creates_a_project():
    with pytest.raises(Forbidden, match="Only a superuser creates projects"):
        account_services.project_create(slug="side-project", actor=UserFactory())

    assert not Project.objects.filter(slug="side-project").exists()
