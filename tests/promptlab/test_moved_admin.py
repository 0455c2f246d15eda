"""Admin pages of models that moved apps (projects, API keys, the model catalog, webhooks)
answer at their old addresses with a permanent redirect, so bookmarks keep working."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "old, new",
    [
        ("/admin/prompts/project/", "/admin/accounts/project/"),
        ("/admin/prompts/apikey/7/change/", "/admin/accounts/apikey/7/change/"),
        ("/admin/prompts/modelendpoint/?enabled__exact=1", "/admin/llm/modelendpoint/?enabled__exact=1"),
        ("/admin/evaluations/webhookdelivery/", "/admin/governance/webhookdelivery/"),
    ],
)
def test_an_old_admin_address_redirects_to_the_new_one(admin_client, old, new):
    response = admin_client.get(old)

    assert response.status_code == 301
    assert response["Location"] == new


def test_the_redirect_lands_on_the_page(admin_client):
    response = admin_client.get("/admin/prompts/project/", follow=True)

    assert response.redirect_chain == [("/admin/accounts/project/", 301)]
    assert response.status_code == 200


def test_admin_pages_of_models_that_stayed_are_not_redirected(admin_client):
    assert admin_client.get("/admin/prompts/prompt/").status_code == 200
