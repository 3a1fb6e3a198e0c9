"""docdb/config.py, the one table of DOCDB_* settings: .env.example is made from it, the code and
the documentation name no setting it lacks, and it holds none that nothing uses."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from docdb.config import (
    GROUPS,
    SETTINGS,
    SettingError,
    env_bool,
    env_example,
    env_int,
    env_list,
    env_str,
    shell_defaults,
)
from tests.conftest import REPO_DIR

# A whole name: `DOCDB_EMBEDDER_*` in prose names a family, not a setting.
NAME = re.compile(r"\bDOCDB_[A-Z0-9_]*[A-Z0-9](?![A-Z0-9_])")
READERS = {"str": env_str, "int": env_int, "bool": env_bool, "list": env_list}


def _code() -> list[Path]:
    """Every file that reads or sets settings. Not bench/: its scheduling benchmark also runs an
    older DocDB, with the settings that one had."""
    files = [REPO_DIR / name for name in ("Procfile", "Dockerfile", "Makefile")]
    files += REPO_DIR.glob("docker-compose*.yml")
    for folder in ("docdb", "scripts", "tests"):
        files += (path for path in (REPO_DIR / folder).rglob("*") if path.suffix in (".py", ".sh"))
    return files


def _names(files: list[Path]) -> set[str]:
    return {name for path in files for name in NAME.findall(path.read_text())}


def test_env_example_is_made_from_the_table() -> None:
    assert (REPO_DIR / ".env.example").read_text() == env_example(), (
        "run `python -m docdb.config env-example > .env.example`"
    )


def test_every_setting_the_code_and_the_documentation_name_is_in_the_table() -> None:
    documentation = [REPO_DIR / "README.md", *(REPO_DIR / "docs").rglob("*.md")]
    unknown = _names(_code() + documentation) - SETTINGS.keys()
    assert not unknown, f"add {sorted(unknown)} to docdb/config.py"


def test_every_setting_in_the_table_is_used() -> None:
    table = REPO_DIR / "docdb" / "config.py"
    unused = SETTINGS.keys() - _names([path for path in _code() if path != table])
    assert not unused, f"nothing reads {sorted(unused)}: drop them from docdb/config.py"


def test_every_default_reads_as_its_kind() -> None:
    assert sum(len(group.settings) for group in GROUPS) == len(SETTINGS), "a name twice"
    for setting in SETTINGS.values():
        READERS[setting.kind](setting.name, {})


def test_readers_take_the_environment_over_the_default() -> None:
    assert env_int("DOCDB_WEB_PORT", {}) == 8000
    assert env_int("DOCDB_WEB_PORT", {"DOCDB_WEB_PORT": " 9000 "}) == 9000
    # Empty is unset: a copied .env.example leaves derived settings empty.
    assert env_int("DOCDB_WEB_PORT", {"DOCDB_WEB_PORT": ""}) == 8000
    assert env_bool("DOCDB_HTTPS", {"DOCDB_HTTPS": "Yes"}) is True
    assert env_list("DOCDB_ALLOWED_HOSTS", {}) == ["localhost", "127.0.0.1", "[::1]"]
    assert env_list("DOCDB_ALLOWED_HOSTS", {"DOCDB_ALLOWED_HOSTS": " a, ,b "}) == ["a", "b"]
    # Derived: the reader's caller derives it.
    assert env_str("DOCDB_WEAVIATE_URL", {}) == ""


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DOCDB_WEB_PORT", "eight", "DOCDB_WEB_PORT must be a whole number, not 'eight'"),
        ("DOCDB_EMBEDDER_MAX_INPUTS", "0", "DOCDB_EMBEDDER_MAX_INPUTS must be at least 1, not 0"),
        ("DOCDB_HTTPS", "maybe", "DOCDB_HTTPS must be true or false, not 'maybe'"),
    ],
)
def test_a_bad_value_is_a_clear_error(name: str, value: str, message: str) -> None:
    reader = READERS[SETTINGS[name].kind]
    with pytest.raises(SettingError, match=re.escape(message)):
        reader(name, {name: value})


def test_a_reader_of_the_wrong_kind_is_refused() -> None:
    with pytest.raises(TypeError, match="DOCDB_WEB_PORT is read as int, not str"):
        env_str("DOCDB_WEB_PORT", {})


def test_shell_defaults_export_what_the_environment_leaves_unset() -> None:
    environ = {"DOCDB_WEB_PORT": "9000", "DOCDB_WORKER_CONCURRENCY": ""}
    names = ["DOCDB_WEB_PORT", "DOCDB_WORKER_CONCURRENCY", "DOCDB_ALLOWED_HOSTS"]
    assert shell_defaults(names, environ) == (
        "export DOCDB_WORKER_CONCURRENCY=1\n"
        "export DOCDB_ALLOWED_HOSTS='localhost,127.0.0.1,[::1]'\n"
    )
    with pytest.raises(SettingError, match="DOCDB_WEAVIATE_URL is derived"):
        shell_defaults(["DOCDB_WEAVIATE_URL"], {})


def test_a_shell_evaluates_the_defaults_as_scripts_do() -> None:
    python = shlex.quote(sys.executable)
    script = (
        f'defaults="$({python} -m docdb.config defaults DOCDB_WEB_PORT DOCDB_ALLOWED_HOSTS)"\n'
        'eval "$defaults"\n'
        'echo "$DOCDB_WEB_PORT $DOCDB_ALLOWED_HOSTS"'
    )
    result = subprocess.run(
        ["bash", "-euc", script],
        cwd=REPO_DIR,
        env={"PATH": os.environ["PATH"], "DOCDB_WEB_PORT": "9000"},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert result.stdout == "9000 localhost,127.0.0.1,[::1]\n"
