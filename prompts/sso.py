"""Single sign-on's part in prompts: the projects a person's email domain maps to, joined
on their first SSO login (promptlab.accounts announces it with `first_sso_login`)."""

import structlog
from django.conf import settings
from django.contrib import messages

from prompts import selectors, services
from prompts.access import role_of
from promptlab.errors import NotFound
from promptlab.sso import email_domain, grants_for

logger = structlog.get_logger(__name__)


def join_mapped_projects(sender, *, request, user, email: str, **_) -> None:
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
