"""Settings for Group Admin, read from the environment (and `.env`) by django-environ.

Every variable is listed, with its default, in `.env.example`.
"""

from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DEBUG", default=False)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set it in the environment or .env "
            "(only a DEBUG=true development server may run without one)."
        )
    SECRET_KEY = "development-only-key-never-used-with-debug-off"  # noqa: S105 (DEBUG only)
SECRET_KEY_FALLBACKS = env.list("SECRET_KEY_FALLBACKS", default=[])

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "mozilla_django_oidc",
    "django_tasks_db",
    "ninja",  # the REST API; its documentation page's scripts and styles are served from here
    "groups_app",
    "sandbox",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "groups_app.middleware.RequestIdMiddleware",
    "groups_app.middleware.SignInThrottleMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "groups_app.middleware.SignedInUserMiddleware",
    "groups_app.middleware.SessionIdleTimeoutMiddleware",
    "groups_app.middleware.ViewerTimeZoneMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "groups_app.oidc.IdentityProviderRefreshMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "groups_app.middleware.NoStoreMiddleware",
    "groups_app.middleware.FriendlyErrorPagesMiddleware",
    "groups_app.middleware.SegmentErrorMiddleware",
    "groups_app.middleware.DatabaseErrorMiddleware",
]

ROOT_URLCONF = "dashboard.urls"
WSGI_APPLICATION = "dashboard.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "groups_app.context_processors.dashboard",
            ],
        },
    },
]

# Database: SQLite in the project folder unless DATABASE_URL says otherwise.
# ATOMIC_REQUESTS stays off: audit entries must commit before the upstream call.
# On PostgreSQL, each process logs in as one role: `migrate` as the owner of the tables
# (DATABASE_URL names the owner there), the web and worker processes as the role named by
# DATABASE_APP_ROLE (their DATABASE_URL names it), which every migrate grants only what the
# dashboard needs: it can never delete, truncate or alter the audit log (groups_app/database_roles.py).
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Empty: no grants are made (the app then runs with the owner's rights; check --deploy warns).
DATABASE_APP_ROLE = env.str("DATABASE_APP_ROLE", default="").strip()

# SQLite (the default): the worker writes beside the server. WAL lets readers go on while one
# process writes; IMMEDIATE transactions take the write lock when they begin rather than failing
# at once when a read turns into a write; and a writer waits up to SQLITE_BUSY_TIMEOUT seconds for
# the lock instead of answering "database is locked".
SQLITE_BUSY_TIMEOUT = env.float("SQLITE_BUSY_TIMEOUT", default=20.0)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
            "transaction_mode": "IMMEDIATE",
            "timeout": SQLITE_BUSY_TIMEOUT,
        }
    )

# Cache: shared between workers in production (Redis), local memory otherwise.
if env.str("CACHE_URL", default=""):
    CACHES = {"default": env.cache_url("CACHE_URL")}
elif env.str("REDIS_URL", default=""):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": env.str("REDIS_URL"),
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
CACHES["default"].setdefault("KEY_PREFIX", env.str("CACHE_KEY_PREFIX", default="group-admin"))

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "groups:list"
LOGOUT_REDIRECT_URL = "login"

