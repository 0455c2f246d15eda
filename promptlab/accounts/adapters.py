"""How people sign in: allauth adapters for passwords, single sign-on and its domain mapping.

Public sign-up is closed unless PROMPTLAB_SIGNUP_OPEN is set: admins invite people. Single
sign-on creates accounts for anyone the configured identity provider vouches for (a
verified email address), but access to a project comes only from an admin or from the
PROMPTLAB_SSO_DOMAINS mapping, applied once, on a person's first SSO login.
"""

import structlog
from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.forms import LoginForm as AllauthLoginForm
from allauth.account.utils import user_email
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.providers.oauth2.client import OAuth2Error
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import render
from requests import RequestException

from promptlab.accounts import selectors, services
from promptlab.accounts.access import role_of
from promptlab.accounts.sso import email_domain, grants_for, sso_required
from promptlab.errors import NotFound

logger = structlog.get_logger(__name__)

# The verified email of a first SSO login, kept in the social login's state across login stages.
FIRST_SSO_LOGIN = "promptlab_first_sso_login"

PASSWORD_LOGIN_OFF = "Signing in with a password is turned off here: use single sign-on."


class LoginForm(AllauthLoginForm):
    """allauth's form; tells the template whether to offer passwords and sign-up at all."""

    @property
    def password_login(self) -> bool:
        return settings.PASSWORD_LOGIN

    @property
    def signup_open(self) -> bool:
        return settings.SIGNUP_OPEN and settings.PASSWORD_LOGIN


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request):
        return settings.SIGNUP_OPEN

    def pre_authenticate(self, request, **credentials):
        """Every password check allauth makes (sign-in, re-authentication) passes here first."""
        if not settings.PASSWORD_LOGIN:
            raise ValidationError(PASSWORD_LOGIN_OFF)
        # Re-authentication passes the username (our usernames are email addresses) when the
        # account has no EmailAddress row, as invited accounts do not.
        email = credentials.get("email") or credentials.get("username") or ""
        if sso_required(email, settings.SSO_REQUIRED_DOMAINS):
            raise ValidationError(
                f"People at {email_domain(email)} sign in with single sign-on, not a password: "
                "use the single sign-on button."
            )
        super().pre_authenticate(request, **credentials)

    def post_login(self, request, user, **kwargs):
        sociallogin = (kwargs.get("signal_kwargs") or {}).get("sociallogin")
        if sociallogin is not None and (email := sociallogin.state.pop(FIRST_SSO_LOGIN, None)):
            join_mapped_projects(request=request, user=user, email=email)
        return super().post_login(request, user, **kwargs)


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def is_open_for_signup(self, request, sociallogin):
        # The identity provider decides who may sign in; projects still need a grant.
        return True

    def pre_social_login(self, request, sociallogin):
        """Refuse an identity without a provider-verified email address; note whether this
        is the person's first SSO login (the account is not linked yet)."""
        verified = [address.email for address in sociallogin.email_addresses if address.verified]
        if not verified:
            logger.warning("sso.login_refused", reason="unverified_email", provider=sociallogin.account.provider)
            raise ImmediateHttpResponse(
                _refusal(
                    request,
                    "Your identity provider did not confirm your email address, so promptlab cannot sign you in. "
                    "Ask your administrator to verify the address at the identity provider.",
                )
            )
        email = user_email(sociallogin.user) if sociallogin.user is not None else None
        if email not in verified:
            email = verified[0]
            if sociallogin.user is not None and sociallogin.user.pk is None:
                user_email(sociallogin.user, email)
        if sociallogin.account.pk is None:
            sociallogin.state[FIRST_SSO_LOGIN] = email

    def on_authentication_error(self, request, provider, error=None, exception=None, extra_context=None):
        """Say plainly why the SSO login was refused; the template shows `sso_error`."""
        context = extra_context or {}
        reason, message = _explain(error, exception, context)
        logger.warning(
            "sso.login_refused",
            reason=reason,
            provider=getattr(provider, "id", None),
            error=str(exception)[:300] if exception else context.get("saml_last_error_reason") or error,
        )
        if extra_context is not None:
            extra_context["sso_error"] = message
        super().on_authentication_error(request, provider, error, exception, extra_context)


def _explain(error, exception, context: dict) -> tuple[str, str]:
    not_signed_in = "You are not signed in."
    if context.get("saml_errors"):
        return "saml_response", (
            "The identity provider's SAML response was refused: it was expired, already used, not signed, "
            f"or not meant for promptlab. {not_signed_in} Start again from the sign-in page."
        )
    if isinstance(exception, RequestException):
        return "provider_unreachable", f"promptlab could not reach the identity provider. {not_signed_in} Try again later."
    if isinstance(exception, OAuth2Error) and "access token" in str(exception):
        return "token_refused", (
            "The identity provider refused promptlab's sign-in request: promptlab's client ID or secret "
            f"is probably wrong. {not_signed_in} Ask your administrator to check the single sign-on settings."
        )
    if exception is not None and not isinstance(exception, PermissionDenied):
        return "invalid_response", (
            f"The identity provider's answer could not be verified. {not_signed_in} Start again from the sign-in page."
        )
    if "state_id" in context or isinstance(exception, PermissionDenied):
        return "state_mismatch", (
            "This sign-in response does not match a sign-in started here: it has expired, was already used, "
            f"or was changed on the way. {not_signed_in} Start again from the sign-in page."
        )
    return "provider_error", f"The identity provider did not sign you in. {not_signed_in} Start again from the sign-in page."


def _refusal(request, message: str):
    return render(request, "socialaccount/authentication_error.html", {"sso_error": message}, status=401)


def join_mapped_projects(*, request, user, email: str) -> None:
    """Apply PROMPTLAB_SSO_DOMAINS: join each project mapped to the person's email domain
    with its default role, never changing a role someone already has there. A domain
    that maps to nothing gives nothing, and the person is told."""
    grants = grants_for(email, settings.SSO_DOMAINS)
    for grant in grants:
        try:
            project = selectors.project_get(slug=grant.project)
        except NotFound:
            logger.error("sso.mapped_project_missing", user_id=user.pk, domain=grant.domain, project=grant.project)
            messages.warning(
                request,
                f"Your email domain is set up to join the project {grant.project!r}, which does not exist. "
                "Ask your administrator.",
            )
            continue
        if role_of(user, project) is not None:
            continue
        services.membership_set(project=project, user=user, role=grant.role, actor=None)
        logger.info("sso.project_joined", user_id=user.pk, project_id=project.pk, role=grant.role)
        messages.success(request, f"You joined the project {project.name} as {grant.role}.")
    if not grants and not selectors.project_list_for(user=user).exists():
        logger.info("sso.domain_unmapped", user_id=user.pk, domain=email_domain(email))
        messages.warning(
            request,
            f"You are signed in, but your email domain ({email_domain(email)}) is not linked to any project, "
            "so you have no access to projects yet. Ask a project admin to add you.",
        )
