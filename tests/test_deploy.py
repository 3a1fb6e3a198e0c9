"""The Dockerfile, and every command the compose files run inside the image.

No Docker engine runs here: the build steps are read and checked against the repository, and the
commands are checked against DocDB's code (management commands, modules, the WSGI app).
"""

import fnmatch
import importlib
import importlib.util
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import yaml
from django.core.management import get_commands

from tests.conftest import REPO_DIR
from tests.test_compose import COMPOSE_FILES


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = (REPO_DIR / "Dockerfile").read_text()
    joined = re.sub(r"\\\n", " ", text)
    instructions = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, arguments = line.partition(" ")
            instructions.append((keyword.upper(), " ".join(arguments.split())))
    return instructions


def _arguments(keyword: str) -> list[str]:
    return [arguments for found, arguments in _instructions() if found == keyword]


def _env() -> dict[str, str]:
    pairs = {}
    for arguments in _arguments("ENV"):
        for pair in shlex.split(arguments):
            key, _, value = pair.partition("=")
            pairs[key] = value
    return pairs


def test_the_base_image_is_a_pinned_slim_python_that_pyproject_allows() -> None:
    (base,) = _arguments("FROM")
    match = re.fullmatch(r"python:(\d+)\.(\d+)-slim-(\w+)", base)
    assert match, base
    requires = tomllib.loads((REPO_DIR / "pyproject.toml").read_text())["project"]
    minimum = re.search(r">=\s*(\d+)\.(\d+)", requires["requires-python"])
    assert minimum
    assert (int(match[1]), int(match[2])) >= (int(minimum[1]), int(minimum[2]))


def _docker_ignored(path: str) -> bool:
    lines = (REPO_DIR / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return any(fnmatch.fnmatch(path, pattern) for pattern in patterns)


def test_what_it_copies_exists_and_is_not_docker_ignored() -> None:
    copied = [source for arguments in _arguments("COPY") for source in arguments.split()[:-1]]
    assert {"pyproject.toml", "manage.py", "docdb", "templates", "static"} <= set(copied)
    for source in copied:
        assert (REPO_DIR / source).exists(), source
        assert not _docker_ignored(source), source
    for secret_or_bulk in (".env", "data", ".venv", ".git"):
        assert _docker_ignored(secret_or_bulk)


def test_torch_is_the_cpu_build_unless_the_gpu_override_asks() -> None:
    (torch_index,) = (a for a in _arguments("ARG") if a.startswith("TORCH_INDEX="))
    assert torch_index == "TORCH_INDEX=https://download.pytorch.org/whl/cpu"
    runs = _arguments("RUN")
    torch_install = next(run for run in runs if "pip install" in run and " torch" in run)
    assert '--index-url "$TORCH_INDEX"' in torch_install
    # Installed before DocDB's dependencies, so they find torch there and pip fetches no other.
    assert runs.index(torch_install) < next(i for i, run in enumerate(runs) if '".[deploy]"' in run)


def test_static_files_are_collected_at_build_outside_the_data_volume() -> None:
    env = _env()
    assert env["DOCDB_DEBUG"] == "false"
    assert not env["DOCDB_STATIC_ROOT"].startswith(env["DOCDB_DATA_DIR"])
    assert any("manage.py collectstatic --noinput" in run for run in _arguments("RUN"))
    assert env["HF_HOME"].startswith("/models")


def test_it_runs_as_an_unprivileged_user() -> None:
    assert _arguments("USER") == ["docdb"]


def _compose_commands() -> list[list[str]]:
    """Every command line the compose files and the Dockerfile's CMD run in the DocDB image."""
    commands: list[Any] = [yaml.safe_load(_arguments("CMD")[0])]
    for name in COMPOSE_FILES:
        for service in yaml.safe_load((REPO_DIR / name).read_text())["services"].values():
            if service.get("image", "").startswith("docdb:") and "command" in service:
                commands.append(service["command"])
            test = service.get("healthcheck", {}).get("test", [])
            if test and test[0] == "CMD-SHELL":
                commands.append(test[1])
    lines = []
    for command in commands:
        words = shlex.split(command) if isinstance(command, str) else command
        if words[:2] == ["sh", "-c"]:
            lines += [shlex.split(part) for part in words[2].split("&&")]
        else:
            lines.append(words)
    return lines


def _check(words: list[str]) -> str:
    """What a command runs, after checking that it exists in DocDB."""
    program = words[0]
    if words[:2] == ["python", "manage.py"]:
        assert words[2] in get_commands(), words
        return f"manage.py {words[2]}"
    if words[:2] == ["python", "-m"]:
        assert importlib.util.find_spec(words[2]) is not None, words
        assert (
            Path(importlib.util.find_spec(words[2]).origin or "").parent / "__main__.py"
        ).exists()
        return f"python -m {words[2]}"
    if program == "celery":
        module = words[words.index("-A") + 1]
        assert importlib.import_module(module).app.main == "docdb"
        return f"celery {words[words.index('-A') + 2]}"
    if program == "gunicorn":
        module, _, attribute = words[1].partition(":")
        assert callable(getattr(importlib.import_module(module), attribute))
        return "gunicorn"
    if program == "python":  # a health check: python -c "..."
        return "python -c"
    raise AssertionError(f"unknown command {words}")


def test_every_command_it_runs_exists() -> None:
    ran = {_check(words) for words in _compose_commands()}
    assert ran >= {
        "manage.py migrate",
        "manage.py weaviate_schema",
        "python -m docdb.embedder",
        "celery worker",
        "celery beat",
        "celery inspect",
        "gunicorn",
    }


def test_the_worker_and_beat_commands_match_the_procfile() -> None:
    # Workers can be replicated because beat (the pipeline sweeper) runs apart, exactly once.
    procfile = dict(
        line.split(": ", 1) for line in (REPO_DIR / "Procfile").read_text().splitlines() if line
    )
    compose = yaml.safe_load((REPO_DIR / "docker-compose.yml").read_text())["services"]
    for option in ("worker", "--concurrency"):
        assert option in procfile["worker"].split()
        assert option in compose["worker"]["command"].split()
    for command in (procfile["worker"], compose["worker"]["command"]):
        assert "--beat" not in command.split() and "-B" not in command.split()
    for option in ("beat", "--schedule"):
        assert option in procfile["beat"].split()
        assert option in compose["beat"]["command"].split()
    assert "deploy" not in compose["beat"] or compose["beat"]["deploy"].get("replicas", 1) == 1
