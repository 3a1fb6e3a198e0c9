"""Production settings: each case runs Django in a fresh process with that environment."""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from docdb.settings import database_config
from tests.conftest import REPO_DIR

PRODUCTION = {
    "DOCDB_DEBUG": "false",
    "DOCDB_HTTPS": "true",
    "DOCDB_ALLOWED_HOSTS": "docs.example.com",
    "DOCDB_CSRF_TRUSTED_ORIGINS": "https://docs.example.com",
    "DOCDB_DATABASE_URL": "postgres://docdb:secret@postgres:5432/docdb",
}


def _django(
    tmp_path: Path, environ: dict[str, str], *args: str, code: str = ""
) -> subprocess.CompletedProcess[str]:
    """`manage.py ARGS`, or `code` after django.setup(), in an environment of its own.

    Not this process's environment (other tests set Django variables in it), and not the
    developer's .env: only what the test says."""
    env = {name: os.environ[name] for name in ("PATH", "HOME") if name in os.environ}
    env.update(
        {
            "DOCDB_ENV_FILE": str(tmp_path / "no.env"),
            "DOCDB_DATA_DIR": str(tmp_path / "data"),
            "DOCDB_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_SETTINGS_MODULE": "docdb.settings",
            **environ,
        }
    )
    if code:
        command = [sys.executable, "-c", f"import django\ndjango.setup()\n{code}"]
    else:
        command = [sys.executable, "manage.py", *args]
    return subprocess.run(
        command, cwd=REPO_DIR, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_check_deploy_is_clean_in_production(tmp_path: Path) -> None:
    result = _django(tmp_path, PRODUCTION, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_flags_a_site_served_without_https(tmp_path: Path) -> None:
    result = _django(tmp_path, {**PRODUCTION, "DOCDB_HTTPS": "false"}, "check", "--deploy")
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stderr


def test_production_refuses_the_development_secret_key(tmp_path: Path) -> None:
    result = _django(tmp_path, {**PRODUCTION, "DOCDB_SECRET_KEY": ""}, "check")
    assert result.returncode != 0
    assert "Set DOCDB_SECRET_KEY" in result.stderr


def test_https_settings_follow_docdb_https(tmp_path: Path) -> None:
    code = """
import json
from django.conf import settings as s
print(json.dumps([s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE,
                  s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_HSTS_PRELOAD,
                  getattr(s, "SECURE_PROXY_SSL_HEADER", None)]))
"""
    on = _django(tmp_path, {**PRODUCTION, "DOCDB_TRUST_X_FORWARDED_PROTO": "true"}, code=code)
    assert json.loads(on.stdout) == [
        True,
        True,
        True,
        365 * 24 * 3600,
        True,
        False,
        ["HTTP_X_FORWARDED_PROTO", "https"],
    ]
    off = _django(tmp_path, {**PRODUCTION, "DOCDB_HTTPS": "false"}, code=code)
    assert json.loads(off.stdout) == [False, False, False, 0, True, False, None]


def test_a_dotenv_file_is_read_and_the_environment_wins_over_it(tmp_path: Path) -> None:
    env_file = tmp_path / "custom.env"
    env_file.write_text(
        "# comments and quotes as python-dotenv reads them\n"
        "export DOCDB_TIME_ZONE='Europe/Paris'\n"
        'DOCDB_WEAVIATE_COLLECTION="FromFile"\n'
    )
    code = "from django.conf import settings as s; print(s.TIME_ZONE, s.WEAVIATE_COLLECTION)"
    environ = {"DOCDB_ENV_FILE": str(env_file), "DOCDB_WEAVIATE_COLLECTION": "FromEnvironment"}
    result = _django(tmp_path, environ, code=code)
    assert result.stdout.split() == ["Europe/Paris", "FromEnvironment"], result.stderr


def test_a_database_url_selects_postgres() -> None:
    database = database_config("postgres://docdb:p%40ss@db.internal:5433/docdb?sslmode=require")
    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert (database["HOST"], database["PORT"], database["NAME"]) == ("db.internal", 5433, "docdb")
    assert (database["USER"], database["PASSWORD"]) == ("docdb", "p@ss")
    assert database["OPTIONS"] == {"sslmode": "require"}
    assert database["CONN_MAX_AGE"] == 60
    assert database["CONN_HEALTH_CHECKS"] is True


def test_without_a_database_url_it_is_sqlite_in_the_data_folder(tmp_path: Path) -> None:
    code = "from django.conf import settings; print(settings.DATABASES['default']['NAME'])"
    result = _django(tmp_path, {}, code=code)
    assert result.stdout.strip() == str(tmp_path / "data" / "db.sqlite3")
    assert database_config("")["ENGINE"] == "django.db.backends.sqlite3"


def test_logs_go_to_standard_output(tmp_path: Path) -> None:
    code = "import logging; logging.getLogger('docdb.test').warning('to stdout please')"
    result = _django(tmp_path, PRODUCTION, code=code)
    assert "WARNING docdb.test to stdout please" in result.stdout
    assert "to stdout please" not in result.stderr


def test_static_files_are_collected_and_served_by_gunicorn_in_production(tmp_path: Path) -> None:
    # As the Docker image does: collect at build time, then serve with WhiteNoise (no DEBUG).
    environ = {**PRODUCTION, "DOCDB_HTTPS": "false", "DOCDB_STATIC_ROOT": str(tmp_path / "static")}
    environ["DOCDB_ALLOWED_HOSTS"] = "testserver"
    collected = _django(tmp_path, environ, "collectstatic", "--noinput")
    assert collected.returncode == 0, collected.stderr
    code = """
from django.templatetags.static import static
from django.test import Client
url = static("docdb/app.css")
response = Client().get(url)
print(url, response.status_code, response["Content-Type"], response["Cache-Control"])
"""
    result = _django(tmp_path, environ, code=code)
    url, status, content_type, *cache_control = result.stdout.split()
    # The manifest storage names each file by its content, so browsers may keep it for good.
    assert (
        url.startswith("/static/docdb/app.")
        and url.endswith(".css")
        and url != "/static/docdb/app.css"
    )
    assert (status, content_type) == ("200", "text/css;")
    assert "immutable" in " ".join(cache_control)


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "docdb-web-1:8000"])
def test_healthz_answers_any_host_over_plain_http(tmp_path: Path, host: str) -> None:
    code = f"""
from django.test import Client
client = Client()
health = client.get("/healthz", HTTP_HOST="{host}")
page = client.get("/login/", HTTP_HOST="docs.example.com")
other_host = client.get("/login/", HTTP_HOST="{host}")
print(health.status_code, health.json(), page.status_code, page["Location"],
      other_host.status_code, sep="|")
"""
    result = _django(tmp_path, PRODUCTION, code=code)
    # The refused host is logged (to standard output too); the answers come last.
    answers = result.stdout.splitlines()[-1].split("|")
    assert answers == ["200", "{'status': 'ok'}", "301", "https://docs.example.com/login/", "400"]
