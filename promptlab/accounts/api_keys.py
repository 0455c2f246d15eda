"""Project API keys: create and revoke them, and the REST API's key authentication, scope
check and per-key throttle.

A key is `pl_<8 characters>_<43 characters>`: the first part (`prefix`) is stored as is
and shown in lists; the whole key is stored only as its sha256. The secret part carries
256 random bits, so a fast hash is the right one (nothing to brute-force, unlike a
password) and verifying a key costs microseconds. The hash is compared in constant time.

A key authenticates as an `ApiCaller`; the services are called with `api_key_actor`:
the key's creator, marked with the key, so that `promptlab.accounts.access` gives it its creator's
role in the key's project and no role anywhere else. Scopes say which operations a key may
call at all; the role still decides each write (moving `production` needs a key made by an
admin). A key works only while its creator is active and a member of its project: that is
part of the key's cached record, which is forgotten the moment the creator is saved or deleted
or their membership changes. A key made by the operator's CLI has no creator and acts as the
operator, within its project and scopes, until it is revoked.
"""

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

import structlog
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone
from rest_framework import authentication, exceptions, permissions, throttling

from promptlab.accounts.access import Action, authorize
from promptlab.accounts.models import ApiKey, ApiKeyScope, Membership, Project
from promptlab.errors import Invalid

logger = structlog.get_logger(__name__)

KEY_PATTERN = re.compile(r"^(?P<prefix>pl_[A-Za-z0-9]{8})_(?P<secret>[A-Za-z0-9_-]{43})$")
PREFIX_ALPHABET = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
# Cached key records are re-read at least this often, so a revocation that could not
# clear the cache (Redis down) still takes effect within it.
KEY_CACHE_SECONDS = 60
LAST_USED_EVERY_SECONDS = 60


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


# --- Services ------------------------------------------------------------------------------


@transaction.atomic
def api_key_create(*, project: Project, actor, name: str, scopes: list[str]) -> tuple[ApiKey, str]:
    """Create a key for the project; returns (key, secret). The secret is never stored or
    shown again: only its hash is kept."""
    authorize(actor, project, Action.MANAGE)
    name = (name or "").strip()
    if not name:
        raise Invalid("Name the key after what will use it, e.g. support-bot production.", details={"name": "required"})
    if len(name) > ApiKey._meta.get_field("name").max_length:
        raise Invalid("A key name has at most 200 characters.", details={"name": name[:50]})
    unknown = [scope for scope in scopes if scope not in ApiKeyScope.values]
    if unknown or not scopes:
        raise Invalid(
            f"Give the key one or more scopes of: {', '.join(ApiKeyScope.values)}"
            + (f" (unknown: {', '.join(map(str, unknown))})." if unknown else "."),
            details={"scopes": unknown or "required"},
        )
    prefix = "pl_" + "".join(secrets.choice(PREFIX_ALPHABET) for _ in range(8))
    secret = f"{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey(
        project=project, name=name, prefix=prefix, secret_hash=_hash(secret),
        scopes=[scope for scope in ApiKeyScope.values if scope in scopes], created_by=actor, operator=actor is None,
    )  # fmt: skip
    key._history_user, key._change_reason = actor, "Created"
    key.save()
    logger.info("prompts.api_key_created", api_key_id=key.pk, prefix=prefix, project_id=project.pk, scopes=key.scopes)
    return key, secret


@transaction.atomic
def api_key_revoke(*, key: ApiKey, actor) -> ApiKey:
    """Revoke the key: from the next request on, it is refused."""
    authorize(actor, key.project, Action.MANAGE)
    if key.revoked_at is None:
        key.revoked_at, key.revoked_by = timezone.now(), actor
        key._history_user, key._change_reason = actor, "Revoked"
        key.save(update_fields=["revoked_at", "revoked_by"])
        logger.info("prompts.api_key_revoked", api_key_id=key.pk, prefix=key.prefix)
    _forget(key.prefix)
    transaction.on_commit(lambda: _forget(key.prefix))
    return key


