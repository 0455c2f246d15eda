"""The accounts admin, one module per area; importing them registers their ModelAdmins."""

from promptlab.accounts.admin import api_keys, projects  # noqa: F401
