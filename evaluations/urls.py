from django.urls import path

from evaluations import views

urlpatterns = [
    path("experiments/<int:pk>/comparison/", views.experiment_comparison, name="experiment_comparison"),
]
