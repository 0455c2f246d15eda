from django.urls import path

from evaluations import analytics_views, views

urlpatterns = [
    path("experiments/<int:pk>/comparison/", views.experiment_comparison, name="experiment_comparison"),
    path("experiments/<int:pk>/comparison/stats/", views.experiment_stats, name="experiment_stats"),
    path("experiments/<int:pk>/comparison/progress/", views.experiment_scoring_progress, name="experiment_scoring_progress"),
    path("experiments/<int:pk>/comparison/ratings/", views.experiment_ratings, name="experiment_ratings"),
    path("experiments/<int:pk>/runs/<int:run_id>/rating/", views.run_rate, name="run_rate"),
    path("experiments/<int:pk>/items/<int:item_id>/diff/", views.item_diff, name="item_diff"),
    path("experiments/<int:pk>/export.<str:format>", views.experiment_export, name="experiment_export"),
    path("projects/<slug:slug>/prompts/<slug:name>/analytics/", analytics_views.prompt_analytics, name="prompt_analytics"),
]
