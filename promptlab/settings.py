"""promptlab settings: every value comes from the environment through `promptlab.env.env`.

With nothing set, promptlab runs embedded (SQLite file, filesystem broker, local-memory
cache). DATABASE_URL and REDIS_URL switch the same code to PostgreSQL and Redis.
DJANGO_ENV=production refuses to start without the variables a deployment needs.
"""

import importlib.util
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

from promptlab.accounts.sso import as_domain_grants, as_domains, oidc_app, saml_app
from promptlab.env import REQUIRED, as_bool, as_list, env

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env("PROMPTLAB_VAR_DIR", str(BASE_DIR / "var")))

DJANGO_ENV = env("DJANGO_ENV", "development")
if DJANGO_ENV not in {"development", "production"}:
    raise ImproperlyConfigured("The environment variable DJANGO_ENV must be 'development' or 'production'.")
PRODUCTION = DJANGO_ENV == "production"


def dev_default(value):
    """A default that applies in development only; production must set the variable."""
    return REQUIRED if PRODUCTION else value


SECRET_KEY = env("SECRET_KEY", dev_default("django-insecure-development-key-never-use-in-production"))
DEBUG = env("DJANGO_DEBUG", not PRODUCTION, cast=as_bool)
ALLOWED_HOSTS = env("ALLOWED_HOSTS", dev_default(["127.0.0.1", "localhost", "[::1]"]), cast=as_list)
CSRF_TRUSTED_ORIGINS = env("CSRF_TRUSTED_ORIGINS", [], cast=as_list)
BASE_URL = env("PROMPTLAB_BASE_URL", dev_default("http://127.0.0.1:8000")).rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "allauth.mfa",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "simple_history",
    "promptlab",
    "promptlab.accounts",
    "promptlab.llm",
    "prompts",
    "experiments",
    "evaluations",
    "evaluations.governance",
    "evaluations.promptfoo",
]

MIDDLEWARE = [
    "promptlab.logs.RequestLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
]

ROOT_URLCONF = "promptlab.urls"
WSGI_APPLICATION = "promptlab.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------
DATABASE_URL = env("DATABASE_URL", dev_default(f"sqlite:///{VAR_DIR / 'promptlab.sqlite3'}"))
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL,
        conn_max_age=env("DATABASE_CONN_MAX_AGE", 60, cast=int),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web process and the worker share the file: wait for locks instead of failing,
    # and take the write lock up front so concurrent writers queue rather than deadlock.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL;",
    }
    # A file, not memory, so that a worker process started by the tests sees the test data.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
    VAR_DIR.mkdir(parents=True, exist_ok=True)
else:
    DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = 5
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and broker -----------------------------------------------------------------
REDIS_URL = env("REDIS_URL", dev_default(None))
# Redis is an accelerator, never a single point of failure: while it is unreachable the
# cache serves from each process's memory (promptlab.redis_cache), sends are left to the
# sweeper (promptlab.dispatch, promptlab.sweeper), and every read comes from PostgreSQL.
REDIS_SOCKET_TIMEOUT_SECONDS = env("REDIS_SOCKET_TIMEOUT_SECONDS", 0.5, cast=float)
REDIS_RETRY_SECONDS = env("REDIS_RETRY_SECONDS", 5.0, cast=float)  # after a failure, Redis is not asked for this long
REDIS_FALLBACK_SECONDS = env("REDIS_FALLBACK_SECONDS", 5.0, cast=float)  # the longest anything is kept in memory meanwhile
BROKER_RETRY_SECONDS = env("BROKER_RETRY_SECONDS", 5.0, cast=float)  # after a failed send, sends wait for the sweeper this long
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "promptlab.redis_cache.ResilientRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "promptlab",
            "OPTIONS": {"socket_connect_timeout": REDIS_SOCKET_TIMEOUT_SECONDS, "socket_timeout": REDIS_SOCKET_TIMEOUT_SECONDS},
        }
    }
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_CONNECTION_TIMEOUT = 2
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # A message not acknowledged within this time is delivered again, so it must
        # exceed the hard time limit of the longest task.
        "visibility_timeout": 3600,
        "socket_connect_timeout": 2,
        "socket_timeout": 5,  # above the worker's 1 s blocking pop; a hanging broker fails a send within it
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CELERY_BROKER_URL = "filesystem://localhost/"
    _broker_dir = VAR_DIR / "broker"
    for _folder in ("queue", "control"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }

