"""In Chromium, against a real OpenID Connect identity provider (allauth.idp.oidc in a
second Django process, tests/idp/): sign in with SSO and land in the mapped project; a
wrong client secret, a tampered or replayed callback, an unverified email and an unmapped
domain are each handled as a person would expect."""

from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
from allauth.socialaccount.models import SocialAccount
from django.contrib.auth import get_user_model

from promptlab.accounts.models import Membership, Role
from promptlab.accounts.sso import OIDC_PROVIDER_ID, as_domain_grants, oidc_app
from tests.factories import ProjectFactory
from tests.idp.provider import PASSWORD, IdentityProvider, Person

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CALLBACK = f"/accounts/oidc/{OIDC_PROVIDER_ID}/login/callback/"


@pytest.fixture(scope="module")
def idp(live_server):
    provider = IdentityProvider(
        redirect_uri=f"{live_server.url}{CALLBACK}",
        people=[
            Person("ada@support.test", first_name="Ada"),
            Person("bob@elsewhere.test"),
            Person("eve@support.test", verified=False),
        ],
    ).start()
    yield provider
    provider.stop()


@pytest.fixture
def sso(settings, idp):
    """promptlab configured with the provider, as PROMPTLAB_OIDC_* would configure it."""

    def configure(*, secret=None):
        app = oidc_app(server_url=idp.url, client_id=idp.client_id, secret=secret or idp.client_secret, name="Test IdP")
        settings.SOCIALACCOUNT_PROVIDERS = {"openid_connect": {"APPS": [app]}}

    settings.SSO_DOMAINS = as_domain_grants("support.test=support-bot:editor")
    configure()
    return configure


def sign_in_at_provider(page, idp, email):
    """Click the SSO button, sign in at the provider and consent; returns the URL the
    provider sent the browser back to (promptlab's callback with code and state)."""
    callbacks = []
    page.on("request", lambda request: callbacks.append(request.url) if CALLBACK in request.url else None)
    page.goto("/accounts/login/")
    page.click("#sso-providers button:has-text('Sign in with Test IdP')")
    page.wait_for_url(f"{idp.url}/accounts/login/**")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url(f"{idp.url}/identity/o/authorize**")
    page.click("button[name=action][value=grant]")
    page.wait_for_load_state()
    return callbacks[-1] if callbacks else None


def assert_signed_out(page):
    page.goto("/")
    assert urlsplit(page.url).path == "/accounts/login/"


def test_sso_login_lands_in_the_mapped_project_and_its_callback_cannot_be_replayed(page, live_server, idp, sso):
    ProjectFactory(slug="support-bot", name="Support bot")

    callback_url = sign_in_at_provider(page, idp, "ada@support.test")

    page.wait_for_url(f"{live_server.url}/")
    rows = page.locator("#project-list tbody tr")
    assert rows.count() == 1
    assert rows.locator("td").nth(0).inner_text() == "Support bot"
    assert rows.locator("td").nth(2).inner_text() == "editor"
    assert "You joined the project Support bot as editor." in page.locator(".messages").inner_text()
    assert page.locator("nav.topnav").get_by_text("ada@support.test").count() == 1
    user = get_user_model().objects.get(email="ada@support.test")
    assert not user.has_usable_password()
    assert SocialAccount.objects.filter(user=user, provider=OIDC_PROVIDER_ID).count() == 1
    assert list(Membership.objects.filter(user=user).values_list("project__slug", "role")) == [
        ("support-bot", Role.EDITOR)
    ]

    # The same response again, after signing out, is refused: its state was used up.
    page.click("nav.topnav button:has-text('Sign out')")
    page.wait_for_load_state()
    response = page.goto(callback_url)
    assert response.status == 401
    assert "does not match a sign-in started here" in page.locator("#sso-error").inner_text()
    assert_signed_out(page)


def test_a_wrong_client_secret_is_refused_with_a_clear_message_and_no_session(page, idp, sso):
    sso(secret="not-the-secret")

    sign_in_at_provider(page, idp, "ada@support.test")

    assert "client ID or secret is probably wrong" in page.locator("#sso-error").inner_text()
    assert_signed_out(page)
    assert not get_user_model().objects.filter(email="ada@support.test").exists()


def test_a_tampered_state_is_refused_with_no_session(page, idp, sso):
    held = []

    def hold_the_redirect(route):
        """Let the consent through to the provider but keep its redirect back to promptlab."""
        if route.request.method != "POST":
            return route.continue_()
        response = route.fetch(max_redirects=0)
        held.append(response.headers["location"])
        route.fulfill(status=200, body="held")

    page.route(f"{idp.url}/identity/o/authorize**", hold_the_redirect)
    assert sign_in_at_provider(page, idp, "ada@support.test") is None
    parts = urlsplit(held[0])
    query = parse_qs(parts.query)
    assert query["code"] and query["state"]
    query["state"] = [query["state"][0][::-1]]

    response = page.goto(urlunsplit(parts._replace(query=urlencode(query, doseq=True))))

    assert response.status == 401
    assert "does not match a sign-in started here" in page.locator("#sso-error").inner_text()
    assert_signed_out(page)
    assert not get_user_model().objects.filter(email="ada@support.test").exists()
    # The state was all that changed: the untouched response still signs in.
    page.goto(held[0])
    assert urlsplit(page.url).path == "/" and page.locator("#no-projects").count() == 1


def test_an_unmapped_domain_signs_in_with_no_project_and_is_told_so(page, idp, sso):
    ProjectFactory(slug="support-bot", name="Support bot")

    sign_in_at_provider(page, idp, "bob@elsewhere.test")

    page.locator("#no-projects").wait_for()
    assert "elsewhere.test) is not linked to any project" in page.locator(".messages").inner_text()
    assert page.locator("#project-list").count() == 0
    assert not Membership.objects.filter(user__email="bob@elsewhere.test").exists()


def test_an_email_the_provider_did_not_verify_is_refused(page, idp, sso):
    ProjectFactory(slug="support-bot", name="Support bot")

    sign_in_at_provider(page, idp, "eve@support.test")

    assert "did not confirm your email address" in page.locator("#sso-error").inner_text()
    assert_signed_out(page)
    assert not get_user_model().objects.filter(email="eve@support.test").exists()
