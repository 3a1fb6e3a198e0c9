"""DocDB settings: everything comes from the environment, with defaults that run on one machine.

docdb/config.py holds every DOCDB_* variable with its default and meaning (.env.example is made
from it). A `.env` file in the project root (or the file named by DOCDB_ENV_FILE) is read first;
real environment variables win over it.
"""

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import dj_database_url
from csp.constants import NONE, SELF
from dotenv import load_dotenv
from kombu import Queue

from docdb.config import (
    REPO_DIR,
    TESSERACT_LANGUAGE,
    data_dir,
    env_bool,
    env_int,
    env_list,
    env_str,
)

BASE_DIR = REPO_DIR

load_dotenv(env_str("DOCDB_ENV_FILE") or BASE_DIR / ".env", override=False)

DEBUG = env_bool("DOCDB_DEBUG")
# The development default keeps `make run` working with no setup; production refuses it below.
_DEV_SECRET_KEY = "docdb-development-only-secret-key-do-not-use-in-production"  # noqa: S105
SECRET_KEY = env_str("DOCDB_SECRET_KEY") or _DEV_SECRET_KEY
if not DEBUG and SECRET_KEY == _DEV_SECRET_KEY:
    raise RuntimeError("Set DOCDB_SECRET_KEY to a long random value when DOCDB_DEBUG is off.")
ALLOWED_HOSTS = env_list("DOCDB_ALLOWED_HOSTS")
CSRF_TRUSTED_ORIGINS = env_list("DOCDB_CSRF_TRUSTED_ORIGINS")

# Served over HTTPS (directly or behind a proxy that terminates TLS)? Off by default, because
# `docker compose up` and `make run` serve plain http://localhost:8000, where secure cookies and
# an HTTPS redirect would lock everyone out. Any public deployment turns it on.
HTTPS = env_bool("DOCDB_HTTPS")
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env_int("DOCDB_HSTS_SECONDS") if HTTPS else 0
# includeSubDomains covers only names below DocDB's own host. Preload is the operator's call: it
# invites anyone to put the whole domain on the browsers' HTTPS-only list, hence check W021 off.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DOCDB_HSTS_INCLUDE_SUBDOMAINS")
SECURE_HSTS_PRELOAD = env_bool("DOCDB_HSTS_PRELOAD")
# Only behind a proxy that sets X-Forwarded-Proto itself: trusted without one, any client could
# claim HTTPS.
if env_bool("DOCDB_TRUST_X_FORWARDED_PROTO"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

DATA_DIR = data_dir()
MEDIA_ROOT = Path(env_str("DOCDB_MEDIA_DIR") or DATA_DIR / "media").resolve()
# SQLite cannot create the folder of its database file; everything else makes its own.
DATA_DIR.mkdir(parents=True, exist_ok=True)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "ninja",
    "axes",
    "csp",
    "docdb.documents",
    "docdb.search",
    "docdb.api",
    "docdb.ops",
]

MIDDLEWARE = [
    # Outermost, so that every response gets the headers, the health check's included.
    "docdb.headers.PermissionsPolicyMiddleware",
    "csp.middleware.CSPMiddleware",
    # Docker's health check asks http://127.0.0.1:8000/healthz, which the host check and
    # the HTTPS redirect below would refuse.
    "docdb.healthz.HealthzMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # Before the CSRF check, which reads the form: an upload over the limit is refused unread.
    "docdb.documents.uploads.UploadLimitMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    # Last, as django-axes asks: it turns a refused login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

if not DEBUG:
    # In production gunicorn serves the collected static files itself; runserver does in dev.
    MIDDLEWARE.insert(
        MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
        "whitenoise.middleware.WhiteNoiseMiddleware",
    )

ROOT_URLCONF = "docdb.urls"
WSGI_APPLICATION = "docdb.wsgi.application"

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
                "docdb.documents.context_processors.embedder_notice",
            ],
        },
    },
]

SQLITE_PATH = Path(env_str("DOCDB_SQLITE_PATH") or DATA_DIR / "db.sqlite3")


