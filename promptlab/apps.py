from django.apps import AppConfig


class PromptlabConfig(AppConfig):
    name = "promptlab"
    verbose_name = "promptlab system"
