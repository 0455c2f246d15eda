from django.urls import path

from evaluations.promptfoo import views

urlpatterns = [
    path("projects/<slug:slug>/promptfoo/import/", views.promptfoo_import, name="promptfoo_import"),
]
