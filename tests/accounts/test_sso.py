"""Single sign-on settings and policy, password-login rules and TOTP MFA, through the real
allauth views. The browser test (tests/browser/test_sso.py) runs the OpenID Connect flow
end to end against a real identity provider."""

import re
import time

import pytest
from allauth.account.models import EmailAddress
from allauth.core import context
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value
from allauth.socialaccount.adapter import get_adapter
from allauth.socialaccount.internal.flows.login import complete_login
from allauth.socialaccount.models import SocialAccount
from bs4 import BeautifulSoup
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.contrib.messages import get_messages
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.test import RequestFactory

from promptlab.accounts.models import Membership, Role
from promptlab.accounts.sso import DOMAIN_ROLES, OIDC_PROVIDER_ID, as_domain_grants, as_domains, oidc_app
from tests.factories import MembershipFactory, ProjectFactory, UserFactory
from tests.promptlab.test_settings import run_python

PASSWORD = "correct horse battery staple"


# --- Parsing the policy ------------------------------------------------------------------


def test_domain_grants_are_parsed_from_one_line():
    grants = as_domain_grants(" Example.com=support-bot:editor, acme.org=acme:Viewer,acme.org=shared:admin ,")

    assert [(g.domain, g.project, g.role) for g in grants] == [
        ("example.com", "support-bot", "editor"),
        ("acme.org", "acme", "viewer"),
        ("acme.org", "shared", "admin"),
    ]
    assert as_domains("example.com, @Acme.org") == {"example.com", "acme.org"}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("example.com=support-bot", "'example.com=support-bot' must look like domain=project:role"),
        ("example.com:editor", "must look like domain=project:role"),
        ("example.com=support-bot:owner", "the role must be one of viewer, editor, admin, not 'owner'"),
        ("example.com=support bot:editor", "'support bot' is not a project slug"),
        ("localhost=support-bot:editor", "'localhost' is not an email domain"),
        ("a.com=x:viewer,a.com=x:editor", "a.com is mapped to x twice"),
    ],
)
def test_a_bad_domain_grant_is_named(raw, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        as_domain_grants(raw)


def test_domains_hand_out_every_role_but_owner():
    assert set(DOMAIN_ROLES) == set(Role.values) - {Role.OWNER}


def test_a_bad_domain_mapping_stops_startup_naming_the_entry(tmp_path):
    result = run_python(
        ["manage.py", "check"], {"PROMPTLAB_SSO_DOMAINS": "example.com=support-bot:editor,acme.org=acme"}, tmp_path
    )

    assert result.returncode != 0
    assert "PROMPTLAB_SSO_DOMAINS is not valid: 'acme.org=acme' must look like domain=project:role" in result.stderr


PRINT_PROVIDERS = """
import json, django
from django.conf import settings
django.setup()
print(json.dumps({"providers": settings.SOCIALACCOUNT_PROVIDERS, "password_login": settings.PASSWORD_LOGIN,
                  "required": sorted(settings.SSO_REQUIRED_DOMAINS)}))
"""


def test_openid_connect_is_configured_from_the_environment_with_pkce(tmp_path):
    import json

    oidc = {
        "PROMPTLAB_OIDC_SERVER_URL": "https://login.example.com/realms/acme/",
        "PROMPTLAB_OIDC_CLIENT_ID": "promptlab",
        "PROMPTLAB_OIDC_CLIENT_SECRET": "s3cret",
        "PROMPTLAB_OIDC_NAME": "Acme login",
        "PROMPTLAB_PASSWORD_LOGIN": "off",
        "PROMPTLAB_SSO_REQUIRED_DOMAINS": "acme.org",
    }
    result = run_python(PRINT_PROVIDERS, oidc, tmp_path)

    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["providers"] == {
        "openid_connect": {
            "APPS": [
                {
                    "provider_id": "sso",
                    "name": "Acme login",
                    "client_id": "promptlab",
                    "secret": "s3cret",
                    "settings": {
                        "server_url": "https://login.example.com/realms/acme",
                        "oauth_pkce_enabled": True,
                        "fetch_userinfo": True,
                    },
                }
            ]
        }
    }
    assert values["password_login"] is False and values["required"] == ["acme.org"]


def test_without_sso_nothing_is_offered(tmp_path):
    import json

    result = run_python(PRINT_PROVIDERS, {}, tmp_path)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"providers": {}, "password_login": True, "required": []}


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"PROMPTLAB_OIDC_SERVER_URL": "https://login.example.com"}, "PROMPTLAB_OIDC_CLIENT_ID is required"),
        ({"PROMPTLAB_SAML_IDP_SSO_URL": "https://idp.example.com/sso"}, "PROMPTLAB_SAML_IDP_ENTITY_ID is required"),
        ({"PROMPTLAB_PASSWORD_LOGIN": "off"}, "PROMPTLAB_PASSWORD_LOGIN is off but no single sign-on is configured"),
    ],
)
def test_incomplete_sso_settings_stop_startup(variables, message, tmp_path):
    result = run_python(["manage.py", "check"], variables, tmp_path)

    assert result.returncode != 0
    assert message in result.stderr


