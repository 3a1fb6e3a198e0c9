"""docker-compose.yml and its GPU and Weaviate Cloud overrides, and docker-compose.cluster.yml
with its balancer's configuration, read as Docker Compose and HAProxy read them.

No Docker engine runs here, so the files are parsed and checked; `docker compose config` checks
them too where Docker Compose is installed, and Debian's HAProxy checks the balancer's file.
"""

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from docdb.config import SETTINGS
from tests.conftest import REPO_DIR

# Their subject is files, not the database: the SQLite pass runs them.
pytestmark = pytest.mark.sqlite_pass

COMPOSE_FILES = ["docker-compose.yml", "docker-compose.gpu.yml", "docker-compose.cloud.yml"]
CLUSTER = "docker-compose.cluster.yml"
HAPROXY_CONFIG = REPO_DIR / "deploy" / "compose" / "haproxy.cfg"
# Object storage: the settings of Django's S3 backend, which the cluster must all set.
STORAGE_SETTINGS = {
    "DOCDB_STORAGE",
    "DOCDB_S3_BUCKET",
    "DOCDB_S3_ENDPOINT_URL",
    "DOCDB_S3_REGION",
    "DOCDB_S3_ACCESS_KEY_ID",
    "DOCDB_S3_SECRET_ACCESS_KEY",
}
# ${NAME}, ${NAME:-default}, ${NAME:?error}; `$$` escapes a dollar for the container's shell.
VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)")


def _load(name: str = "docker-compose.yml") -> dict[str, Any]:
    return dict(yaml.safe_load((REPO_DIR / name).read_text()))


def _services(name: str = "docker-compose.yml") -> dict[str, dict[str, Any]]:
    return dict(_load(name)["services"])


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


@pytest.mark.parametrize("compose_file", ["docker-compose.yml", CLUSTER])
def test_every_long_running_service_has_a_health_check(compose_file: str) -> None:
    services = _services(compose_file)
    assert set(services) >= {"web", "worker", "beat", "embedder", "postgres", "redis"}
    for name, service in services.items():
        if name in _one_shot(services):
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"


@pytest.mark.parametrize("compose_file", ["docker-compose.yml", CLUSTER])
def test_dependencies_wait_until_healthy_or_done(compose_file: str) -> None:
    services = _services(compose_file)
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
    for name in [*COMPOSE_FILES, CLUSTER]:
        used = set(VARIABLE.findall((REPO_DIR / name).read_text()))
        assert used <= documented, f"{name} uses {sorted(used - documented)}, not in .env.example"


@pytest.mark.parametrize("compose_file", ["docker-compose.yml", CLUSTER])
def test_images_are_pinned(compose_file: str) -> None:
    for name, service in _services(compose_file).items():
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


# docker-compose.cluster.yml


def _listen_port(service: dict[str, Any]) -> dict[str, int]:
    """The ports a service's program is told to listen on, by what they serve."""
    command = service.get("command", [])
    text = command if isinstance(command, str) else " ".join(command)
    env = service.get("environment", {})
    ports = {}
    if match := re.search(r"--bind 0\.0\.0\.0:(\d+)", text):
        ports["web"] = int(match[1])
    if match := re.search(r"--port (\d+)", text):
        ports["weaviate_http"] = int(match[1])
        ports["weaviate_grpc"] = int(env["GRPC_PORT"])
    if match := re.search(r"-s3\.port=(\d+)", text):
        ports["s3"] = int(match[1])
    if "DOCDB_EMBEDDER_PORT" in env:
        ports["embedder"] = int(env["DOCDB_EMBEDDER_PORT"])
    return ports


@dataclass(frozen=True)
class Route:
    """A frontend of the balancer: the port it binds and the servers of its backend."""

    port: int
    mode: str
    servers: list[tuple[str, int]]
    # server-template's count: how many replicas it can reach; 1 for a named server.
    slots: int


