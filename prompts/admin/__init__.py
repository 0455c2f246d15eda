"""The admin, one module per area; importing them registers their ModelAdmins."""

from prompts.admin import catalog, projects, prompt_versions  # noqa: F401
