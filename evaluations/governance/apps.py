from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    name = "evaluations.governance"
    label = "governance"
    verbose_name = "governance"

    def ready(self):
        from evaluations.governance.approvals import check_approval_required
        from evaluations.governance.webhooks import on_label_moved, on_prompt_version_created
        from prompts import checks
        from prompts.signals import label_moved, prompt_version_created

        checks.register_label_move_check("approval required", check_approval_required, order=checks.POLICY)
        prompt_version_created.connect(on_prompt_version_created, dispatch_uid="governance.webhooks.prompt_version_created")
        label_moved.connect(on_label_moved, dispatch_uid="governance.webhooks.label_moved")