# --- Celery (reliability defaults of STYLE.md) -----------------------------------------
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env("CELERY_TASK_SOFT_TIME_LIMIT", 300, cast=int)
CELERY_TASK_TIME_LIMIT = env("CELERY_TASK_TIME_LIMIT", 330, cast=int)
CELERY_TASK_DEFAULT_QUEUE = "default"
# "llm" keeps slow model calls from starving quick bookkeeping tasks on "default".
CELERY_TASK_QUEUES = [Queue("default"), Queue("llm")]
CELERY_TASK_ROUTES = {"experiments.drain": {"queue": "llm"}, "experiments.playground_call": {"queue": "llm"}}
# Judges and embedding evaluators call models.
CELERY_TASK_ROUTES |= {"evaluations.score_run": {"queue": "llm"}, "evaluations.score_runs": {"queue": "llm"}}
CELERY_TASK_ROUTES |= {"prompts.invoke": {"queue": "llm"}}
CELERY_TASK_IGNORE_RESULT = True  # results live in the database, never in the broker
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- LLM gateway ------------------------------------------------------------------------
# Hosts that model calls may reach (fnmatch patterns): an endpoint's api_base, or its provider's
# public host when api_base is empty (promptlab.llm.outbound, the SSRF guard). A private, loopback
# or link-local address is reached only when its host or the address is listed exactly, so the
# development default "*" admits public hosts by name and this machine through its two entries.
PROMPTLAB_API_BASE_HOSTS = env("PROMPTLAB_API_BASE_HOSTS", [] if PRODUCTION else ["127.0.0.1", "localhost", "*"], cast=as_list)
# An endpoint's api_key_env must start with this, so no other variable (DATABASE_URL...) is sent as a key.
PROMPTLAB_KEY_ENV_PREFIX = env("PROMPTLAB_KEY_ENV_PREFIX", "PROMPTLAB_KEY_")
GATEWAY_BREAKER_FAILURES = env("GATEWAY_BREAKER_FAILURES", 5, cast=int)
GATEWAY_BREAKER_COOLDOWN_SECONDS = env("GATEWAY_BREAKER_COOLDOWN_SECONDS", 30.0, cast=float)
GATEWAY_BACKOFF_SECONDS = env("GATEWAY_BACKOFF_SECONDS", 0.5, cast=float)
GATEWAY_BACKOFF_MAX_SECONDS = env("GATEWAY_BACKOFF_MAX_SECONDS", 20.0, cast=float)
GATEWAY_LIMIT_WAIT_SECONDS = env("GATEWAY_LIMIT_WAIT_SECONDS", 30.0, cast=float)
GATEWAY_RESPONSE_CACHE_SECONDS = env("GATEWAY_RESPONSE_CACHE_SECONDS", 86400, cast=int)

# Lost messages are sent again (promptlab.sweeper): every worker looks every SWEEP_SECONDS
# for work with no sign of life for SWEEP_STALE_SECONDS.
SWEEP_SECONDS = env("SWEEP_SECONDS", 30.0, cast=float)
SWEEP_STALE_SECONDS = env("SWEEP_STALE_SECONDS", 60.0, cast=float)

# The lease on a claimed run, invoke or playground call, or score (promptlab.leases): a live worker
# renews it every third of it while the call is in flight; past it, the worker died and another takes over.
LLM_CALL_LEASE_SECONDS = env("LLM_CALL_LEASE_SECONDS", 60, cast=int)

# --- Webhooks (evaluations.governance.webhooks) -------------------------------------------
# Hosts a webhook URL may point at (fnmatch patterns): nothing else is ever called, so no
# internal address is reachable unless an operator lists it. Deliveries run on "default".
PROMPTLAB_WEBHOOK_HOSTS = env("PROMPTLAB_WEBHOOK_HOSTS", [] if PRODUCTION else ["127.0.0.1", "localhost"], cast=as_list)
# Ports a webhook URL may use ("*": any); development allows any, for local receivers.
PROMPTLAB_WEBHOOK_PORTS = env("PROMPTLAB_WEBHOOK_PORTS", ["80", "443"] if PRODUCTION else ["*"], cast=as_list)
WEBHOOK_TIMEOUT_SECONDS = env("WEBHOOK_TIMEOUT_SECONDS", 10.0, cast=float)
WEBHOOK_MAX_ATTEMPTS = env("WEBHOOK_MAX_ATTEMPTS", 8, cast=int)
WEBHOOK_BACKOFF_SECONDS = env("WEBHOOK_BACKOFF_SECONDS", 30.0, cast=float)
WEBHOOK_BACKOFF_MAX_SECONDS = env("WEBHOOK_BACKOFF_MAX_SECONDS", 3600.0, cast=float)

