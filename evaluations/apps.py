from django.apps import AppConfig


class EvaluationsConfig(AppConfig):
    name = "evaluations"

    def ready(self):
        from evaluations import attachments, budget, progress
        from evaluations.gates import check_promotion
        from evaluations.services import item_assertions_validate
        from evaluations.signals import score_finished_run, score_item_runs, scores_reopen_for_budget
        from experiments import extensions
        from experiments.signals import experiment_resumed, item_assertions_changed, run_done
        from prompts import checks

        run_done.connect(score_finished_run, dispatch_uid="evaluations.score_finished_run")
        item_assertions_changed.connect(score_item_runs, dispatch_uid="evaluations.score_item_runs")
        experiment_resumed.connect(scores_reopen_for_budget, dispatch_uid="evaluations.scores_reopen_for_budget")
        checks.register_label_move_check("promotion gate", check_promotion, order=checks.EVIDENCE)
        extensions.register_attachment(attachments.EVALUATORS)
        extensions.register_assertions_check(item_assertions_validate)
        extensions.register_start_check("scoring budget", budget.start_problems)
        extensions.register_forecast("scoring", budget.scoring_forecast)
        extensions.register_scoring(extensions.Scoring(to_come=progress.scores_to_come, progress=progress.scoring_progress))
