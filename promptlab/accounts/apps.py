from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "promptlab.accounts"
    label = "accounts"
    verbose_name = "accounts and projects"
