from django.contrib import admin
from django.urls import include, path

from promptlab import health

admin.site.site_header = "promptlab admin"
admin.site.site_title = "promptlab"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("", include("evaluations.urls")),
    path("", include("experiments.urls")),
    path("", include("prompts.urls")),
]
