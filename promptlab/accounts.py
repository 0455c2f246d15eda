from allauth.account.adapter import DefaultAccountAdapter
from django.conf import settings


class AccountAdapter(DefaultAccountAdapter):
    """Public sign-up is closed unless PROMPTLAB_SIGNUP_OPEN is set: admins invite people."""

    def is_open_for_signup(self, request):
        return settings.SIGNUP_OPEN
