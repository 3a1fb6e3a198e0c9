"""DocDB settings: everything comes from the environment, with defaults that run on one machine.

`.env.example` lists every variable. A `.env` file in the project root (or the file named by
DOCDB_ENV_FILE) is read first; real environment variables win over it.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def _env_file_load(path: Path) -> None:
    if not path.is_file():
        return
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        os.environ.setdefault(key.strip(), value.strip().strip("'\""))


_env_file_load(Path(os.environ.get("DOCDB_ENV_FILE", BASE_DIR / ".env")))


def envstr(name: str, default: str) -> str:
    return os.environ.get(name) or default


def envint(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value else default


def envbool(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").lower()
    if not value:
        return default
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, not {value!r}")


def envlist(name: str, default: str) -> list[str]:
    return [item.strip() for item in envstr(name, default).split(",") if item.strip()]


DEBUG = envbool("DOCDB_DEBUG", True)
# The development default keeps `make run` working with no setup; production refuses it below.
_DEV_SECRET_KEY = "docdb-development-only-secret-key-do-not-use-in-production"  # noqa: S105
SECRET_KEY = envstr("DOCDB_SECRET_KEY", _DEV_SECRET_KEY)
if not DEBUG and SECRET_KEY == _DEV_SECRET_KEY:
    raise RuntimeError("Set DOCDB_SECRET_KEY to a long random value when DOCDB_DEBUG is off.")
ALLOWED_HOSTS = envlist("DOCDB_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = envlist("DOCDB_CSRF_TRUSTED_ORIGINS", "")

DATA_DIR = Path(envstr("DOCDB_DATA_DIR", str(BASE_DIR / "data"))).resolve()
MEDIA_ROOT = Path(envstr("DOCDB_MEDIA_DIR", str(DATA_DIR / "media"))).resolve()
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
    "docdb.documents",
    "docdb.search",
    "docdb.api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
]

if not DEBUG:
    # In production gunicorn serves the collected static files itself; runserver does in dev.
    MIDDLEWARE.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")

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

SQLITE_PATH = Path(envstr("DOCDB_SQLITE_PATH", str(DATA_DIR / "db.sqlite3")))
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": SQLITE_PATH,
        # The web server, the worker and the tests write to one file: wait for locks instead of
        # failing, and take the write lock at BEGIN so two writers never deadlock on an upgrade.
        "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE"},
        "TEST": {"NAME": envstr("DOCDB_TEST_SQLITE_PATH", str(DATA_DIR / "test.sqlite3"))},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "documents:list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = envstr("DOCDB_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
X_FRAME_OPTIONS = "SAMEORIGIN"  # the page view embeds the original PDF

# Uploads
UPLOAD_MAX_BYTES = envint("DOCDB_UPLOAD_MAX_MB", 200) * 1024 * 1024
UPLOAD_MAX_FILES = envint("DOCDB_UPLOAD_MAX_FILES", 50)
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FILES = UPLOAD_MAX_FILES

# Ingestion
PDF_MAX_PAGES = envint("DOCDB_PDF_MAX_PAGES", 5000)
RENDER_LONGEST_EDGE = envint("DOCDB_RENDER_LONGEST_EDGE", 2048)
RENDER_MAX_PIXELS = envint("DOCDB_RENDER_MAX_PIXELS", 2048 * 2048)
RENDER_TIMEOUT_SECONDS = envint("DOCDB_RENDER_TIMEOUT_SECONDS", 120)
RENDER_PAGES_PER_CHUNK = envint("DOCDB_RENDER_PAGES_PER_CHUNK", 8)
THUMBNAIL_WIDTH = envint("DOCDB_THUMBNAIL_WIDTH", 320)
PAGE_JPEG_QUALITY = envint("DOCDB_PAGE_JPEG_QUALITY", 88)

# Weaviate: a local server by default; Weaviate Cloud when DOCDB_WEAVIATE_CLOUD is on.
WEAVIATE_HTTP_HOST = envstr("DOCDB_WEAVIATE_HOST", "127.0.0.1")
WEAVIATE_HTTP_PORT = envint("DOCDB_WEAVIATE_HTTP_PORT", 8080)
WEAVIATE_GRPC_PORT = envint("DOCDB_WEAVIATE_GRPC_PORT", 50051)
WEAVIATE_URL = envstr("DOCDB_WEAVIATE_URL", f"http://{WEAVIATE_HTTP_HOST}:{WEAVIATE_HTTP_PORT}")
WEAVIATE_CLOUD = envbool("DOCDB_WEAVIATE_CLOUD", False)
# Self-hosted server-side vectorization needs API-key auth on Weaviate (DESIGN.md): the key
# travels to the embedder as the bearer token. The default is for one machine only.
WEAVIATE_API_KEY = envstr("DOCDB_WEAVIATE_API_KEY", "docdb-local-key")
WEAVIATE_COLLECTION = envstr("DOCDB_WEAVIATE_COLLECTION", "DocDBPage")
WEAVIATE_TIMEOUT_SECONDS = envint("DOCDB_WEAVIATE_TIMEOUT_SECONDS", 600)
WEAVIATE_IMPORT_BATCH_SIZE = envint("DOCDB_WEAVIATE_IMPORT_BATCH_SIZE", 4)
WEAVIATE_MODEL = envstr("DOCDB_WEAVIATE_MODEL", "ModernVBERT/colmodernvbert")

# The embedder, as Weaviate reaches it (the collection's base_url) and as DocDB reaches it.
EMBEDDER_URL = envstr(
    "DOCDB_EMBEDDER_URL", f"http://127.0.0.1:{envint('DOCDB_EMBEDDER_PORT', 8011)}"
)
EMBEDDER_TIMEOUT_SECONDS = envint("DOCDB_EMBEDDER_TIMEOUT_SECONDS", 10)

CELERY_BROKER_URL = envstr(
    "DOCDB_REDIS_URL", f"redis://127.0.0.1:{envint('DOCDB_REDIS_PORT', 6389)}/0"
)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = envint("DOCDB_TASK_TIME_LIMIT_SECONDS", 6 * 3600)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = envbool("DOCDB_TASK_ALWAYS_EAGER", False)
# A page range must finish well within the visibility timeout or Redis hands it out twice.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 2 * 3600}

CORPUS_DIR = envstr("DOCDB_CORPUS_DIR", "")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": envstr("DOCDB_LOG_LEVEL", "INFO")},
    "loggers": {"httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"}},
}
