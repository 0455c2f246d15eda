import pytest

from promptlab.accounts.access import Action, authorize, can, role_allows, role_of
from promptlab.accounts.models import Role
from promptlab.errors import Forbidden
from tests.factories import MembershipFactory, ProjectFactory, UserFactory

ALLOWED = {
    Role.VIEWER: {Action.VIEW},
    Role.EDITOR: {Action.VIEW, Action.EDIT},
    Role.ADMIN: {Action.VIEW, Action.EDIT, Action.MANAGE},
    Role.OWNER: {Action.VIEW, Action.EDIT, Action.MANAGE, Action.OWN},
}


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("action", list(Action))
def test_policy_matrix(role, action):
    assert role_allows(role, action) is (action in ALLOWED[role])


@pytest.mark.parametrize("action", list(Action))
def test_no_role_allows_nothing(action):
    assert role_allows(None, action) is False


@pytest.mark.django_db
def test_role_is_per_project():
    membership = MembershipFactory(role=Role.ADMIN)
    other_project = ProjectFactory()

    assert role_of(membership.user, membership.project) == Role.ADMIN
    assert role_of(membership.user, other_project) is None
    assert not can(membership.user, other_project, Action.VIEW)


@pytest.mark.django_db
def test_superuser_acts_as_owner_and_inactive_users_as_nobody():
    project = ProjectFactory()
    assert role_of(UserFactory(is_superuser=True), project) == Role.OWNER

    membership = MembershipFactory(project=project, role=Role.OWNER, user__is_active=False)
    assert role_of(membership.user, project) is None


@pytest.mark.django_db
def test_authorize_names_the_required_role():
    membership = MembershipFactory(role=Role.VIEWER)

    with pytest.raises(Forbidden, match="needs the editor role") as error:
        authorize(membership.user, membership.project, Action.EDIT)
    assert error.value.details["required_role"] == "editor"


@pytest.mark.django_db
@pytest.mark.parametrize("action", list(Action))
def test_the_operator_cli_is_allowed_everything(action):
    project = ProjectFactory()

    assert authorize(None, project, action) is None
    with pytest.raises(Forbidden, match=f"may not {action} in project {project.slug}"):
        authorize(UserFactory(), project, action)
