"""The admin, one module per area; importing them registers their ModelAdmins."""

from prompts.admin import api_keys, catalog, projects, prompt_versions  # noqa: F401