# --- Password sign-in rules ----------------------------------------------------------------


@pytest.fixture
def oidc(settings):
    """An OpenID Connect app as PROMPTLAB_OIDC_* would configure it (nothing is called here)."""
    app = oidc_app(server_url="http://127.0.0.1:9/", client_id="promptlab", secret="s3cret", name="Acme login")
    settings.SOCIALACCOUNT_PROVIDERS = {"openid_connect": {"APPS": [app]}}
    return app


def login(client, email, password=PASSWORD):
    return client.post("/accounts/login/", {"login": email, "password": password})


@pytest.mark.django_db
def test_the_login_page_offers_the_sso_button_as_a_post_form(client, oidc):
    html = client.get("/accounts/login/").content.decode()

    form = BeautifulSoup(html, "html.parser").select_one("form.sso-login")
    assert (form["method"], form["action"]) == ("post", f"/accounts/oidc/{OIDC_PROVIDER_ID}/login/?process=login")
    assert form.select('input[name="csrfmiddlewaretoken"]') and "Sign in with Acme login" in form.get_text()
    assert 'name="password"' in html  # passwords still on by default


@pytest.mark.django_db
def test_with_password_login_off_a_correct_password_is_refused(client, settings, oidc):
    settings.PASSWORD_LOGIN = False
    UserFactory(email="pm@example.com")

    page = client.get("/accounts/login/").content.decode()
    response = login(client, "pm@example.com")

    assert 'name="password"' not in page and 'id="password-login-off"' in page
    assert "Sign in with Acme login" in page
    assert response.status_code == 200
    assert 'role="alert">Signing in with a password is turned off here: use single sign-on.' in response.content.decode()
    assert client.get("/").status_code == 302  # still signed out


@pytest.mark.django_db
def test_people_of_an_sso_domain_cannot_use_a_password(client, settings, oidc):
    settings.SSO_REQUIRED_DOMAINS = frozenset({"acme.org"})
    UserFactory(email="ada@acme.org")
    UserFactory(email="pm@example.com")

    response = login(client, "Ada@Acme.org")

    assert "People at acme.org sign in with single sign-on, not a password" in response.content.decode()
    assert client.get("/").status_code == 302
    assert login(client, "pm@example.com").status_code == 302  # other domains still may
    assert client.get("/").status_code == 200


@pytest.mark.django_db
def test_the_admin_signs_in_through_the_same_page(client):
    response = client.get("/admin/login/?next=/admin/")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=%2Fadmin%2F"


# --- Domain mapping on the first SSO login -------------------------------------------------


def sso_login(settings, *, email, uid="subject-1", verified=True):
    """Run allauth's real social-login flow for an identity the provider just vouched for."""
    request = RequestFactory().get(f"/accounts/oidc/{OIDC_PROVIDER_ID}/login/callback/")
    SessionMiddleware(lambda r: None).process_request(request)
    MessageMiddleware(lambda r: None).process_request(request)
    request.user = AnonymousUser()
    with context.request_context(request):
        provider = get_adapter().get_provider(request, OIDC_PROVIDER_ID)
        data = {"userinfo": {"sub": uid, "email": email, "email_verified": verified}}
        sociallogin = provider.sociallogin_from_response(request, data)
        sociallogin.state = {"process": "login"}
        response = complete_login(request, sociallogin)
    return request, response, [str(m) for m in get_messages(request)]


