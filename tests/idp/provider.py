"""Starts the test identity provider (tests/idp/settings.py) in a second process."""

import json
import os
import secrets
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import ROOT, free_port, stop, wait_for_http

PASSWORD = "idp-password-for-tests"


@dataclass
class Person:
    email: str
    verified: bool = True
    first_name: str = ""


@dataclass
class IdentityProvider:
    """An allauth.idp.oidc server on 127.0.0.1 with its own database, secret and RSA
    signing key, made fresh for each start. `client_id`/`client_secret` are what promptlab
    is registered with; `redirect_uri` is promptlab's callback URL."""

    redirect_uri: str
    people: list[Person]
    client_id: str = field(default_factory=lambda: f"promptlab-{secrets.token_hex(4)}")
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "IdentityProvider":
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        self._dir = tempfile.TemporaryDirectory(prefix="promptlab-idp-")
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.idp.settings",
            "IDP_SECRET_KEY": secrets.token_urlsafe(40),
            "IDP_PRIVATE_KEY": pem,
            "IDP_DATABASE": str(Path(self._dir.name) / "idp.sqlite3"),
        }
        seed = {
            "users": [{"email": p.email, "password": PASSWORD, "verified": p.verified, "first_name": p.first_name}
                      for p in self.people],
            "client": {"id": self.client_id, "secret": self.client_secret, "redirect_uri": self.redirect_uri},
        }  # fmt: skip
        self._log = Path(self._dir.name) / "idp.log"
        with self._log.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.idp.serve", str(self.port)],
                cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
        self.process.stdin.write(json.dumps(seed))
        self.process.stdin.close()
        try:
            wait_for_http(f"{self.url}/.well-known/openid-configuration", timeout=60, process=self.process)
        except AssertionError:
            self.stop()
            raise AssertionError(f"the identity provider did not start: {self.log()[-2000:]}") from None
        return self

    def log(self) -> str:
        """What the provider printed: its request log and any traceback."""
        return self._log.read_text()

    def stop(self) -> None:
        stop(self.process)
        self._dir.cleanup()