# Single sign-on through the company's identity provider (OpenID Connect, authorization code
# flow with PKCE; mozilla-django-oidc). People are created on first sign-in from their verified
# email; OIDC_ROLE_MAP turns values of the groups claim into dashboard roles at every sign-in.
OIDC_ENABLED = env.bool("OIDC_ENABLED", default=False)
OIDC_PROVIDER_NAME = env.str("OIDC_PROVIDER_NAME", default="your company's sign-in")
OIDC_OP_ISSUER = env.str("OIDC_OP_ISSUER", default="")
OIDC_OP_AUTHORIZATION_ENDPOINT = env.str("OIDC_OP_AUTHORIZATION_ENDPOINT", default="")
OIDC_OP_TOKEN_ENDPOINT = env.str("OIDC_OP_TOKEN_ENDPOINT", default="")
OIDC_OP_USER_ENDPOINT = env.str("OIDC_OP_USER_ENDPOINT", default="")
OIDC_OP_JWKS_ENDPOINT = env.str("OIDC_OP_JWKS_ENDPOINT", default="")
OIDC_OP_LOGOUT_ENDPOINT = env.str("OIDC_OP_LOGOUT_ENDPOINT", default="")
OIDC_RP_CLIENT_ID = env.str("OIDC_RP_CLIENT_ID", default="")
OIDC_RP_CLIENT_SECRET = env.str("OIDC_RP_CLIENT_SECRET", default="")
OIDC_RP_SIGN_ALGO = env.str("OIDC_RP_SIGN_ALGO", default="RS256")
OIDC_RP_SCOPES = env.str("OIDC_RP_SCOPES", default="openid email profile")
OIDC_GROUPS_CLAIM = env.str("OIDC_GROUPS_CLAIM", default="groups")
# "claim value=Role, …", e.g. "groupadmin-admins=Administrator, it-helpdesk=Help desk, staff=Viewer".
OIDC_ROLE_MAP_TEXT = env.str("OIDC_ROLE_MAP", default="")
OIDC_USE_PKCE = True
OIDC_USE_NONCE = True
OIDC_STORE_ID_TOKEN = True  # for the provider's sign-out (id_token_hint)
OIDC_TIMEOUT = env.float("OIDC_TIMEOUT", default=10.0)
OIDC_CREATE_USER = True
OIDC_AUTHENTICATION_CALLBACK_URL = "oidc_authentication_callback"
OIDC_OP_LOGOUT_URL_METHOD = "groups_app.oidc.provider_logout_url"
LOGIN_REDIRECT_URL_FAILURE = "/accounts/login/?sso=refused"
# Seconds a single sign-on session keeps the roles last read from the provider; then the next
# request re-reads the groups claim (refresh token, then user information), so a role removed at
# the provider is gone from live sessions too. A provider that refuses or cannot be reached ends
# the session.
OIDC_ROLE_REFRESH_SECONDS = env.int("OIDC_ROLE_REFRESH_SECONDS", default=900)
# The API and the MCP server also take the provider's access tokens issued for this audience
# (JWTs signed with the provider's keys); empty: only personal API tokens.
OIDC_API_AUDIENCE = env.str("OIDC_API_AUDIENCE", default="")


def oidc_role_map() -> dict[str, str]:
    """OIDC_ROLE_MAP as {claim value: role}.

    Raises:
        ImproperlyConfigured: a pair that is not value=Role, or a role the dashboard does not have.
    """
    from groups_app.roles import ROLE_PERMISSIONS

    mapping = {}
    for pair in filter(None, (part.strip() for part in OIDC_ROLE_MAP_TEXT.split(","))):
        value, _, role = (piece.strip() for piece in pair.partition("="))
        if not value or role not in ROLE_PERMISSIONS:
            raise ImproperlyConfigured(
                f"OIDC_ROLE_MAP: cannot read {pair!r}; write claim-value=Role with a role among "
                f"{', '.join(ROLE_PERMISSIONS)}."
            )
        mapping[value] = role
    return mapping


OIDC_ROLE_MAP = oidc_role_map()
if OIDC_ENABLED:
    missing = [
        name
        for name in (
            "OIDC_OP_ISSUER",
            "OIDC_OP_AUTHORIZATION_ENDPOINT",
            "OIDC_OP_TOKEN_ENDPOINT",
            "OIDC_OP_USER_ENDPOINT",
            "OIDC_OP_JWKS_ENDPOINT",
            "OIDC_RP_CLIENT_ID",
            "OIDC_RP_CLIENT_SECRET",
        )
        if not globals()[name]
    ]
    if missing:
        raise ImproperlyConfigured(f"OIDC_ENABLED=true needs {', '.join(missing)}.")
if not OIDC_ENABLED and not env.bool("LOCAL_LOGIN_ENABLED", default=True):
    raise ImproperlyConfigured(
        "LOCAL_LOGIN_ENABLED=false needs single sign-on (OIDC_ENABLED=true): nobody could sign in."
    )

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# Security. With DEBUG off the site is served over HTTPS: Secure cookies, HSTS and the
# redirect to HTTPS are on unless turned off explicitly (e.g. TLS ends at a proxy that
# already redirects: keep SECURE_SSL_REDIRECT on and set BEHIND_HTTPS_PROXY=true).
SECURE_COOKIES = env.bool("SECURE_COOKIES", default=not DEBUG)
SESSION_COOKIE_SECURE = SECURE_COOKIES
CSRF_COOKIE_SECURE = SECURE_COOKIES
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True  # htmx reads the token from the page (hx-headers), never the cookie
SESSION_COOKIE_SAMESITE = "Lax"
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]  # probes speak plain HTTP inside the network
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if env.bool("BEHIND_HTTPS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Proxies whose X-Forwarded-For is believed for the client's address (IPs or CIDR ranges).
# Empty: the address is the TCP peer's (REMOTE_ADDR).
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])