# --- Verifying a key -----------------------------------------------------------------------


@dataclass(frozen=True)
class KeyRecord:
    """What a request needs to know about its key, cached by prefix."""

    id: int
    prefix: str
    project_id: int
    project_slug: str
    secret_hash: str
    scopes: tuple[str, ...]
    created_by_id: int | None
    operator: bool
    revoked: bool
    last_used_at: float | None  # epoch seconds
    creator_problem: str | None  # why the creator can no longer lend the key their access


def _cache_key(prefix: str) -> str:
    return f"apikey:{prefix}"


def _forget(prefix: str) -> None:
    cache.delete(_cache_key(prefix))


def _record(prefix: str) -> KeyRecord | None:
    cached = cache.get(_cache_key(prefix))
    if cached is not None:
        return KeyRecord(*cached) if cached else None
    key = ApiKey.objects.select_related("project").filter(prefix=prefix).first()
    record = key and KeyRecord(
        id=key.pk, prefix=key.prefix, project_id=key.project_id, project_slug=key.project.slug, secret_hash=key.secret_hash,
        scopes=tuple(key.scopes),
        created_by_id=key.created_by_id, operator=key.operator, revoked=key.revoked,
        last_used_at=key.last_used_at.timestamp() if key.last_used_at else None, creator_problem=_creator_problem(key),
    )  # fmt: skip
    cache.set(_cache_key(prefix), tuple(record.__dict__.values()) if record else (), timeout=KEY_CACHE_SECONDS)
    return record


def api_key_verify(raw: str) -> KeyRecord | None:
    """The live key that `raw` is, or None (malformed, unknown, wrong secret or revoked)."""
    match = KEY_PATTERN.match(raw)
    if not match:
        return None
    record = _record(match["prefix"])
    if record is None or not hmac.compare_digest(record.secret_hash, _hash(raw)) or record.revoked:
        return None
    _touch(record)
    return record


def _touch(record: KeyRecord) -> None:
    """Record the key's use, at most once a minute: a busy key must not write on every request."""
    if cache.add(f"apikey:used:{record.id}", 1, timeout=LAST_USED_EVERY_SECONDS):
        ApiKey.objects.filter(pk=record.id).update(last_used_at=timezone.now())


def _creator_problem(key: ApiKey) -> str | None:
    """Why the key's creator can no longer lend it their access, if they cannot: a key works only
    while the person who made it is active and in its project (a superuser is in every project).
    A key of the operator's CLI has no creator: it works until it is revoked."""
    if key.operator:
        return None
    creator = key.created_by_id and (
        get_user_model().objects.filter(pk=key.created_by_id)
        .annotate(member=Exists(Membership.objects.filter(project_id=key.project_id, user_id=OuterRef("pk"))))
        .values("is_active", "is_superuser", "member").first()
    )  # fmt: skip
    if not creator:
        return "the person who created it has been deleted"
    if not creator["is_active"]:
        return "the person who created it has been deactivated"
    if not (creator["member"] or creator["is_superuser"]):
        return f"the person who created it is no longer a member of project {key.project.slug}"
    return None


def forget_keys_of(*, user_id: int, project_id: int | None = None) -> None:
    """The keys a person created (in one project, or all) are checked afresh on their next request,
    now and once the change commits: their creator was saved or deleted, or their membership changed."""
    keys = ApiKey.objects.filter(created_by_id=user_id)
    if project_id is not None:
        keys = keys.filter(project_id=project_id)
    prefixes = list(keys.values_list("prefix", flat=True))
    for prefix in prefixes:
        _forget(prefix)
    transaction.on_commit(lambda: [_forget(prefix) for prefix in prefixes])


def api_key_actor(record: KeyRecord):
    """The actor services see for a key: its creator, marked with the key (see promptlab.accounts.access),
    or None for a key made by the operator's CLI."""
    if record.operator:
        return None
    user = record.created_by_id and get_user_model().objects.filter(pk=record.created_by_id).first()
    if not user:  # deleted since the request was authenticated: no role anywhere
        return ApiCaller(record)
    user.api_key = record
    return user


