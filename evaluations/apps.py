from django.apps import AppConfig


class EvaluationsConfig(AppConfig):
    name = "evaluations"

    def ready(self):
        from evaluations import attachments
        from evaluations.gates import check_promotion
        from evaluations.services import item_assertions_validate
        from evaluations.signals import score_finished_run
        from experiments import extensions
        from experiments.signals import run_done
        from prompts import checks

        run_done.connect(score_finished_run, dispatch_uid="evaluations.score_finished_run")
        checks.register_label_move_check("promotion gate", check_promotion, order=checks.EVIDENCE)
        extensions.register_attachment(attachments.EVALUATORS)
        extensions.register_assertions_check(item_assertions_validate)
