import pytest
from bs4 import BeautifulSoup
from django.contrib.auth import get_user_model

from promptlab.accounts.models import Membership, Project, Role
from tests.factories import MembershipFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/accounts/project/"


def listed_slugs(html: str) -> set[str]:
    return {cell.get_text() for cell in BeautifulSoup(html, "html.parser").select("td.field-slug")}


def inline_data(project, rows, **extra):
    """POST data for the project change form with the given membership rows."""
    data = {
        "name": project.name,
        "memberships-TOTAL_FORMS": str(len(rows)),
        "memberships-INITIAL_FORMS": str(sum(1 for row in rows if "id" in row)),
        "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
        **extra,
    }
    for index, row in enumerate(rows):
        for key, value in row.items():
            data[f"memberships-{index}-{key}"] = value
        data[f"memberships-{index}-project"] = str(project.pk)
    return data


def test_members_see_only_their_projects(client):
    mine = MembershipFactory(role=Role.VIEWER)
    ProjectFactory(slug="someone-elses")
    client.force_login(mine.user)

    response = client.get(CHANGELIST)

    assert response.status_code == 200
    assert listed_slugs(response.content.decode()) == {mine.project.slug}


def test_another_projects_page_is_not_reachable(client):
    mine = MembershipFactory(role=Role.OWNER)
    other = ProjectFactory()
    client.force_login(mine.user)

    response = client.get(f"{CHANGELIST}{other.pk}/change/")

    assert response.status_code == 302  # the admin redirects a missing object to its index
    assert Project.objects.filter(pk=other.pk).exists()


def test_superusers_see_every_project(client):
    ProjectFactory(slug="a")
    ProjectFactory(slug="b")
    client.force_login(UserFactory(is_staff=True, is_superuser=True))

    assert listed_slugs(client.get(CHANGELIST).content.decode()) == {"a", "b"}


def test_changelist_queries_do_not_grow_with_rows(client, django_assert_num_queries):
    user = UserFactory(is_staff=True)
    client.force_login(user)

    for count in (3, 20):
        MembershipFactory.create_batch(count, user=user)
        with django_assert_num_queries(10):
            assert client.get(CHANGELIST).status_code == 200


def test_a_viewer_gets_a_read_only_page(client):
    viewer = MembershipFactory(role=Role.VIEWER)
    client.force_login(viewer.user)

    response = client.get(f"{CHANGELIST}{viewer.project.pk}/change/")
    assert response.status_code == 200
    assert 'name="_save"' not in response.content.decode()

    response = client.post(f"{CHANGELIST}{viewer.project.pk}/change/", inline_data(viewer.project, [], name="Hacked"))
    assert response.status_code == 403
    viewer.project.refresh_from_db()
    assert viewer.project.name != "Hacked"


def test_creating_a_project_in_the_admin_makes_the_creator_owner(client):
    creator = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(creator)

    response = client.post(f"{CHANGELIST}add/", {"name": "Support bot", "slug": "support-bot"})

    assert response.status_code == 302
    project = Project.objects.get(slug="support-bot")
    assert Membership.objects.get(project=project).user == creator
    assert Membership.objects.get(project=project).role == Role.OWNER


def test_only_superusers_may_add_projects(client):
    owner = MembershipFactory(role=Role.OWNER, user=UserFactory(is_staff=True))
    client.force_login(owner.user)

    changelist = BeautifulSoup(client.get(CHANGELIST).content, "html.parser")
    response = client.post(f"{CHANGELIST}add/", {"name": "Side project", "slug": "side-project"})

    assert changelist.select("td.field-slug") and not changelist.select(f'a.addlink[href="{CHANGELIST}add/"]')
    assert response.status_code == 403 and not Project.objects.filter(slug="side-project").exists()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    assert BeautifulSoup(client.get(CHANGELIST).content, "html.parser").select(f'a.addlink[href="{CHANGELIST}add/"]')


def test_an_admin_invites_a_member_from_the_inline(client):
    admin = MembershipFactory(role=Role.ADMIN)
    client.force_login(admin.user)
    rows = [{"id": str(admin.pk), "role": Role.ADMIN}, {"email": "newcomer@example.com", "role": Role.EDITOR}]

    response = client.post(f"{CHANGELIST}{admin.project.pk}/change/", inline_data(admin.project, rows))

    assert response.status_code == 302, response.content.decode()
    newcomer = get_user_model().objects.get(email="newcomer@example.com")
    assert Membership.objects.get(project=admin.project, user=newcomer).role == Role.EDITOR


def test_a_refused_change_shows_on_the_form_and_saves_nothing(client):
    owner = MembershipFactory(role=Role.OWNER)
    client.force_login(owner.user)
    rows = [{"id": str(owner.pk), "role": Role.VIEWER}, {"email": "newcomer@example.com", "role": Role.EDITOR}]

    response = client.post(
        f"{CHANGELIST}{owner.project.pk}/change/", inline_data(owner.project, rows, name="Renamed")
    )

    assert response.status_code == 200
    assert "is the last owner of" in response.content.decode()
    owner.refresh_from_db()
    owner.project.refresh_from_db()
    assert owner.role == Role.OWNER
    assert owner.project.name != "Renamed"
    assert not get_user_model().objects.filter(email="newcomer@example.com").exists()


def test_an_admin_cannot_delete_the_project(client):
    admin = MembershipFactory(role=Role.ADMIN)
    client.force_login(admin.user)

    response = client.post(f"{CHANGELIST}{admin.project.pk}/delete/", {"post": "yes"})

    assert response.status_code == 403
    assert Project.objects.filter(pk=admin.project.pk).exists()