@pytest.fixture
def mapped(settings, oidc):
    settings.SSO_DOMAINS = as_domain_grants("support.test=support-bot:editor,support.test=docs:viewer")
    return ProjectFactory(slug="support-bot", name="Support bot")


@pytest.mark.django_db
def test_a_first_sso_login_joins_the_mapped_projects_that_exist(settings, mapped, caplog):
    request, response, messages = sso_login(settings, email="ada@support.test")

    user = get_user_model().objects.get(email="ada@support.test")
    assert request.user == user and response.status_code == 302
    assert list(Membership.objects.filter(user=user).values_list("project__slug", "role")) == [
        ("support-bot", Role.EDITOR)
    ]
    assert "You joined the project Support bot as editor." in messages
    assert any("'docs', which does not exist" in message for message in messages)
    logged = [r.msg for r in caplog.records if isinstance(r.msg, dict) and r.msg["event"].startswith("sso.")]
    assert [(entry["event"], entry.get("project"), entry.get("role")) for entry in logged] == [
        ("sso.project_joined", None, "editor"),
        ("sso.mapped_project_missing", "docs", None),
    ]


@pytest.mark.django_db
def test_the_mapping_never_changes_a_role_someone_already_has(settings, mapped):
    owner = MembershipFactory(project=mapped, role=Role.OWNER, user__email="lead@support.test").user
    EmailAddress.objects.create(user=owner, email=owner.email, verified=True, primary=True)

    request, _, _ = sso_login(settings, email="lead@support.test")

    assert request.user == owner  # the invited account, found by its verified address
    assert SocialAccount.objects.filter(user=owner).count() == 1
    assert Membership.objects.get(user=owner, project=mapped).role == Role.OWNER


@pytest.mark.django_db
def test_the_mapping_applies_only_on_the_first_sso_login(settings, mapped):
    sso_login(settings, email="ada@support.test")
    Membership.objects.filter(user__email="ada@support.test").delete()  # an admin took them out

    _, _, messages = sso_login(settings, email="ada@support.test")

    assert not Membership.objects.filter(user__email="ada@support.test").exists()
    assert not any("joined" in message for message in messages)


@pytest.mark.django_db
def test_an_unmapped_domain_gets_no_project_and_is_told(settings, mapped):
    request, _, messages = sso_login(settings, email="bob@elsewhere.test")

    assert request.user.is_authenticated
    assert not Membership.objects.filter(user=request.user).exists()
    assert (
        "You are signed in, but your email domain (elsewhere.test) is not linked to any project, "
        "so you have no access to projects yet. Ask a project admin to add you."
    ) in messages


@pytest.mark.django_db
def test_an_unverified_email_is_refused(settings, mapped):
    request, response, _ = sso_login(settings, email="eve@support.test", verified=False)

    assert response.status_code == 401
    assert "did not confirm your email address" in response.content.decode()
    assert not request.user.is_authenticated
    assert not get_user_model().objects.filter(email="eve@support.test").exists()


# --- OpenID Connect responses that are not ours --------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("age", [0, 601])
def test_an_unknown_or_expired_state_is_refused_before_anything_is_called(client, oidc, socket_guard, age):
    session = client.session
    session["socialaccount_states"] = {"s1": ({"process": "login"}, time.time() - age, OIDC_PROVIDER_ID)}
    session.save()
    state = "forged" if age == 0 else "s1"

    response = client.get(f"/accounts/oidc/{OIDC_PROVIDER_ID}/login/callback/?code=abc&state={state}")

    assert response.status_code == 401
    assert "does not match a sign-in started here" in response.content.decode()
    assert socket_guard == []  # refused without asking the identity provider
    assert client.get("/").status_code == 302


# --- TOTP for local accounts ------------------------------------------------------------------


