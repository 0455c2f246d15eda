from django.apps import AppConfig


class PromptfooConfig(AppConfig):
    name = "evaluations.promptfoo"
    label = "promptfoo"
    verbose_name = "promptfoo interop"
