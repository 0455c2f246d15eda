"""A project API key lends its creator's access: it stops working, at once, when the creator is
deactivated, deleted or leaves the project; a superuser's key and a key of the operator's CLI
keep working until revoked."""

import pytest
from rest_framework.test import APIClient

from promptlab.accounts import api_keys
from promptlab.accounts import services as account_services
from promptlab.accounts.models import Role
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

DATASETS = "/api/v1/datasets/"


@pytest.fixture
def owner():
    return MembershipFactory(role=Role.OWNER)


@pytest.fixture
def admin(owner):
    return MembershipFactory(project=owner.project, role=Role.ADMIN)


def client_of(project, actor) -> APIClient:
    _, secret = api_keys.api_key_create(project=project, actor=actor, name="bot", scopes=["read"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert client.get(DATASETS).status_code == 200
    return client


def refusal(response) -> str:
    assert response.status_code == 401, response.content
    error = response.json()["error"]
    assert error["code"] == "authentication_failed" and error["message"].startswith("This API key no longer works: ")
    return error["message"]


def test_a_key_stops_at_once_when_its_creator_is_deactivated_and_works_again_when_reactivated(admin):
    client = client_of(admin.project, admin.user)

    admin.user.is_active = False
    admin.user.save()
    assert "the person who created it has been deactivated" in refusal(client.get(DATASETS))

    admin.user.is_active = True
    admin.user.save()
    assert client.get(DATASETS).status_code == 200


def test_a_key_stops_when_its_creator_leaves_the_project(admin, owner):
    client = client_of(admin.project, admin.user)

    account_services.membership_remove(project=admin.project, user=admin.user, actor=owner.user)

    message = refusal(client.get(DATASETS))
    assert f"no longer a member of project {admin.project.slug}" in message and f"An admin of project {admin.project.slug}" in message


def test_a_key_stops_when_its_creator_is_deleted(admin):
    client = client_of(admin.project, admin.user)

    admin.user.delete()

    assert "the person who created it has been deleted" in refusal(client.get(DATASETS))


def test_a_superusers_key_works_in_a_project_they_are_not_a_member_of(owner):
    client = client_of(owner.project, UserFactory(is_superuser=True, is_staff=True))

    assert client.get(DATASETS).status_code == 200


def test_a_key_of_the_operators_cli_has_no_creator_and_keeps_working(owner):
    client = client_of(owner.project, None)

    owner.user.is_active = False  # nobody the key depends on
    owner.user.save()

    assert client.get(DATASETS).status_code == 200
