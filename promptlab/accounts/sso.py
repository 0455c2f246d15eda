"""Single sign-on policy: which email domains join which projects, and which must use SSO.

The parsers run while settings load (no models imported here), so a bad entry stops
startup with a message naming it.
"""

import re
from dataclasses import dataclass

# The roles a domain may hand out on its own. Ownership is always granted by a person.
DOMAIN_ROLES = ("viewer", "editor", "admin")

_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_SLUG = re.compile(r"^[-a-zA-Z0-9_]+$")


@dataclass(frozen=True)
class DomainGrant:
    """People whose verified email is at `domain` join `project` as `role` on their first SSO login."""

    domain: str
    project: str
    role: str


def _domain(raw: str, entry: str) -> str:
    domain = raw.strip().lower().lstrip("@")
    if not _DOMAIN.match(domain):
        raise ValueError(f"{entry!r}: {raw.strip()!r} is not an email domain such as example.com")
    return domain


def as_domain_grants(raw: str) -> tuple[DomainGrant, ...]:
    """Parse `example.com=support-bot:editor,acme.org=acme:viewer` (a domain may appear
    once per project)."""
    grants: list[DomainGrant] = []
    seen: set[tuple[str, str]] = set()
    for entry in (part.strip() for part in raw.split(",")):
        if not entry:
            continue
        domain, equals, target = entry.partition("=")
        project, colon, role = target.partition(":")
        if not equals or not colon:
            raise ValueError(f"{entry!r} must look like domain=project:role, e.g. example.com=support-bot:editor")
        domain, project, role = _domain(domain, entry), project.strip(), role.strip().lower()
        if not _SLUG.match(project):
            raise ValueError(f"{entry!r}: {project!r} is not a project slug")
        if role not in DOMAIN_ROLES:
            raise ValueError(f"{entry!r}: the role must be one of {', '.join(DOMAIN_ROLES)}, not {role!r}")
        if (domain, project) in seen:
            raise ValueError(f"{entry!r}: {domain} is mapped to {project} twice")
        seen.add((domain, project))
        grants.append(DomainGrant(domain=domain, project=project, role=role))
    return tuple(grants)


def as_domains(raw: str) -> frozenset[str]:
    """Parse `example.com,acme.org`."""
    return frozenset(_domain(part, part.strip()) for part in raw.split(",") if part.strip())


def email_domain(email: str) -> str:
    return email.rpartition("@")[2].strip().lower()


def grants_for(email: str, grants: tuple[DomainGrant, ...]) -> list[DomainGrant]:
    """The grants that apply to this email address (exact domain match, no subdomains)."""
    domain = email_domain(email)
    return [grant for grant in grants if grant.domain == domain]


def sso_required(email: str, required_domains: frozenset[str]) -> bool:
    return email_domain(email) in required_domains


# The provider id is part of the callback URL that operators register at their identity
# provider: /accounts/oidc/sso/login/callback/.
OIDC_PROVIDER_ID = "sso"


def oidc_app(*, server_url: str, client_id: str, secret: str, name: str) -> dict:
    """The one OpenID Connect app (allauth's `openid_connect` provider): authorization code
    flow with PKCE, the email taken from verified claims only (see accounts.py)."""
    return {
        "provider_id": OIDC_PROVIDER_ID,
        "name": name,
        "client_id": client_id,
        "secret": secret,
        "settings": {"server_url": server_url.rstrip("/"), "oauth_pkce_enabled": True, "fetch_userinfo": True},
    }


def saml_app(*, slug: str, name: str, idp: dict, email_attribute: str = "") -> dict:
    """The one SAML app (allauth's `saml` provider). Responses must be signed, answer a
    request we made (IdP-initiated logins are refused) and be within their validity window."""
    mapping = {
        "uid": ["urn:oasis:names:tc:SAML:attribute:subject-id"],
        "email": [
            *([email_attribute] if email_attribute else []),
            "urn:oid:0.9.2342.19200300.100.1.3",
            "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
            "email",
        ],
        "first_name": ["urn:oid:2.5.4.42", "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname"],
        "last_name": ["urn:oid:2.5.4.4", "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname"],
    }
    return {
        "name": name,
        "client_id": slug,
        "settings": {
            "idp": idp,
            "attribute_mapping": mapping,
            # A signed assertion from the company's identity provider is what vouches for the address.
            "verified_email": True,
            "advanced": {
                "strict": True,
                "want_assertion_signed": True,
                "reject_idp_initiated_sso": True,
                "reject_deprecated_algorithm": True,
            },
        },
    }
