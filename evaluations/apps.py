from django.apps import AppConfig


class EvaluationsConfig(AppConfig):
    name = "evaluations"

    def ready(self):
        from evaluations.gates import check_promotion
        from evaluations.governance import admin as _governance_admin  # noqa: F401 (registers the webhook admin)
        from evaluations.governance import tasks as _governance_tasks  # noqa: F401 (not an app's tasks.py: autodiscovery misses it)
        from evaluations.governance.approvals import check_approval_required
        from evaluations.governance.webhooks import on_label_moved, on_prompt_version_created
        from evaluations.signals import score_finished_run
        from experiments.signals import run_done
        from prompts.signals import label_moved, label_moving, prompt_version_created

        run_done.connect(score_finished_run, dispatch_uid="evaluations.score_finished_run")
        # Approval first: a move the project does not allow is refused before the gate records a decision.
        label_moving.connect(check_approval_required, dispatch_uid="evaluations.check_approval_required")
        label_moving.connect(check_promotion, dispatch_uid="evaluations.check_promotion")
        prompt_version_created.connect(on_prompt_version_created, dispatch_uid="evaluations.webhooks.prompt_version_created")
        label_moved.connect(on_label_moved, dispatch_uid="evaluations.webhooks.label_moved")
