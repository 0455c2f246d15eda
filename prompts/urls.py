from django.urls import path

from prompts import views

urlpatterns = [
    path("", views.home, name="home"),
    path("projects/<slug:slug>/prompts/", views.prompt_list, name="prompt_list"),
    path("projects/<slug:slug>/prompts/<slug:name>/", views.prompt_detail, name="prompt_detail"),
]
