"""The prompts admin; importing it registers the ModelAdmins."""

from prompts.admin import prompt_versions  # noqa: F401
