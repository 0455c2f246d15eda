import re

import pytest
from bs4 import BeautifulSoup
from django.contrib.auth import get_user_model

from promptlab.accounts.models import Role
from tests.factories import MembershipFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db


def soup(html: str) -> BeautifulSoup:
    return BeautifulSoup(html, "html.parser")


def test_login_page_uses_the_base_layout_with_local_htmx_and_the_csrf_header(client):
    response = client.get("/accounts/login/")

    assert response.status_code == 200
    page = soup(response.content.decode())
    scripts = [script["src"] for script in page.select("script[src]")]
    assert any(re.fullmatch(r"/static/django_htmx/htmx-2(\.min)?\.js", src) for src in scripts), scripts
    assert all(src.startswith("/static/") for src in scripts)  # nothing from a CDN
    body = page.body
    assert body["hx-headers"].startswith('{"X-CSRFToken": "') and len(body["hx-headers"]) > 40
    assert page.select('nav[aria-label="Main"]')
    assert page.select('input[name="login"][type="email"]')


def test_public_sign_up_is_closed_by_default(client):
    response = client.get("/accounts/signup/")

    assert "Sign Up Closed" in response.content.decode()
    response = client.post(
        "/accounts/signup/", {"email": "x@example.com", "password1": "a-long-pass-123", "password2": "a-long-pass-123"}
    )
    assert not get_user_model().objects.filter(email="x@example.com").exists()


def test_sign_up_can_be_opened_by_setting(client, settings):
    settings.SIGNUP_OPEN = True

    response = client.get("/accounts/signup/")

    assert soup(response.content.decode()).select('input[name="password1"]')


def test_home_requires_login(client):
    response = client.get("/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_signing_in_lands_on_the_projects_the_user_belongs_to(client):
    membership = MembershipFactory(role=Role.EDITOR, user__email="pm@example.com")
    ProjectFactory(name="Not mine")

    response = client.post(
        "/accounts/login/", {"login": "pm@example.com", "password": "correct horse battery staple"}, follow=True
    )

    html = response.content.decode()
    assert response.redirect_chain[-1][0] == "/"
    rows = [[cell.get_text(strip=True) for cell in row.select("td")[:3]] for row in soup(html).select("tbody tr")]
    assert rows == [[membership.project.name, membership.project.slug, "editor"]]
    assert "Not mine" not in html


def test_a_wrong_password_is_refused(client):
    UserFactory(email="pm@example.com")

    response = client.post("/accounts/login/", {"login": "pm@example.com", "password": "wrong"})

    assert response.status_code == 200
    assert "not correct" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_home_says_what_to_do_without_projects(client):
    client.force_login(UserFactory())

    response = client.get("/")

    assert soup(response.content.decode()).select("p#no-projects")


def test_home_queries_do_not_grow_with_projects(client, django_assert_num_queries):
    user = UserFactory()
    client.force_login(user)
    MembershipFactory.create_batch(2, user=user)
    with django_assert_num_queries(4):
        client.get("/")
    MembershipFactory.create_batch(20, user=user)
    with django_assert_num_queries(4):
        client.get("/")
