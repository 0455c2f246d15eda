from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "promptlab.accounts"
    label = "accounts"
    verbose_name = "accounts and projects"

    def ready(self):
        from promptlab.accounts import api_keys

        api_keys.connect_signals()