# --- Prompt rendering limits ---------------------------------------------------------------
PROMPT_RENDER_MAX_CHARS = env("PROMPT_RENDER_MAX_CHARS", 200_000, cast=int)
PROMPT_RENDER_MAX_ITEMS = env("PROMPT_RENDER_MAX_ITEMS", 10_000, cast=int)
PROMPT_RENDER_TIMEOUT_SECONDS = env("PROMPT_RENDER_TIMEOUT_SECONDS", 2.0, cast=float)
# Renders at once per process; beyond it a render waits 1 s for a slot, then answers 503 render_busy.
PROMPT_RENDER_CONCURRENCY = env("PROMPT_RENDER_CONCURRENCY", 2, cast=int)

# --- User regular expressions (promptlab.patterns) --------------------------------------
# Longest search of a user's pattern on one output; past it the score is errored and not retried.
USER_REGEX_TIMEOUT_SECONDS = env("USER_REGEX_TIMEOUT_SECONDS", 1.0, cast=float)

# --- REST API ------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "promptlab.accounts.api_keys.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",  # the browser; enforces CSRF
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["promptlab.accounts.api_keys.KeyRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "promptlab.api.ApiSchema",
    "EXCEPTION_HANDLER": "promptlab.api.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "promptlab API",
    "DESCRIPTION": "Fetch, render and invoke prompts; manage versions, labels, datasets and experiments. "
    "Authenticate with `Authorization: Bearer <project API key>`. Errors: "
    '`{"error": {"code", "message", "details"}}`.',
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v[0-9]+",
    "SWAGGER_UI_DIST": "SIDECAR",  # served from our static files, never a CDN
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "experiments.models.RunStatus",
        "ExperimentStatusEnum": "experiments.models.ExperimentStatus",
        "CallStatusEnum": "prompts.models.PromptCallStatus",
    },
}
# Requests per minute per API key (or signed-in user), shared by all web processes; 0: no limit.
API_RATE_LIMIT_PER_MINUTE = env("API_RATE_LIMIT_PER_MINUTE", 600, cast=int)
# How long a resolved prompt stays cached (saves and label moves invalidate it at once).
PROMPT_CACHE_SECONDS = env("PROMPT_CACHE_SECONDS", 300, cast=int)
# The longest an invoke request waits for its call (then 504 with the call id); keep it
# below the web server's timeout (GUNICORN_TIMEOUT).
API_INVOKE_MAX_WAIT_SECONDS = env("API_INVOKE_MAX_WAIT_SECONDS", 50.0, cast=float)
API_INVOKE_WAIT_MARGIN_SECONDS = 5.0  # beyond the model's timeout: queueing and recording

# --- Accounts -------------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
ACCOUNT_ADAPTER = "promptlab.accounts.adapters.AccountAdapter"
ACCOUNT_FORMS = {"login": "promptlab.accounts.adapters.LoginForm"}
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = "optional"
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
SIGNUP_OPEN = env("PROMPTLAB_SIGNUP_OPEN", False, cast=as_bool)
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"

# --- Single sign-on and MFA (docs/operator-guide/sso-and-mfa.md) ------------------------------
SOCIALACCOUNT_ADAPTER = "promptlab.accounts.adapters.SocialAccountAdapter"
SOCIALACCOUNT_AUTO_SIGNUP = True  # the identity provider vouches for the person: no second form
SOCIALACCOUNT_EMAIL_VERIFICATION = "none"  # only provider-verified addresses get in (accounts.py)
# An invited person's first SSO login (same verified address) signs in to their account.
SOCIALACCOUNT_EMAIL_AUTHENTICATION = True
SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = True
SOCIALACCOUNT_STORE_TOKENS = False
PASSWORD_LOGIN = env("PROMPTLAB_PASSWORD_LOGIN", True, cast=as_bool)
SSO_REQUIRED_DOMAINS = env("PROMPTLAB_SSO_REQUIRED_DOMAINS", frozenset(), cast=as_domains)
SSO_DOMAINS = env("PROMPTLAB_SSO_DOMAINS", (), cast=as_domain_grants)
SOCIALACCOUNT_PROVIDERS = {}
if OIDC_SERVER_URL := env("PROMPTLAB_OIDC_SERVER_URL", ""):
    SOCIALACCOUNT_PROVIDERS["openid_connect"] = {
        "APPS": [
            oidc_app(
                server_url=OIDC_SERVER_URL,
                client_id=env("PROMPTLAB_OIDC_CLIENT_ID"),
                secret=env("PROMPTLAB_OIDC_CLIENT_SECRET"),
                name=env("PROMPTLAB_OIDC_NAME", "Single sign-on"),
            )
        ]
    }
