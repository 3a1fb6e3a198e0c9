"""docker-compose.yml and its GPU and Weaviate Cloud overrides, read as Docker Compose reads them.

No Docker engine runs here, so the files are parsed and checked; `docker compose config` checks
them too where Docker Compose is installed.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_DIR

COMPOSE_FILES = ["docker-compose.yml", "docker-compose.gpu.yml", "docker-compose.cloud.yml"]
# ${NAME}, ${NAME:-default}, ${NAME:?error}; `$$` escapes a dollar for the container's shell.
VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)")


def _load(name: str = "docker-compose.yml") -> dict[str, Any]:
    return dict(yaml.safe_load((REPO_DIR / name).read_text()))


def _services() -> dict[str, dict[str, Any]]:
    return dict(_load()["services"])


def _env_example() -> dict[str, str]:
    pairs = {}
    for line in (REPO_DIR / ".env.example").read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, value = line.split("=", 1)
            pairs[key.strip()] = value.strip()
    return pairs


def _one_shot(services: dict[str, dict[str, Any]]) -> set[str]:
    """Services that run to completion (migrations), which others wait for to finish."""
    return {name for name, service in services.items() if service.get("restart") == "no"}


def test_every_long_running_service_has_a_health_check() -> None:
    services = _services()
    assert set(services) >= {"web", "worker", "embedder", "weaviate", "postgres", "redis"}
    for name, service in services.items():
        if name in _one_shot(services):
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"


def test_dependencies_wait_until_healthy_or_done() -> None:
    services = _services()
    one_shot = _one_shot(services)
    for name, service in services.items():
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: depends_on needs conditions"
        for dependency, rule in depends_on.items():
            wanted = (
                "service_completed_successfully" if dependency in one_shot else "service_healthy"
            )
            assert rule["condition"] == wanted, f"{name} → {dependency}"
            assert dependency in services
    assert set(services["web"]["depends_on"]) >= {"setup", "postgres", "redis"}
    assert set(services["worker"]["depends_on"]) >= {"setup", "postgres", "redis", "embedder"}


def test_every_variable_it_uses_is_in_env_example() -> None:
    documented = set(_env_example())
    assert "DOCDB_SECRET_KEY" in VARIABLE.findall((REPO_DIR / "docker-compose.yml").read_text())
    for name in COMPOSE_FILES:
        used = set(VARIABLE.findall((REPO_DIR / name).read_text()))
        assert used <= documented, f"{name} uses {sorted(used - documented)}, not in .env.example"


def test_images_are_pinned() -> None:
    for name, service in _services().items():
        image = service["image"]
        if "build" in service:
            assert image.startswith("docdb:"), name
            continue
        repository, _, tag = image.rpartition(":")
        assert repository and re.match(r"\d", tag), f"{name}: {image} has no version tag"


def test_weaviate_is_the_version_make_run_uses_with_the_module_and_api_keys() -> None:
    weaviate = _services()["weaviate"]
    version = _env_example()["DOCDB_WEAVIATE_VERSION"]
    assert weaviate["image"] == f"cr.weaviate.io/semitechnologies/weaviate:{version}"
    assert version == "1.39.0"
    env = weaviate["environment"]
    assert env["ENABLE_MODULES"] == "multi2multivec-weaviate"
    assert env["AUTHENTICATION_APIKEY_ENABLED"] == "true"
    assert env["AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED"] == "false"
    assert env["AUTHENTICATION_APIKEY_ALLOWED_KEYS"].startswith("${DOCDB_WEAVIATE_API_KEY")
    assert any(
        volume.endswith(f":{env['PERSISTENCE_DATA_PATH']}") for volume in weaviate["volumes"]
    )


def test_one_api_key_for_docdb_weaviate_and_the_embedder() -> None:
    # Weaviate forwards DocDB's key to the embedder as a bearer token: all three must agree.
    services = _services()
    keys = {
        services["web"]["environment"]["DOCDB_WEAVIATE_API_KEY"],
        services["embedder"]["environment"]["DOCDB_EMBEDDER_API_KEYS"],
        services["weaviate"]["environment"]["AUTHENTICATION_APIKEY_ALLOWED_KEYS"],
    }
    assert {key.split(":")[0] for key in keys} == {"${DOCDB_WEAVIATE_API_KEY"}


def test_the_apps_reach_each_other_by_service_name() -> None:
    services = _services()
    env = services["web"]["environment"]
    assert env["DOCDB_REDIS_URL"] == "redis://redis:6379/0"
    assert env["DOCDB_WEAVIATE_URL"] == "http://weaviate:8080"
    assert env["DOCDB_EMBEDDER_URL"] == "http://embedder:8011"
    assert "@postgres:5432/docdb" in env["DOCDB_DATABASE_URL"]
    assert env["DOCDB_DEBUG"] == "false"
    assert services["embedder"]["environment"]["DOCDB_EMBEDDER_HOST"] == "0.0.0.0"  # noqa: S104


def test_data_model_cache_and_databases_live_in_volumes() -> None:
    services = _services()
    declared = set(_load()["volumes"])
    data_dir = services["web"]["environment"]["DOCDB_DATA_DIR"]
    # The worker writes page images that the web server serves: one volume for both.
    assert f"docdb-data:{data_dir}" in services["web"]["volumes"]
    assert f"docdb-data:{data_dir}" in services["worker"]["volumes"]
    embedder = services["embedder"]
    assert embedder["environment"]["HF_HOME"].startswith("/models/")
    assert "models:/models" in embedder["volumes"]
    assert "postgres-data:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert "redis-data:/data" in services["redis"]["volumes"]
    for service in services.values():
        for volume in service.get("volumes", []):
            assert volume.split(":")[0] in declared


def test_the_gpu_override_gives_the_embedder_cuda_torch_and_the_gpu() -> None:
    embedder = _load("docker-compose.gpu.yml")["services"]["embedder"]
    assert embedder["build"]["args"]["TORCH_INDEX"].startswith(
        "https://download.pytorch.org/whl/cu"
    )
    assert embedder["image"] != _services()["embedder"]["image"]
    assert embedder["environment"]["DOCDB_EMBEDDER_DEVICE"] == "cuda"
    (device,) = embedder["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia"
    assert device["capabilities"] == ["gpu"]


def test_the_cloud_override_drops_the_local_weaviate_and_embedder() -> None:
    cloud = _load("docker-compose.cloud.yml")["services"]
    assert cloud["weaviate"]["profiles"] and cloud["embedder"]["profiles"]
    for name in ("setup", "web", "worker"):
        assert cloud[name]["environment"]["DOCDB_WEAVIATE_CLOUD"] == "true"
        assert cloud[name]["environment"]["DOCDB_WEAVIATE_URL"].startswith("${DOCDB_WEAVIATE_URL")
    # Without them the dependencies must not block start-up.
    for name, service in _services().items():
        for dependency in ("weaviate", "embedder"):
            if dependency in service.get("depends_on", {}):
                assert service["depends_on"][dependency]["required"] is False, name


def _docker_compose() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


@pytest.mark.parametrize(
    "files", [["docker-compose.yml"], COMPOSE_FILES[:2], [COMPOSE_FILES[0], COMPOSE_FILES[2]]]
)
def test_docker_compose_accepts_the_files(tmp_path: Path, files: list[str]) -> None:
    compose = _docker_compose()
    if compose is None:
        pytest.skip("Docker Compose is not installed here")
    for name in [*COMPOSE_FILES, ".env.example"]:
        shutil.copy(REPO_DIR / name, tmp_path / name)
    env = {**os.environ, "DOCDB_SECRET_KEY": "x" * 50, "DOCDB_POSTGRES_PASSWORD": "secret"}
    env["DOCDB_WEAVIATE_URL"] = "https://example.weaviate.cloud"
    arguments = [part for name in files for part in ("-f", name)]
    result = subprocess.run(
        [*compose, "--env-file", ".env.example", *arguments, "config", "--quiet"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
