"""The OpenAPI schema validates and the Swagger UI is served from our own static files."""

import pytest
from drf_spectacular.validation import validate_schema

pytestmark = pytest.mark.django_db


def test_the_schema_is_valid_openapi_and_lists_every_endpoint(client):
    response = client.get("/api/schema/?format=json")

    assert response.status_code == 200
    schema = response.json()
    validate_schema(schema)
    assert schema["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    assert {"/api/v1/prompts/{name}/", "/api/v1/prompts/{name}/invoke/", "/api/v1/calls/{call_id}/feedback/",
            "/api/v1/datasets/{name}/upload/", "/api/v1/experiments/{id}/runs/"} <= set(schema["paths"])  # fmt: skip
    error = schema["paths"]["/api/v1/prompts/{name}/render/"]["post"]["responses"]["400"]
    assert error["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/Error"


def test_swagger_ui_uses_local_assets_only(client):
    page = client.get("/api/docs/").content.decode()

    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page
    assert "cdn" not in page.lower() and "unpkg" not in page.lower()