# Sign-in: local passwords (the sandbox demo, or where there is no identity provider) can be
# switched off. Failures lock an account, and an address, out for SIGN_IN_LOCKOUT_SECONDS.
LOCAL_LOGIN_ENABLED = env.bool("LOCAL_LOGIN_ENABLED", default=True)
AUTHENTICATION_BACKENDS = [
    *(["django.contrib.auth.backends.ModelBackend"] if LOCAL_LOGIN_ENABLED else []),
    *(["groups_app.oidc.GroupAdminOIDCBackend"] if OIDC_ENABLED else []),
]
SIGN_IN_MAX_FAILURES_PER_ACCOUNT = env.int("SIGN_IN_MAX_FAILURES_PER_ACCOUNT", default=5)
SIGN_IN_MAX_FAILURES_PER_ADDRESS = env.int("SIGN_IN_MAX_FAILURES_PER_ADDRESS", default=20)
SIGN_IN_LOCKOUT_SECONDS = env.int("SIGN_IN_LOCKOUT_SECONDS", default=15 * 60)
# Refused attempts recorded one by one per account (or anonymous address) and minute: refused
# changes in the audit log, sign-ins refused while locked. Beyond it the answer is 429 and one
# row per minute counts the rest, so that nobody can flood the audit log.
REFUSED_ATTEMPTS_PER_MINUTE = env.int("REFUSED_ATTEMPTS_PER_MINUTE", default=10)
if REFUSED_ATTEMPTS_PER_MINUTE < 1:
    raise ImproperlyConfigured("REFUSED_ATTEMPTS_PER_MINUTE must be at least 1.")

# Sessions end after this many seconds without a request (and when the browser closes).
SESSION_IDLE_TIMEOUT = env.int("SESSION_IDLE_TIMEOUT", default=30 * 60)
SESSION_COOKIE_AGE = SESSION_IDLE_TIMEOUT  # renewed while in use (SessionIdleTimeoutMiddleware)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
    "base-uri": [CSP.NONE],
    "object-src": [CSP.NONE],
}
if OIDC_ENABLED and OIDC_OP_LOGOUT_ENDPOINT:
    # Sign-out is a form whose answer redirects to the provider: CSP must allow that target.
    _logout = urlsplit(OIDC_OP_LOGOUT_ENDPOINT)
    SECURE_CSP["form-action"].append(f"{_logout.scheme}://{_logout.netloc}")

# Segment Public API, or the local sandbox workspace: an explicit choice, never implied by a
# missing token (see check_segment_mode below).
SEGMENT_MODE = env.str("SEGMENT_MODE", default="sandbox")
SEGMENT_API_TOKEN = env.str("SEGMENT_API_TOKEN", default="")
SEGMENT_API_URL = env.str("SEGMENT_API_URL", default="https://api.segmentapis.com")
SEGMENT_CONNECT_TIMEOUT = env.float("SEGMENT_CONNECT_TIMEOUT", default=3.05)
SEGMENT_READ_TIMEOUT = env.float("SEGMENT_READ_TIMEOUT", default=15.0)
SEGMENT_MAX_RETRIES = env.int("SEGMENT_MAX_RETRIES", default=3)
SEGMENT_MAX_RETRY_WAIT = env.float("SEGMENT_MAX_RETRY_WAIT", default=30.0)
SEGMENT_PAGE_SIZE = env.int("SEGMENT_PAGE_SIZE", default=200)
# The most one web request waits for Segment in all: timeouts, retries and rate-limit waits together.
SEGMENT_REQUEST_DEADLINE = env.float("SEGMENT_REQUEST_DEADLINE", default=10.0)
# /readyz asks Segment whether the token is accepted at most once per this many seconds.
READINESS_SEGMENT_TTL = env.int("READINESS_SEGMENT_TTL", default=60)

# Groups granting any of these IAM roles are privileged: only Administrators change them.
PRIVILEGED_ROLES = env.list("PRIVILEGED_ROLES", default=["Workspace Owner"])
# Additions to a privileged group, and grants of a privileged role, need a second Administrator.
TWO_PERSON_RULE = env.bool("TWO_PERSON_RULE", default=True)

