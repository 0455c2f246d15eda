from django.urls import path

from evaluations import analytics_views

urlpatterns = [
    path("projects/<slug:slug>/prompts/<slug:name>/analytics/", analytics_views.prompt_analytics, name="prompt_analytics"),
]