# --- DRF: authentication, scopes, throttle ---------------------------------------------------


class ApiCaller:
    """request.user for a request made with an API key. As an actor it has no role anywhere
    (promptlab.accounts.access: marked with a key and no pk), so it serves for a key whose creator was deleted."""

    is_authenticated = True
    is_active = True
    is_anonymous = False
    is_staff = False
    is_superuser = False
    pk = None

    def __init__(self, record: KeyRecord):
        self.api_key = record

    def __str__(self):
        return f"API key {self.api_key.prefix}"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer pl_...`. Any other scheme is left to the next authenticator."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].decode("latin-1").lower() != self.keyword.lower():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header: use `Bearer <key>`.")
        try:
            raw = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid API key.") from None
        record = api_key_verify(raw)
        if record is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        if record.creator_problem:
            raise exceptions.AuthenticationFailed(
                f"This API key no longer works: {record.creator_problem}. An admin of project {record.project_slug} can make a new one."
            )
        return ApiCaller(record), record

    def authenticate_header(self, request):
        return f'{self.keyword} realm="api"'


def request_key(request) -> KeyRecord | None:
    return request.auth if isinstance(request.auth, KeyRecord) else None


class HasScope(permissions.BasePermission):
    """A key needs a scope the view asks for: `required_scope` is a scope, a tuple of scopes
    any of which will do, or a dict of those by HTTP method. People signed in with a
    session have every scope: their role decides."""

    def has_permission(self, request, view):
        if not (request.user and request.user.is_authenticated):
            return False
        key = request_key(request)
        scope = getattr(view, "required_scope", None)
        if isinstance(scope, dict):
            scope = scope.get("GET" if request.method == "HEAD" else request.method)
        accepted = (scope,) if isinstance(scope, str) else tuple(scope or ())
        if key is None or not accepted or set(accepted) & set(key.scopes):
            return True
        self.message = f"This API key lacks the {' or '.join(map(repr, accepted))} scope (it has: {', '.join(key.scopes)})."
        return False


class KeyRateThrottle(throttling.BaseThrottle):
    """API_RATE_LIMIT_PER_MINUTE requests per minute per key (or per signed-in user), counted
    in the shared cache with atomic add/incr, so every web process shares one limit. With
    the cache down requests are let through: the limit protects promptlab, it is not a
    reason to fail."""

    def allow_request(self, request, view):
        limit = settings.API_RATE_LIMIT_PER_MINUTE
        if not limit or not request.user or not request.user.is_authenticated:
            return True
        key = request_key(request)
        who = f"key:{key.id}" if key else f"user:{request.user.pk}"
        now = time.time()
        minute = int(now // 60)
        counter = f"api:rate:{who}:{minute}"
        try:
            count = 1 if cache.add(counter, 1, timeout=120) else cache.incr(counter)
        except ValueError:  # expired between add and incr
            count = 1
        self.retry_after = (minute + 1) * 60 - now
        return count <= limit

    def wait(self):
        return max(1.0, self.retry_after)


def _creator_changed(sender, instance, **kwargs) -> None:
    """A person was saved (deactivated, say) or is about to be deleted: their keys are checked afresh."""
    forget_keys_of(user_id=instance.pk)


def _membership_changed(sender, instance, **kwargs) -> None:
    """A membership was saved or deleted: its person's keys in that project are checked afresh."""
    forget_keys_of(user_id=instance.user_id, project_id=instance.project_id)


def connect_signals() -> None:
    from django.db.models.signals import post_delete, post_save, pre_delete

    user_model = get_user_model()
    post_save.connect(_creator_changed, sender=user_model, dispatch_uid="api_keys.creator_saved")
    pre_delete.connect(_creator_changed, sender=user_model, dispatch_uid="api_keys.creator_deleted")  # before its keys lose it
    post_save.connect(_membership_changed, sender=Membership, dispatch_uid="api_keys.membership_saved")
    post_delete.connect(_membership_changed, sender=Membership, dispatch_uid="api_keys.membership_deleted")