SANDBOX_DEFAULT_TOKEN = "sandbox-token"  # noqa: S105 - public on purpose; refused with DEBUG off
SANDBOX_API_TOKEN = env.str("SANDBOX_API_TOKEN", default=SANDBOX_DEFAULT_TOKEN)
# A sandbox served with DEBUG off (a shared demo server) must be allowed explicitly.
SANDBOX_ALLOW_WITHOUT_DEBUG = env.bool("SANDBOX_ALLOW_WITHOUT_DEBUG", default=False)


def check_segment_mode() -> bool:
    """Refuse to start on a mode that is unsafe or not what was meant; return whether it is the sandbox."""
    if SEGMENT_MODE not in ("sandbox", "live"):
        raise ImproperlyConfigured(f"SEGMENT_MODE must be sandbox or live, not {SEGMENT_MODE!r}.")
    if SEGMENT_MODE == "live":
        if not SEGMENT_API_TOKEN:
            raise ImproperlyConfigured(
                "SEGMENT_MODE=live needs SEGMENT_API_TOKEN: a Public API token of the workspace "
                "(Settings → Workspace settings → Access Management → Tokens)."
            )
        return False
    if SEGMENT_API_TOKEN:
        raise ImproperlyConfigured(
            "SEGMENT_API_TOKEN is set but SEGMENT_MODE is sandbox: set SEGMENT_MODE=live to work on "
            "the real workspace, or remove the token to use the sandbox."
        )
    if not DEBUG and not SANDBOX_ALLOW_WITHOUT_DEBUG:
        raise ImproperlyConfigured(
            "Sandbox mode serves a fake workspace and refuses to run with DEBUG off. Set "
            "SEGMENT_MODE=live with SEGMENT_API_TOKEN for production, or SANDBOX_ALLOW_WITHOUT_DEBUG=true "
            "(with a secret SANDBOX_API_TOKEN) for a shared demo server."
        )
    if not DEBUG and SANDBOX_API_TOKEN == SANDBOX_DEFAULT_TOKEN:
        raise ImproperlyConfigured(
            "A sandbox served with DEBUG off needs a secret SANDBOX_API_TOKEN: the default one is public."
        )
    return True


SANDBOX_MODE = check_segment_mode()
SANDBOX_LATENCY_MS = env.int("SANDBOX_LATENCY_MS", default=0)
SANDBOX_WRITE_LIMIT_PER_MINUTE = env.int("SANDBOX_WRITE_LIMIT_PER_MINUTE", default=60)
SANDBOX_READ_LIMIT_PER_MINUTE = env.int("SANDBOX_READ_LIMIT_PER_MINUTE", default=1200)
SANDBOX_FAULTS = env.str("SANDBOX_FAULTS", default="")
SANDBOX_HANG_SECONDS = env.float("SANDBOX_HANG_SECONDS", default=60.0)

# Only emails of these domains may be added to groups (comma-separated); empty allows any.
ALLOWED_EMAIL_DOMAINS = env.list("ALLOWED_EMAIL_DOMAINS", default=[])
# Most emails one change may add, remove or set.
MAX_EMAILS_PER_CHANGE = env.int("MAX_EMAILS_PER_CHANGE", default=1000)
# Most text (bytes, UTF-8) one pasted list of emails may have; longer pastes are refused.
MAX_EMAIL_LIST_BYTES = env.int("MAX_EMAIL_LIST_BYTES", default=256 * 1024)
# Most bytes of a request body Django reads into memory (form fields): room for the largest
# paste percent-encoded (up to 3 bytes a character), far below Django's own 2.5 MB.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int(
    "DATA_UPLOAD_MAX_MEMORY_SIZE", default=max(1024 * 1024, 3 * MAX_EMAIL_LIST_BYTES + 64 * 1024)
)
# Characters that start a sub-address (ada+tag@example.com is ada@example.com to every rule).
EMAIL_SUBADDRESS_SEPARATORS = env.str("EMAIL_SUBADDRESS_SEPARATORS", default="+")

# Email: access-request notifications. The console backend prints mail unless EMAIL_HOST is set.
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Group Admin <group-admin@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# (read into a lower-case name: Django 6.1 refuses EMAIL_* settings beside MAILERS)
smtp_host = env.str("EMAIL_HOST", default="")
if smtp_host:
    MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {
                "host": smtp_host,
                "port": env.int("EMAIL_PORT", default=587),
                "username": env.str("EMAIL_HOST_USER", default=""),
                "password": env.str("EMAIL_HOST_PASSWORD", default=""),
                "use_tls": env.bool("EMAIL_USE_TLS", default=True),
                "timeout": env.int("EMAIL_TIMEOUT", default=10),
            },
        }
    }
