from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from promptlab import api, health

admin.site.site_header = "promptlab admin"
admin.site.site_title = "promptlab"
# The admin signs in through allauth's page, so SSO rules and MFA apply there too.
admin.site.login = secure_admin_login(admin.site.login)

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("api/v1/", include(api.api_urlpatterns())),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("evaluations.urls")),
    path("", include("experiments.urls")),
    path("", include("prompts.urls")),
]

handler404 = "promptlab.api.page_not_found"
handler500 = "promptlab.api.server_error"
