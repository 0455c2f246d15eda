from django.urls import path

from experiments import views

urlpatterns = [
    path("experiments/<int:pk>/", views.experiment_detail, name="experiment_detail"),
]