elif DEBUG:
    MAILERS = {"default": {"BACKEND": "django.core.mail.backends.console.EmailBackend"}}
else:
    # No mail server in production: notifications are not sent (and logged as such), and there
    # is no password reset. Mail is never printed to the log, where reset links would leak.
    MAILERS = {"default": {"BACKEND": "groups_app.mail.DisabledEmailBackend"}}
MAIL_CONFIGURED = bool(smtp_host)
# Password reset mails a sign-in link: only through a real mail server, never to a log.
PASSWORD_RESET_ENABLED = MAIL_CONFIGURED and LOCAL_LOGIN_ENABLED
# The dashboard's address, for every link in mail (the worker's mail has no request to take it
# from): e.g. https://groups.example.com. `make run` sets it from PORT. Required when mail is sent
# (EMAIL_HOST) with DEBUG off; empty otherwise: the address of the request that sends the mail,
# else http://127.0.0.1:8000.
SITE_URL = env.str("SITE_URL", default="").strip().rstrip("/")


def check_site_url() -> None:
    """Refuse an address mail links cannot use, and mail without one outside DEBUG."""
    if SITE_URL:
        parts = urlsplit(SITE_URL)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ImproperlyConfigured(
                f"SITE_URL must be the dashboard's address, like https://groups.example.com, not {SITE_URL!r}."
            )
    elif MAIL_CONFIGURED and not DEBUG:
        raise ImproperlyConfigured(
            "EMAIL_HOST is set, so Group Admin sends mail, but SITE_URL is not: set it to the dashboard's "
            "address (e.g. SITE_URL=https://groups.example.com) so the links in mail lead back to it. The "
            "worker's mail has no request to take the address from."
        )


check_site_url()

# An invite created through the dashboard longer ago than this is flagged in reviews.
STALE_INVITE_DAYS = env.int("STALE_INVITE_DAYS", default=14)
# The reviewer of an open review is reminded by email this many days before its due date.
REVIEW_REMINDER_DAYS = env.int("REVIEW_REMINDER_DAYS", default=3)
# Time-bound access: the member and the group's owners are mailed this many days before it ends.
EXPIRY_NOTICE_DAYS = sorted(
    {max(0, days) for days in env.list("EXPIRY_NOTICE_DAYS", cast=int, default=[7, 1])}, reverse=True
)

# Password of the demo accounts that `make run` creates; empty = generate one and print it once.
DEMO_PASSWORD = env.str("DEMO_PASSWORD", default="")

# How many CSV exports may stream at once across all processes (each holds a web thread), and
# after how long a slot that a crashed process never gave back frees itself.
EXPORT_CONCURRENCY = env.int("EXPORT_CONCURRENCY", default=2)
EXPORT_SLOT_SECONDS = env.int("EXPORT_SLOT_SECONDS", default=15 * 60)

ROLES_CACHE_TTL = env.int("ROLES_CACHE_TTL", default=600)

# Most groups one action on one person (People) may change; each group is a change of its own,
# made by the worker as a job with its own page.
MAX_GROUPS_PER_PERSON_CHANGE = env.int("MAX_GROUPS_PER_PERSON_CHANGE", default=500)

# Jobs (long work run in the worker, item by item, with a progress page): items one job sends
# side by side, and the changes per minute all jobs together may send (counted in the shared
# cache; below Segment's 60 a minute for the mutating IAM endpoints, so that changes made on
# the pages still get through while a job runs).
JOB_CONCURRENCY = env.int("JOB_CONCURRENCY", default=3)
JOB_WRITES_PER_MINUTE = env.int("JOB_WRITES_PER_MINUTE", default=40)
# A running job whose worker gave no sign of life for this many seconds is taken up again by
# another (or the restarted) worker; the worker looks for such jobs every JOB_RESUME_EVERY seconds.
JOB_STALE_SECONDS = env.int("JOB_STALE_SECONDS", default=120)
JOB_RESUME_EVERY = env.int("JOB_RESUME_EVERY", default=60)

# Background work: Django's Tasks framework on a queue in the database, run by
# `manage.py run_worker` (any number of them, on any number of machines).
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}

