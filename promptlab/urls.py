from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.http import HttpResponsePermanentRedirect
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from promptlab import api, health

admin.site.site_header = "promptlab admin"
admin.site.site_title = "promptlab"
# The admin signs in through allauth's page, so SSO rules and MFA apply there too.
admin.site.login = secure_admin_login(admin.site.login)

# Admin pages of models that moved to another app keep answering at their old addresses.
MOVED_ADMIN = {
    "prompts/project": "accounts/project", "prompts/membership": "accounts/membership", "prompts/apikey": "accounts/apikey",
    "prompts/modelendpoint": "llm/modelendpoint", "evaluations/webhook": "governance/webhook",
    "evaluations/webhookdelivery": "governance/webhookdelivery",
}  # fmt: skip


def moved_admin_page(request, old: str, rest: str):
    query = request.META.get("QUERY_STRING", "")
    return HttpResponsePermanentRedirect(f"/admin/{MOVED_ADMIN[old]}/{rest}" + (f"?{query}" if query else ""))


urlpatterns = [
    re_path(r"^admin/(?P<old>%s)/(?P<rest>.*)$" % "|".join(MOVED_ADMIN), moved_admin_page),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("api/v1/", include(api.api_urlpatterns())),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    re_path(r"^api/", api.no_endpoint),  # after every endpoint: the rest of /api/ is a JSON 404
    path("", include("evaluations.governance.urls")),
    path("", include("evaluations.promptfoo.urls")),
    path("", include("evaluations.urls")),
    path("", include("experiments.urls")),
    path("", include("prompts.urls")),
]

handler404 = "promptlab.api.page_not_found"
handler500 = "promptlab.api.server_error"
