from django.apps import AppConfig


class PromptsConfig(AppConfig):
    name = "prompts"

    def ready(self):
        from prompts.sso import join_mapped_projects
        from promptlab.accounts import first_sso_login

        first_sso_login.connect(join_mapped_projects, dispatch_uid="prompts.join_mapped_projects")