SAML_IDP_METADATA_URL = env("PROMPTLAB_SAML_IDP_METADATA_URL", "")
SAML_IDP_SSO_URL = env("PROMPTLAB_SAML_IDP_SSO_URL", "")
SAML_INSTALLED = importlib.util.find_spec("onelogin") is not None  # django-allauth[saml]
if SAML_INSTALLED:
    INSTALLED_APPS.append("allauth.socialaccount.providers.saml")  # no button until configured
if SAML_IDP_METADATA_URL or SAML_IDP_SSO_URL:
    if not SAML_INSTALLED:
        raise ImproperlyConfigured(
            "SAML is configured but python3-saml is not installed: install django-allauth[saml]."
        )
    if SAML_IDP_METADATA_URL:
        _saml_idp = {"metadata_url": SAML_IDP_METADATA_URL}
    else:
        _saml_idp = {
            "entity_id": env("PROMPTLAB_SAML_IDP_ENTITY_ID"),
            "sso_url": SAML_IDP_SSO_URL,
            "x509cert": env("PROMPTLAB_SAML_IDP_X509CERT"),
        }
    SOCIALACCOUNT_PROVIDERS["saml"] = {
        "APPS": [
            saml_app(
                slug=env("PROMPTLAB_SAML_SLUG", "sso"),
                name=env("PROMPTLAB_SAML_NAME", "Single sign-on (SAML)"),
                idp=_saml_idp,
                email_attribute=env("PROMPTLAB_SAML_EMAIL_ATTRIBUTE", ""),
            )
        ]
    }
if not PASSWORD_LOGIN and not SOCIALACCOUNT_PROVIDERS:
    raise ImproperlyConfigured(
        "PROMPTLAB_PASSWORD_LOGIN is off but no single sign-on is configured "
        "(PROMPTLAB_OIDC_SERVER_URL or PROMPTLAB_SAML_IDP_METADATA_URL): nobody could sign in."
    )
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = "promptlab"
# allauth wants a verified address before MFA so that nobody can sign up with someone
# else's address and lock them out; with sign-up closed, admins create every account.
MFA_ALLOW_UNVERIFIED_EMAIL = not SIGNUP_OPEN

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

EMAIL_BACKEND = env("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env("EMAIL_HOST", "localhost")
EMAIL_PORT = env("EMAIL_PORT", 25, cast=int)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env("EMAIL_USE_TLS", False, cast=as_bool)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "promptlab <promptlab@localhost>")

# --- Internationalisation, static files -------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
if not PRODUCTION:
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns on every start without it
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# --- Security: production behind a TLS-terminating proxy ----------------------------------
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env("SECURE_SSL_REDIRECT", True, cast=as_bool)
    # Load balancers probe over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
    SECURE_HSTS_SECONDS = env("SECURE_HSTS_SECONDS", 31536000, cast=int)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
X_FRAME_OPTIONS = "DENY"

# --- Logging -------------------------------------------------------------------------
LOG_LEVEL = env("LOG_LEVEL", "INFO")
LOG_FORMAT = env("LOG_FORMAT", "json" if PRODUCTION else "console")
if LOG_FORMAT not in {"json", "console"}:
    raise ImproperlyConfigured("The environment variable LOG_FORMAT must be 'json' or 'console'.")
LOGGING_CONFIG = None  # configured once by promptlab.logs, for web and worker alike

from promptlab.logs import configure_logging  # noqa: E402

configure_logging(json_output=LOG_FORMAT == "json", level=LOG_LEVEL)