def database_config(url: str) -> dict[str, Any]:
    """The database a URL names (postgres://user:password@host:5432/name); "" means SQLite."""
    if url:
        # Reuse connections for a minute, checked before each request, so a restarted Postgres
        # costs one failed check rather than failed requests.
        return dict(dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True))
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": SQLITE_PATH,
        # The web server, the worker and the tests write to one file: wait for locks instead of
        # failing, and take the write lock at BEGIN so two writers never deadlock on an upgrade.
        "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE"},
        "TEST": {"NAME": env_str("DOCDB_TEST_SQLITE_PATH") or str(DATA_DIR / "test.sqlite3")},
    }


# DATABASE_URL, the name hosting platforms set, is honoured too.
DATABASES = {
    "default": database_config(env_str("DOCDB_DATABASE_URL") or os.environ.get("DATABASE_URL", ""))
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# Login throttling (django-axes), on the site's login and the admin's alike: after
# DOCDB_LOGIN_FAILURE_LIMIT failures, that username from that address is refused (even with the
# right password) until DOCDB_LOGIN_LOCKOUT_MINUTES have passed; a success clears the count.
# By username and address together, so nobody can lock another person out from elsewhere. The
# address is REMOTE_ADDR: a client-set X-Forwarded-For would dodge the lockout. Behind a proxy
# that sets X-Forwarded-For itself (DOCDB_TRUST_X_FORWARDED_FOR), the address that one proxy saw.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("DOCDB_LOGIN_FAILURE_LIMIT")
AXES_COOLOFF_TIME = timedelta(minutes=env_int("DOCDB_LOGIN_LOCKOUT_MINUTES"))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
TRUST_X_FORWARDED_FOR = env_bool("DOCDB_TRUST_X_FORWARDED_FOR")
AXES_CLIENT_IP_CALLABLE = "docdb.headers.client_address"
# Without its banner at every start, which would land in the standard output of every management
# command (the log goes there); failures and lockouts are still logged.
AXES_VERBOSE = False

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "documents:list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("DOCDB_TIME_ZONE")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# The Docker image collects them at build time, outside the data volume.
STATIC_ROOT = Path(env_str("DOCDB_STATIC_ROOT") or DATA_DIR / "static").resolve()
# Documents' files (docdb/documents/files.py): the local folder, or a private S3 bucket that
# web and workers on many hosts share. Objects are replaced whole on upload (file_overwrite), so a
# page written twice is one object; no ACL is set, the bucket's own policy (private) applies.
STORAGE = env_str("DOCDB_STORAGE")
if STORAGE == "local":
    _FILES: dict[str, Any] = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
elif STORAGE == "s3":
    from botocore.config import Config as BotocoreConfig

    _FILES = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env_str("DOCDB_S3_BUCKET"),
            "endpoint_url": env_str("DOCDB_S3_ENDPOINT_URL") or None,
            "region_name": env_str("DOCDB_S3_REGION") or None,
            "access_key": env_str("DOCDB_S3_ACCESS_KEY_ID") or None,
            "secret_key": env_str("DOCDB_S3_SECRET_ACCESS_KEY") or None,
            "file_overwrite": True,
            "default_acl": None,
            # Path-style addresses (endpoint/bucket/key) work on every S3-compatible server;
            # virtual hosts need DNS names per bucket, which a local SeaweedFS or MinIO lacks.
            "addressing_style": "path",
            "signature_version": "s3v4",
            # A bucket that does not answer fails the request in seconds, after bounded retries.
            "client_config": BotocoreConfig(
                connect_timeout=5,
                read_timeout=60,
                retries={"max_attempts": 3, "mode": "standard"},
            ),
        },
    }
    if not _FILES["OPTIONS"]["bucket_name"]:
        raise ValueError("DOCDB_STORAGE=s3 needs DOCDB_S3_BUCKET")
else:
    raise ValueError(f"DOCDB_STORAGE must be local or s3, not {STORAGE!r}")
