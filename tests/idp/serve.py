"""Run the test identity provider: migrate its fresh database, add the people and the one
client described by the JSON on stdin, then serve HTTP until terminated.

    python -m tests.idp.serve PORT < seed.json   (DJANGO_SETTINGS_MODULE=tests.idp.settings)
"""

import json
import sys

import django


def seed(data: dict) -> None:
    from allauth.account.models import EmailAddress
    from allauth.idp.oidc.models import Client
    from django.contrib.auth import get_user_model

    for person in data["users"]:
        user = get_user_model().objects.create_user(
            username=person["email"], email=person["email"], password=person["password"],
            first_name=person.get("first_name", ""),
        )  # fmt: skip
        EmailAddress.objects.create(user=user, email=person["email"], verified=person["verified"], primary=True)
    client = Client(id=data["client"]["id"], name="promptlab", type=Client.Type.CONFIDENTIAL)
    client.set_secret(data["client"]["secret"])
    client.set_redirect_uris([data["client"]["redirect_uri"]])
    client.set_scopes(["openid", "profile", "email"])
    client.save()


def main() -> None:
    port = int(sys.argv[1])
    django.setup()
    from django.core.management import call_command
    from django.core.servers.basehttp import run
    from django.core.wsgi import get_wsgi_application

    call_command("migrate", verbosity=0, interactive=False)
    seed(json.load(sys.stdin))
    run("127.0.0.1", port, get_wsgi_application(), threading=True)


if __name__ == "__main__":
    main()