def totp(secret: str) -> str:
    """The code an authenticator app shows now (allauth's own HOTP over the 30 s period)."""
    return format_hotp_value(hotp_value(secret, int(time.time()) // 30))


@pytest.mark.django_db
def test_totp_is_enabled_and_then_asked_for_at_every_password_login(client):
    user = UserFactory(email="pm@example.com")
    assert login(client, "pm@example.com").status_code == 302
    assert client.get("/accounts/2fa/totp/activate/")["Location"].startswith("/accounts/reauthenticate/")
    assert client.post("/accounts/reauthenticate/", {"password": PASSWORD}).status_code == 302

    page = client.get("/accounts/2fa/totp/activate/")
    secret = client.session["mfa.totp.secret"]
    assert page.status_code == 200 and secret in page.content.decode()  # shown for apps without a camera
    assert "Incorrect code" in client.post("/accounts/2fa/totp/activate/", {"code": "000000"}).content.decode()
    activated = client.post("/accounts/2fa/totp/activate/", {"code": totp(secret)})
    assert activated.status_code == 302
    assert Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()
    recovery = Authenticator.objects.get(user=user, type=Authenticator.Type.RECOVERY_CODES)
    client.post("/accounts/logout/")

    response = login(client, "pm@example.com")
    assert response["Location"] == "/accounts/2fa/authenticate/"
    assert client.get("/").status_code == 302  # a password alone does not sign in
    assert "Incorrect code" in client.post("/accounts/2fa/authenticate/", {"code": "123456"}).content.decode()
    assert client.post("/accounts/2fa/authenticate/", {"code": totp(secret)})["Location"] == "/"
    assert client.get("/").status_code == 200
    client.post("/accounts/logout/")

    # A recovery code works once, for a lost phone.
    from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes

    code = RecoveryCodes(recovery).get_unused_codes()[0]
    login(client, "pm@example.com")
    assert client.post("/accounts/2fa/authenticate/", {"code": code})["Location"] == "/"
    client.post("/accounts/logout/")
    login(client, "pm@example.com")
    assert client.post("/accounts/2fa/authenticate/", {"code": code}).status_code == 200  # used up
    assert client.get("/").status_code == 302


# --- SAML responses: expired, replayed or altered ones are refused ---------------------------

SAML_IDP = "https://idp.acme.test/saml"
SP_HOST = "promptlab.acme.test"
ACS = f"http://{SP_HOST}/accounts/saml/acme/acs/"

ASSERTION = """<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" \
xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" \
ID="_a{nonce}" Version="2.0" IssueInstant="{now}">
<saml:Issuer>{idp}</saml:Issuer>
<saml:Subject>
<saml:NameID Format="urn:oasis:names:tc:SAML:2.0:nameid-format:persistent">user-{email}</saml:NameID>
<saml:SubjectConfirmation Method="urn:oasis:names:tc:SAML:2.0:cm:bearer">
<saml:SubjectConfirmationData NotOnOrAfter="{not_after}" Recipient="{acs}" InResponseTo="{request_id}"/>
</saml:SubjectConfirmation>
</saml:Subject>
<saml:Conditions NotBefore="{not_before}" NotOnOrAfter="{not_after}">
<saml:AudienceRestriction><saml:Audience>{audience}</saml:Audience></saml:AudienceRestriction>
</saml:Conditions>
<saml:AuthnStatement AuthnInstant="{now}" SessionIndex="_s{nonce}">
<saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:Password</saml:AuthnContextClassRef></saml:AuthnContext>
</saml:AuthnStatement>
<saml:AttributeStatement>
<saml:Attribute Name="email"><saml:AttributeValue xsi:type="xs:string">{email}</saml:AttributeValue></saml:Attribute>
</saml:AttributeStatement>
</saml:Assertion>"""

RESPONSE = """<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" \
xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r{nonce}" Version="2.0" IssueInstant="{now}" \
Destination="{acs}" InResponseTo="{request_id}">
<saml:Issuer>{idp}</saml:Issuer>
<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>
{assertion}
</samlp:Response>"""


@pytest.fixture(scope="module")
def saml_key():
    """The identity provider's signing key and self-signed certificate, made for the test."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idp.acme.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256())
    )  # fmt: skip
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return pem_key, cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture
def saml(client, settings, saml_key):
    from promptlab.accounts.sso import saml_app

    pytest.importorskip("onelogin.saml2", reason="SAML needs django-allauth[saml]")
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, SP_HOST]
    client.defaults["HTTP_HOST"] = SP_HOST  # python3-saml builds promptlab's URLs from it
    cert_body = "".join(saml_key[1].strip().splitlines()[1:-1])
    app = saml_app(
        slug="acme", name="Acme SAML", idp={"entity_id": SAML_IDP, "sso_url": f"{SAML_IDP}/sso", "x509cert": cert_body}
    )
    settings.SOCIALACCOUNT_PROVIDERS = {"saml": {"APPS": [app]}}
    settings.SSO_DOMAINS = as_domain_grants("support.test=support-bot:editor")
    ProjectFactory(slug="support-bot", name="Support bot")


def saml_start(client) -> str:
    """Start a SAML sign-in; returns the id of the request promptlab sent to the provider."""
    before = set(client.session.get("socialaccount_states", {}))
    response = client.post("/accounts/saml/acme/login/")
    assert response.status_code == 302 and response["Location"].startswith(f"{SAML_IDP}/sso?SAMLRequest=")
    (request_id,) = set(client.session["socialaccount_states"]) - before
    return request_id


def saml_response(saml_key, *, request_id, email="ada@support.test", valid_minutes=(-1, 5)) -> str:
    """A Success response with a signed assertion, as an identity provider would post it."""
    import base64
    import datetime
    import uuid

    from onelogin.saml2.utils import OneLogin_Saml2_Utils

    def at(minutes):
        moment = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=minutes)
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")

    values = {
        "nonce": uuid.uuid4().hex, "now": at(valid_minutes[0]), "idp": SAML_IDP, "email": email, "acs": ACS,
        "request_id": request_id, "not_before": at(valid_minutes[0] - 1), "not_after": at(valid_minutes[1]),
        "audience": f"http://{SP_HOST}/accounts/saml/acme/metadata/",
    }  # fmt: skip
    assertion = OneLogin_Saml2_Utils.add_sign(ASSERTION.format(**values), saml_key[0], saml_key[1])
    xml = RESPONSE.format(**values, assertion=assertion.decode())
    return base64.b64encode(xml.encode()).decode()


def saml_post(client, encoded: str):
    """What the browser does with the provider's auto-submitting form: POST to the ACS, follow."""
    response = client.post("/accounts/saml/acme/acs/", {"SAMLResponse": encoded})
    assert response.status_code == 302
    return client.get(response["Location"])


@pytest.mark.django_db
def test_a_signed_saml_response_signs_in_once_and_its_replay_is_refused(client, saml, saml_key):
    encoded = saml_response(saml_key, request_id=saml_start(client))

    response = saml_post(client, encoded)

    assert response.status_code == 302 and response["Location"] == "/"
    user = get_user_model().objects.get(email="ada@support.test")
    assert client.get("/").context["user"] == user
    assert Membership.objects.get(user=user).role == Role.EDITOR
    client.post("/accounts/logout/")

    replay = saml_post(client, encoded)

    assert replay.status_code == 403
    assert client.get("/").status_code == 302


@pytest.mark.django_db
def test_an_expired_saml_response_is_refused(client, saml, saml_key):
    encoded = saml_response(saml_key, request_id=saml_start(client), valid_minutes=(-30, -10))

    response = saml_post(client, encoded)

    assert response.status_code == 401
    assert "SAML response was refused" in response.content.decode()
    assert client.get("/").status_code == 302
    assert not get_user_model().objects.filter(email="ada@support.test").exists()


@pytest.mark.django_db
def test_an_altered_or_unsolicited_saml_response_is_refused(client, saml, saml_key):
    import base64

    request_id = saml_start(client)
    signed = base64.b64decode(saml_response(saml_key, request_id=request_id)).decode()
    altered = base64.b64encode(signed.replace("ada@support.test", "mallory@support.test").encode()).decode()
    unsolicited = saml_response(saml_key, request_id="_never-asked")

    assert saml_post(client, altered).status_code == 401
    assert saml_post(client, unsolicited).status_code == 403  # answers no request of ours
    assert client.get("/").status_code == 302
    assert not get_user_model().objects.filter(email__endswith="@support.test").exists()
