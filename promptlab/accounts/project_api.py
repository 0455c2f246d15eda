"""The base of every project-scoped REST endpoint: `ProjectApi` fixes the project (an API
key's own, or `?project=` for a signed-in person) and the actor services see."""

import functools
import re

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.views import APIView

from promptlab.accounts import selectors
from promptlab.accounts.api_keys import HasScope, api_key_actor, request_key
from promptlab.accounts.models import Project
from promptlab.api import SLUG, BoundedJSONParser
from promptlab.errors import Invalid, NotFound


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """The schema's description of project API keys."""

    target_class = "promptlab.accounts.api_keys.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http", "scheme": "bearer", "bearerFormat": "pl_<8 characters>_<secret>",
            "description": "A project API key (admin: API keys, or `manage.py create_api_key`). Its scopes decide which operations it may call.",
        }  # fmt: skip


class ProjectApi(APIView):
    """An endpoint inside one project. Subclasses set `required_scope` (see HasScope)."""

    permission_classes = [HasScope]
    parser_classes = [BoundedJSONParser]
    project_scoped = True
    required_scope: str | tuple | dict = "read"

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self.project_id = self._project_id(request)

    def _project_id(self, request) -> int:
        slug = request.query_params.get("project")
        key = request_key(request)
        # A key works only in its own project; what is not a slug names none (and PostgreSQL refuses a NUL in a query).
        if slug is not None and ((key is not None and slug != key.project_slug) or not re.fullmatch(SLUG, slug)):
            raise NotFound(f"There is no project {slug!r}.", details={"project": slug})
        if key is not None:
            return key.project_id
        if slug is not None:
            return selectors.project_for(user=request.user, slug=slug).pk
        mine = list(selectors.project_list_for(user=request.user).values_list("pk", "slug")[:21])
        if len(mine) == 1:
            return mine[0][0]
        if not mine:
            raise NotFound("You are not a member of any project.")
        raise Invalid(
            "Name the project with ?project=<slug>: you belong to several "
            f"({', '.join(slug for _, slug in mine[:20])}{', ...' if len(mine) > 20 else ''}).",
            details={"project": "required"},
        )

    @functools.cached_property
    def project(self) -> Project:
        return Project.objects.get(pk=self.project_id)

    @functools.cached_property
    def actor(self):
        """Who services see acting: the signed-in person, or the key's creator marked with the key."""
        key = request_key(self.request)
        return self.request.user if key is None else api_key_actor(key)

    @property
    def api_key_id(self) -> int | None:
        key = request_key(self.request)
        return key and key.id

    @staticmethod
    def valid(serializer_class, data, **kwargs) -> dict:
        serializer = serializer_class(data=data, **kwargs)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data
