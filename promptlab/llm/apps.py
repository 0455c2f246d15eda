from django.apps import AppConfig


class LlmConfig(AppConfig):
    name = "promptlab.llm"
    label = "llm"
    verbose_name = "models"