def _routes() -> dict[str, Route]:
    """The balancer's frontends by name, read from its configuration."""
    sections: dict[str, list[list[str]]] = {}
    current: list[list[str]] = []
    for line in HAPROXY_CONFIG.read_text().splitlines():
        words = line.split("#")[0].split()
        if not words:
            continue
        if not line[0].isspace():
            current = sections.setdefault(" ".join(words[:2]), [])
        else:
            current.append(words)
    routes = {}
    for section, lines in sections.items():
        kind, _, name = section.partition(" ")
        if kind != "frontend":
            continue
        options = {words[0]: words[1:] for words in lines}
        backend = sections[f"backend {options['default_backend'][0]}"]
        servers, slots = [], 0
        for words in backend:
            if words[0] == "server":
                host, port = words[2].split(":")
                servers.append((host, int(port)))
                slots += 1
            elif words[0] == "server-template":
                host, port = words[3].split(":")
                servers.append((host, int(port)))
                slots += int(words[2])
        port = int(options["bind"][0].lstrip(":"))
        routes[name] = Route(port, options["mode"][0], servers, slots)
    return routes


def _nodes() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in _services(CLUSTER).items() if name.startswith("weaviate-")}


def test_the_cluster_runs_every_part_scaled_out() -> None:
    services = _services(CLUSTER)
    assert set(services) >= {
        "setup", "web", "worker", "beat", "embedder", "balancer", "seaweedfs", "postgres", "redis",
    }  # fmt: skip
    replicas = {name: s.get("deploy", {}).get("replicas", 1) for name, s in services.items()}
    assert replicas["beat"] == 1, "beat must run exactly once"
    assert replicas["worker"] >= 2
    assert replicas["embedder"] >= 2
    assert replicas["web"] >= 2
    assert len(_nodes()) == 3
    # The balancer alone is published: the replicas behind it cannot all have the port.
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"balancer"}


def test_every_docdb_setting_it_sets_is_in_the_settings_table() -> None:
    text = (REPO_DIR / CLUSTER).read_text()
    named = set(re.findall(r"\b(DOCDB_[A-Z0-9_]+)\b", text))
    assert named - set(SETTINGS) == set(), "not in docdb/config.py"
    web = _services(CLUSTER)["web"]["environment"]
    # Every storage setting is wired, with S3 on.
    assert set(web) >= STORAGE_SETTINGS
    assert web["DOCDB_STORAGE"] == "s3"


def test_the_three_weaviate_nodes_form_one_cluster() -> None:
    nodes = _nodes()
    single = _services()["weaviate"]
    hostnames = {name: node["environment"]["CLUSTER_HOSTNAME"] for name, node in nodes.items()}
    assert len(set(hostnames.values())) == 3
    first = min(nodes)
    for name, node in nodes.items():
        env = node["environment"]
        # The pinned version, with the same module and API keys as the single node.
        assert node["image"] == single["image"]
        shared = ("ENABLE_MODULES", "AUTHENTICATION_APIKEY_ALLOWED_KEYS", "MODULES_CLIENT_TIMEOUT")
        for key in shared:
            assert env[key] == single["environment"][key], f"{name}: {key}"
        assert env["RAFT_BOOTSTRAP_EXPECT"] == str(len(nodes))
        joined = {entry.split(":")[0]: entry.split(":")[1] for entry in env["RAFT_JOIN"].split(",")}
        assert set(joined) == set(hostnames.values()), f"{name}: RAFT_JOIN"
        assert set(joined.values()) == {env["RAFT_PORT"]}
        if name == first:
            assert "CLUSTER_JOIN" not in env
        else:
            gossip = nodes[first]["environment"]["CLUSTER_GOSSIP_BIND_PORT"]
            assert env["CLUSTER_JOIN"] == f"{first}:{gossip}", name
    volumes = [node["volumes"][0].split(":")[0] for node in nodes.values()]
    assert len(set(volumes)) == 3, "each node keeps its own data"
    web = _services(CLUSTER)["web"]["environment"]
    assert int(web["DOCDB_WEAVIATE_REPLICATION_FACTOR"]) == len(nodes)


def _url_route(url: str) -> Route:
    """The balancer's route a DocDB URL reaches: its host must be the balancer."""
    match = re.fullmatch(r"http://([\w-]+):(\d+)", url)
    assert match, url
    assert match[1] == "balancer", url
    (route,) = [route for route in _routes().values() if route.port == int(match[2])]
    return route