# The workspace mirror: a local copy of groups, members, invites, permissions and roles that
# the group list, People and drift detection read, kept fresh by the worker.
# Page size of the mirror's listings; the API documents 1-1000 (an older revision 1-200):
# a refused size falls back to 200 by itself.
MIRROR_PAGE_SIZE = env.int("MIRROR_PAGE_SIZE", default=1000)
# Upstream reads per second that all mirror syncs share (counted in the shared cache).
MIRROR_READS_PER_SECOND = env.int("MIRROR_READS_PER_SECOND", default=20)
# Reads one sync runs side by side (each still waits for the shared budget).
MIRROR_SYNC_CONCURRENCY = env.int("MIRROR_SYNC_CONCURRENCY", default=4)
# A sync that has not shown signs of life for this many seconds is taken as crashed.
MIRROR_SYNC_STALE_SECONDS = env.int("MIRROR_SYNC_STALE_SECONDS", default=600)
# Seconds between the worker's quick passes: the group listing, and the members of only the
# groups whose member count, name or permissions changed.
MIRROR_QUICK_SYNC_EVERY = env.int("MIRROR_QUICK_SYNC_EVERY", default=120)
# Every group is read whole at least once in this many seconds, a share of them at each
# quick pass (a swap of one member for another keeps the member count).
MIRROR_FULL_SYNC_EVERY = env.int("MIRROR_FULL_SYNC_EVERY", default=24 * 3600)
# /readyz fails when the last successful sync started longer ago than this (seconds).
MIRROR_MAX_AGE = env.int("MIRROR_MAX_AGE", default=3 * MIRROR_QUICK_SYNC_EVERY)
# Periodic jobs, in seconds between runs: reading back unconfirmed changes, ending expired
# access, and reminding reviewers.
RECONCILE_EVERY = env.int("RECONCILE_EVERY", default=300)
EXPIRE_ACCESS_EVERY = env.int("EXPIRE_ACCESS_EVERY", default=3600)
REMIND_REVIEWS_EVERY = env.int("REMIND_REVIEWS_EVERY", default=3600)
NOTIFY_EXPIRING_EVERY = env.int("NOTIFY_EXPIRING_EVERY", default=3600)
# Days finished background tasks and mirror sync records are kept (pruned daily by the worker).
KEEP_TASK_HISTORY_DAYS = env.int("KEEP_TASK_HISTORY_DAYS", default=30)

# The REST API (/api/v1/) and the MCP server (/mcp): calls per API token and minute, shared by
# every process through the cache; beyond it 429 with Retry-After.
API_RATE_LIMIT_PER_MINUTE = env.int("API_RATE_LIMIT_PER_MINUTE", default=120)

# Signed webhooks: the worker POSTs each event (access requests filed and decided, changes
# completed, proposals filed, drift observed, reviews due) as JSON to every URL, signed with
# WEBHOOK_SECRET (X-Group-Admin-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">),
# and to Slack's incoming webhook as a readable message. Failures are retried with back-off.
WEBHOOK_URLS = env.list("WEBHOOK_URLS", default=[])
WEBHOOK_SECRET = env.str("WEBHOOK_SECRET", default="")
SLACK_WEBHOOK_URL = env.str("SLACK_WEBHOOK_URL", default="")
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=6)
WEBHOOK_TIMEOUT = env.float("WEBHOOK_TIMEOUT", default=5.0)
# Seconds between the worker's looks for deliveries due to be tried again.
WEBHOOK_RETRY_EVERY = env.int("WEBHOOK_RETRY_EVERY", default=30)
if WEBHOOK_URLS and not WEBHOOK_SECRET:
    raise ImproperlyConfigured("WEBHOOK_URLS is set: set WEBHOOK_SECRET too, so receivers can verify events.")

# HSTS preload is the domain owner's decision (it binds every subdomain, for good): the header
# is sent without it unless SECURE_HSTS_PRELOAD=true, and Django's reminder is silenced.
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
# "plain" lines for people, or "json" (one object a line, request id included) for log shippers.
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured("LOG_FORMAT must be 'plain' or 'json'.")
# Bearer token that /metrics (Prometheus text) requires; empty: /metrics answers 404.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "groups_app.request_log.RequestIdLogFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "groups_app.request_log.JsonLogFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_id"],
        },
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "groups_app": {"level": LOG_LEVEL},
        "sandbox": {"level": LOG_LEVEL},
        "django": {"level": "INFO"},
    },
}
