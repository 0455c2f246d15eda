from django.urls import path

from experiments import views

urlpatterns = [
    path("projects/<slug:slug>/experiments/", views.experiments_page, name="experiments"),
    path("projects/<slug:slug>/experiments/new/", views.experiment_new, name="experiment_new"),
    path("projects/<slug:slug>/experiments/forecast/", views.experiment_forecast, name="experiment_forecast"),
    path("experiments/<int:pk>/", views.experiment_detail, name="experiment_detail"),
    path("projects/<slug:slug>/playground/", views.playground_page, name="playground"),
    path("projects/<slug:slug>/playground/runs/<uuid:batch>/", views.playground_results, name="playground_results"),
    path("projects/<slug:slug>/playground/calls/<int:pk>/save/", views.playground_save, name="playground_save"),
    path("projects/<slug:slug>/datasets/", views.datasets_page, name="datasets"),
    path("projects/<slug:slug>/datasets/<slug:name>/", views.dataset_page, name="dataset_detail"),
    path("projects/<slug:slug>/datasets/<slug:name>/export.<str:format>", views.dataset_download, name="dataset_export"),
    path("projects/<slug:slug>/datasets/<slug:name>/items/<int:row>/checks/", views.dataset_item_checks, name="dataset_item_checks"),
]