def test_the_balancer_reaches_every_service_on_the_port_it_listens_on() -> None:
    services = _services(CLUSTER)
    nodes = _nodes()
    routes = _routes()
    listening = {name: _listen_port(service) for name, service in services.items()}
    for route in routes.values():
        for host, port in route.servers:
            assert host in services, host
            assert port in listening[host].values(), f"{host} does not listen on {port}"
    env = services["web"]["environment"]
    weaviate_http = _url_route(env["DOCDB_WEAVIATE_URL"])
    weaviate_grpc = _url_route(f"http://balancer:{env['DOCDB_WEAVIATE_GRPC_PORT']}")
    embedder = _url_route(env["DOCDB_EMBEDDER_URL"])
    assert {host for host, _ in weaviate_http.servers} == set(nodes)
    assert {(host, listening[host]["weaviate_http"]) for host in nodes} == set(
        weaviate_http.servers
    )
    assert {(host, listening[host]["weaviate_grpc"]) for host in nodes} == set(
        weaviate_grpc.servers
    )
    assert embedder.servers == [("embedder", listening["embedder"]["embedder"])]
    assert embedder.mode == "http", "per request, not per kept-alive connection"
    # The published port leads to the web servers, with room for every replica.
    (published,) = services["balancer"]["ports"]
    (web,) = [route for route in routes.values() if route.port == int(published.split(":")[-1])]
    assert web.servers == [("web", listening["web"]["web"])]
    assert web.slots >= services["web"]["deploy"]["replicas"]
    assert embedder.slots >= services["embedder"]["deploy"]["replicas"]
    mount = f"./{HAPROXY_CONFIG.relative_to(REPO_DIR)}:/usr/local/etc/haproxy/haproxy.cfg:ro"
    assert mount in services["balancer"]["volumes"]


def test_haproxy_accepts_the_balancer_configuration() -> None:
    # Debian's HAProxy (make install-test installs it). The service names resolve only inside
    # Docker's network, and only once it runs (init-addr none).
    result = subprocess.run(
        [shutil.which("haproxy") or "/usr/sbin/haproxy", "-c", "-f", str(HAPROXY_CONFIG)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "[WARNING]" not in result.stderr
    assert "[ALERT]" not in result.stderr


def test_the_apps_share_no_disk_and_store_files_in_seaweedfs() -> None:
    services = _services(CLUSTER)
    seaweedfs = services["seaweedfs"]
    env = services["web"]["environment"]
    for name in ("setup", "web", "worker", "beat", "embedder"):
        assert services[name]["environment"].get("DOCDB_STORAGE", "s3") == "s3"
    # No disk shared between web and workers: the files live in S3.
    assert "volumes" not in services["web"]
    assert "volumes" not in services["worker"]
    assert env["DOCDB_S3_ENDPOINT_URL"] == f"http://seaweedfs:{_listen_port(seaweedfs)['s3']}"
    assert f"-bucket={env['DOCDB_S3_BUCKET']}" in seaweedfs["command"]
    # SeaweedFS's admin identity is DocDB's key pair.
    assert seaweedfs["environment"]["AWS_ACCESS_KEY_ID"] == env["DOCDB_S3_ACCESS_KEY_ID"]
    secret = seaweedfs["environment"]["AWS_SECRET_ACCESS_KEY"]
    assert secret.split(":")[0] == env["DOCDB_S3_SECRET_ACCESS_KEY"].split(":")[0]
    assert services["seaweedfs"]["volumes"] == ["seaweedfs-data:/data"]
    declared = set(_load(CLUSTER)["volumes"])
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith("./") or source in declared


def test_the_gpu_override_fits_the_cluster_file() -> None:
    # docker-compose.gpu.yml changes only the embedder, which the cluster file runs too: every
    # replica gets CUDA torch and the GPU.
    gpu = _load("docker-compose.gpu.yml")["services"]
    assert set(gpu) <= set(_services(CLUSTER))


def _docker_compose() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


@pytest.mark.parametrize(
    "files",
    [
        ["docker-compose.yml"],
        COMPOSE_FILES[:2],
        [COMPOSE_FILES[0], COMPOSE_FILES[2]],
        [CLUSTER],
        [CLUSTER, COMPOSE_FILES[1]],
    ],
)
def test_docker_compose_accepts_the_files(tmp_path: Path, files: list[str]) -> None:
    compose = _docker_compose()
    if compose is None:
        pytest.skip("Docker Compose is not installed here")
    for name in [*COMPOSE_FILES, CLUSTER, ".env.example"]:
        shutil.copy(REPO_DIR / name, tmp_path / name)
    shutil.copytree(REPO_DIR / "deploy" / "compose", tmp_path / "deploy" / "compose")
    env = {**os.environ, "DOCDB_SECRET_KEY": "x" * 50, "DOCDB_POSTGRES_PASSWORD": "secret"}
    env["DOCDB_S3_SECRET_ACCESS_KEY"] = "secret"
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
