"""The project switcher of the top navigation, on every page that extends base.html."""

from django import template

from promptlab.accounts import selectors

register = template.Library()
NAV_PROJECTS = 30  # past this many, the switcher links to the home page for the rest


@register.simple_tag(takes_context=True)
def nav_projects(context) -> dict:
    """The user's projects for the switcher, from one query; none for a visitor."""
    user = context.get("user")
    if user is None or not user.is_authenticated:
        return {"projects": [], "more": False}
    projects = list(selectors.project_list_for(user=user)[: NAV_PROJECTS + 1])
    return {"projects": projects[:NAV_PROJECTS], "more": len(projects) > NAV_PROJECTS}
