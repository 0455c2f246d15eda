from django.apps import AppConfig


class PromptfooConfig(AppConfig):
    name = "evaluations.promptfoo"
    label = "promptfoo"
    verbose_name = "promptfoo interop"

    def ready(self):
        from evaluations.promptfoo.item_asserts import READER
        from experiments import extensions

        extensions.register_assertion_reader(READER)
