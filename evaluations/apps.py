from django.apps import AppConfig


class EvaluationsConfig(AppConfig):
    name = "evaluations"

    def ready(self):
        from evaluations.signals import score_finished_run
        from experiments.signals import run_done

        run_done.connect(score_finished_run, dispatch_uid="evaluations.score_finished_run")
