from django.apps import AppConfig


class EvaluationsConfig(AppConfig):
    name = "evaluations"

    def ready(self):
        from evaluations.gates import check_promotion
        from evaluations.signals import score_finished_run
        from experiments.signals import run_done
        from prompts.signals import label_moving

        run_done.connect(score_finished_run, dispatch_uid="evaluations.score_finished_run")
        label_moving.connect(check_promotion, dispatch_uid="evaluations.check_promotion")