STORAGES = {
    "default": _FILES,
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

SESSION_COOKIE_HTTPONLY = True
# Scripts, styles, fonts and fetches only from DocDB itself, and no inline script or style: an
# injected <script> or style attribute does nothing. Images may be data: URLs (the blurred
# placeholders of the result cards). The admin and the API's docs pass with the same policy.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "frame-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [SELF],
    }
}
# Browser features no page of DocDB uses: denied to it and to anything it embeds.
PERMISSIONS_POLICY_DENIED = (
    "accelerometer",
    "autoplay",
    "camera",
    "display-capture",
    "geolocation",
    "gyroscope",
    "magnetometer",
    "microphone",
    "midi",
    "payment",
    "publickey-credentials-get",
    "screen-wake-lock",
    "serial",
    "usb",
    "xr-spatial-tracking",
)
# SAMEORIGIN rather than DENY: no other site may frame DocDB (the clickjacking that check
# security.W019 is about), while DocDB's own pages may still embed its PDFs and page images.
X_FRAME_OPTIONS = "SAMEORIGIN"
SILENCED_SYSTEM_CHECKS = ["security.W019", "security.W021"]

# Uploads
UPLOAD_MAX_BYTES = env_int("DOCDB_UPLOAD_MAX_MB") * 1024 * 1024
UPLOAD_MAX_FILES = env_int("DOCDB_UPLOAD_MAX_FILES")
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FILES = UPLOAD_MAX_FILES
FILE_UPLOAD_HANDLERS = [
    # Stops a file over UPLOAD_MAX_BYTES while it streams; the others keep the bytes.
    "docdb.documents.uploads.UploadSizeLimitHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

# Ingestion
PDF_MAX_PAGES = env_int("DOCDB_PDF_MAX_PAGES")
RENDER_LONGEST_EDGE = env_int("DOCDB_RENDER_LONGEST_EDGE")
RENDER_MAX_PIXELS = env_int("DOCDB_RENDER_MAX_PIXELS")
RENDER_TIMEOUT_SECONDS = env_int("DOCDB_RENDER_TIMEOUT_SECONDS")
RENDER_PAGES_PER_CHUNK = env_int("DOCDB_RENDER_PAGES_PER_CHUNK")
THUMBNAIL_WIDTH = env_int("DOCDB_THUMBNAIL_WIDTH")
PAGE_JPEG_QUALITY = env_int("DOCDB_PAGE_JPEG_QUALITY")
# OCR of pages without a text layer (docdb/pdf/ocr.py); whether Tesseract has the languages is
# checked at start (docdb/documents/checks.py) and on the operations page, not here.
OCR = env_str("DOCDB_OCR")
if OCR not in ("auto", "off"):
    raise ValueError(f"DOCDB_OCR must be auto or off, not {OCR!r}")
OCR_LANGUAGES = env_list("DOCDB_OCR_LANGUAGES")
if OCR == "auto" and not OCR_LANGUAGES:
    raise ValueError("DOCDB_OCR_LANGUAGES names no language: name one (eng), or set DOCDB_OCR=off")
for _code in OCR_LANGUAGES:
    if not TESSERACT_LANGUAGE.fullmatch(_code):
        raise ValueError(f"DOCDB_OCR_LANGUAGES: {_code!r} is not a Tesseract language code (eng)")
OCR_MIN_CHARS = env_int("DOCDB_OCR_MIN_CHARS")

# Weaviate: a local server by default; Weaviate Cloud when DOCDB_WEAVIATE_CLOUD is on.
WEAVIATE_HTTP_HOST = env_str("DOCDB_WEAVIATE_HOST")
WEAVIATE_HTTP_PORT = env_int("DOCDB_WEAVIATE_HTTP_PORT")
WEAVIATE_GRPC_PORT = env_int("DOCDB_WEAVIATE_GRPC_PORT")
WEAVIATE_URL = env_str("DOCDB_WEAVIATE_URL") or f"http://{WEAVIATE_HTTP_HOST}:{WEAVIATE_HTTP_PORT}"
WEAVIATE_CLOUD = env_bool("DOCDB_WEAVIATE_CLOUD")
# A cluster (docs/scaling.md): how many nodes hold each page, and how many must answer a write
# and a read.
WEAVIATE_REPLICATION_FACTOR = env_int("DOCDB_WEAVIATE_REPLICATION_FACTOR")
WEAVIATE_SHARDS = env_int("DOCDB_WEAVIATE_SHARDS")
WEAVIATE_WRITE_CONSISTENCY = env_str("DOCDB_WEAVIATE_WRITE_CONSISTENCY").upper()
WEAVIATE_READ_CONSISTENCY = env_str("DOCDB_WEAVIATE_READ_CONSISTENCY").upper()
for _name, _level in (
    ("DOCDB_WEAVIATE_WRITE_CONSISTENCY", WEAVIATE_WRITE_CONSISTENCY),
    ("DOCDB_WEAVIATE_READ_CONSISTENCY", WEAVIATE_READ_CONSISTENCY),
):
    if _level not in ("ONE", "QUORUM", "ALL"):
        raise ValueError(f"{_name} must be ONE, QUORUM or ALL, not {_level!r}")
# Weaviate's vectorizer module sends the key its client authenticated with to the embedder as
# the bearer token, so self-hosted server-side vectorization needs API-key auth on Weaviate. The
# default key is for one machine only.
WEAVIATE_API_KEY = env_str("DOCDB_WEAVIATE_API_KEY")
WEAVIATE_COLLECTION = env_str("DOCDB_WEAVIATE_COLLECTION")
WEAVIATE_TIMEOUT_SECONDS = env_int("DOCDB_WEAVIATE_TIMEOUT_SECONDS")
WEAVIATE_IMPORT_BATCH_SIZE = env_int("DOCDB_WEAVIATE_IMPORT_BATCH_SIZE")
WEAVIATE_MODEL = env_str("DOCDB_WEAVIATE_MODEL")
VECTORIZE = env_str("DOCDB_VECTORIZE")
if VECTORIZE not in ("server", "client"):
    raise ValueError(f"DOCDB_VECTORIZE must be server or client, not {VECTORIZE!r}")
# The page vector index, for new collections (docs/benchmarks.md, "Search at scale", chose
# these): MUVERA keeps one fixed-size encoding per page in HNSW and re-ranks the candidates it
# finds with exact MaxSim; off, HNSW indexes every token vector (~900 per page).
WEAVIATE_MUVERA = env_bool("DOCDB_WEAVIATE_MUVERA")
WEAVIATE_HNSW_EF = env_int("DOCDB_WEAVIATE_HNSW_EF")  # -1: Weaviate's dynamic ef
# Semantic search re-ranks at least this many candidate pages exactly with MUVERA (Weaviate
# re-ranks twice the limit asked for when it scans the filtered pages), then keeps the best.
WEAVIATE_SEARCH_CANDIDATES = env_int("DOCDB_WEAVIATE_SEARCH_CANDIDATES")
WEAVIATE_FLAT_SEARCH_CUTOFF = env_int("DOCDB_WEAVIATE_FLAT_SEARCH_CUTOFF")
# Two-stage semantic search (self-hosted): new collections also hold each page's multi-vector
# pooled into this many vectors (0: not), in a plain multi-vector HNSW with this ef; a search
# finds candidates with them and re-ranks this many with exact MaxSim over the full vectors.
# docs/benchmarks.md ("Search at scale") chose these.
WEAVIATE_POOLED_VECTORS = env_int("DOCDB_WEAVIATE_POOLED_VECTORS")
WEAVIATE_POOLED_EF = env_int("DOCDB_WEAVIATE_POOLED_EF")
WEAVIATE_RERANK_CANDIDATES = env_int("DOCDB_WEAVIATE_RERANK_CANDIDATES")
if not 0 <= WEAVIATE_POOLED_VECTORS <= 256:
    raise ValueError("DOCDB_WEAVIATE_POOLED_VECTORS must be between 0 (off) and 256")
if not 1 <= WEAVIATE_RERANK_CANDIDATES < WEAVIATE_FLAT_SEARCH_CUTOFF:
    # The re-ranking scans exactly the candidates; Weaviate scans only below the cutoff.
    raise ValueError(
        "DOCDB_WEAVIATE_RERANK_CANDIDATES must be at least 1 and below "
        "DOCDB_WEAVIATE_FLAT_SEARCH_CUTOFF"
    )
EMBEDDER_CLIENT_BATCH_SIZE = env_int("DOCDB_EMBEDDER_CLIENT_BATCH_SIZE")

# The embedder, as Weaviate reaches it (the collection's base_url) and as DocDB reaches it.
EMBEDDER_URL = env_str("DOCDB_EMBEDDER_URL") or (
    f"http://127.0.0.1:{env_int('DOCDB_EMBEDDER_PORT')}"
)
# DocDB's own calls may spread over several (empty: EMBEDDER_URL alone).
EMBEDDER_URLS = env_list("DOCDB_EMBEDDER_URLS")
# DocDB's own calls: connecting, then waiting for a query's or a map's answer (page batches
# wait WEAVIATE_TIMEOUT_SECONDS, as Weaviate's module calls do).
EMBEDDER_CONNECT_TIMEOUT_SECONDS = env_int("DOCDB_EMBEDDER_CONNECT_TIMEOUT_SECONDS")
EMBEDDER_TIMEOUT_SECONDS = env_int("DOCDB_EMBEDDER_TIMEOUT_SECONDS")

CELERY_BROKER_URL = env_str("DOCDB_REDIS_URL") or (
    f"redis://127.0.0.1:{env_int('DOCDB_REDIS_PORT')}/0"
)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("DOCDB_TASK_TIME_LIMIT_SECONDS")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = "celery"
# Every worker reads every queue, in the order of docdb/celery.py's QUEUES (a worker started
# with no -Q option included).
CELERY_TASK_QUEUES = [Queue(name) for name in ("control", "celery", "ingest")]
CELERY_TASK_ROUTES = {
    "docdb.documents.tasks.document_turn_task": {"queue": "ingest"},
    "docdb.documents.tasks.pipeline_sweep_task": {"queue": "control"},
}
# Beat runs once per deployment, apart from the workers (Procfile, docker-compose.yml).
CONSISTENCY_CHECK_MINUTES = env_int("DOCDB_CONSISTENCY_CHECK_MINUTES")
CELERY_BEAT_SCHEDULE = {
    "pipeline-sweep": {
        "task": "docdb.documents.tasks.pipeline_sweep_task",
        "schedule": env_int("DOCDB_SWEEP_INTERVAL_SECONDS"),
    },
    # The operations page shows the last check and never runs one itself (seconds at scale).
    "consistency-check": {
        "task": "docdb.ops.tasks.consistency_check_task",
        "schedule": 60 * CONSISTENCY_CHECK_MINUTES,
    },
}
# Bounded retries with exponential backoff when Weaviate or the embedder is away.
PIPELINE_RETRY_LIMIT = env_int("DOCDB_PIPELINE_RETRY_LIMIT")
PIPELINE_RETRY_BASE_SECONDS = env_int("DOCDB_PIPELINE_RETRY_BASE_SECONDS")
# A turn's worker refreshes its hold on the document this often; a hold not refreshed for
# DOCDB_PIPELINE_HOLD_SECONDS belongs to a dead worker, and the document is taken over.
PIPELINE_HEARTBEAT_SECONDS = env_int("DOCDB_PIPELINE_HEARTBEAT_SECONDS")
PIPELINE_HOLD_SECONDS = env_int("DOCDB_PIPELINE_HOLD_SECONDS")
if PIPELINE_HOLD_SECONDS < 3 * PIPELINE_HEARTBEAT_SECONDS:
    raise ValueError(
        "DOCDB_PIPELINE_HOLD_SECONDS must be at least 3 x DOCDB_PIPELINE_HEARTBEAT_SECONDS, "
        "or a live worker's document could be taken over between two heartbeats"
    )
PIPELINE_MAX_RESUMES = env_int("DOCDB_PIPELINE_MAX_RESUMES")
PIPELINE_SWEEP_TOKENS = env_int("DOCDB_PIPELINE_SWEEP_TOKENS")
CELERY_TASK_ALWAYS_EAGER = env_bool("DOCDB_TASK_ALWAYS_EAGER")
# A task a dead worker never acknowledged goes back to the queue after this long. One page
# range must finish well within it (a duplicate would be harmless, but wasted work).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("DOCDB_BROKER_VISIBILITY_TIMEOUT_SECONDS"),
    # Workers look for such tasks every 10 s, but by default scan only on every 10th look:
    # a lost task would wait up to 100 s more than the timeout. The scan is one small query.
    "unacked_restore_throttle": 1,
    # Read the queues in the order they are listed, not round robin (docdb/celery.py).
    "queue_order_strategy": "priority",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # Standard output, where Docker, honcho and systemd collect it.
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "plain",
        }
    },
    "root": {"handlers": ["console"], "level": env_str("DOCDB_LOG_LEVEL")},
    "loggers": {"httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"}},
}
