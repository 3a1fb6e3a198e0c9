"""The Helm chart deploy/helm/docdb: linted and rendered by Helm itself (scripts/helm-binary.sh,
which `make install-test` runs), each rendered manifest checked against the Kubernetes API's
schemas (kubernetes-validate, which ships them), and what the chart promises checked in what it
renders. No Kubernetes cluster runs here (docs/scaling.md says what that leaves untested)."""

import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from docdb.config import SETTINGS
from docdb.healthz import PATH as WEB_HEALTH
from tests.conftest import REPO_DIR
from tests.test_compose import STORAGE_SETTINGS

# Files, not the database: the SQLite pass runs them.
pytestmark = pytest.mark.sqlite_pass

CHART = REPO_DIR / "deploy" / "helm" / "docdb"
# The oldest Kubernetes release still supported upstream when the chart was written.
KUBERNETES = "1.32"
SECRETS = {
    "DOCDB_SECRET_KEY": "s" * 50,
    "DOCDB_DATABASE_URL": "postgres://docdb:pg-password@postgres:5432/docdb",
    "DOCDB_REDIS_URL": "redis://:redis-password@redis:6379/0",
    "DOCDB_WEAVIATE_API_KEY": "weaviate-key",
    "DOCDB_S3_ACCESS_KEY_ID": "s3-key-id",
    "DOCDB_S3_SECRET_ACCESS_KEY": "s3-secret",
}
SCALED = {
    "secret": {"values": SECRETS},
    "storage": {"s3": {"enabled": True, "endpointUrl": "http://seaweedfs:8333"}},
    "web": {"replicas": 3},
    "worker": {"replicas": 8, "concurrency": 2},
    "embedder": {
        "replicas": 2,
        "gpu": {"enabled": True, "count": 1},
        "resources": {"limits": {"memory": "24Gi"}},
    },
    "ingress": {"enabled": True, "className": "nginx", "tlsSecretName": "docdb-tls"},
}


@pytest.fixture(scope="module")
def helm() -> str:
    # The cached binary after `make install-test`; else it is fetched or built here (minutes).
    result = subprocess.run(
        [str(REPO_DIR / "scripts" / "helm-binary.sh")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def _helm(helm: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm, *arguments], capture_output=True, text=True, check=False)


def _values_file(tmp_path: Path, values: dict[str, Any]) -> str:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return str(path)


def _render(helm: str, tmp_path: Path, values: dict[str, Any]) -> list[dict[str, Any]]:
    result = _helm(
        helm, "template", "docdb", str(CHART), "--namespace", "docdb",
        "--values", _values_file(tmp_path, values),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return [document for document in yaml.safe_load_all(result.stdout) if document]


def _by_kind(manifests: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def _deployment(manifests: list[dict[str, Any]], component: str) -> dict[str, Any]:
    return _by_kind(manifests, "Deployment")[f"docdb-{component}"]


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def _valid(manifests: list[dict[str, Any]]) -> None:
    for manifest in manifests:
        # Strict: a field the API does not know (a misplaced key) fails too.
        kubernetes_validate.validate(manifest, KUBERNETES, strict=True)


@pytest.mark.parametrize("values", [{}, SCALED], ids=["default", "scaled"])
def test_helm_lints_the_chart(helm: str, tmp_path: Path, values: dict[str, Any]) -> None:
    result = _helm(helm, "lint", "--strict", str(CHART), "--values", _values_file(tmp_path, values))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_default_render_is_valid_and_keeps_files_on_a_shared_volume(
    helm: str, tmp_path: Path
) -> None:
    manifests = _render(helm, tmp_path, {})
    _valid(manifests)
    assert set(_by_kind(manifests, "Deployment")) == {
        "docdb-web", "docdb-worker", "docdb-beat", "docdb-embedder",
    }  # fmt: skip
    (claim,) = _by_kind(manifests, "PersistentVolumeClaim").values()
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    for component in ("web", "worker"):
        volumes = _deployment(manifests, component)["spec"]["template"]["spec"]["volumes"]
        assert {"name": "data", "persistentVolumeClaim": {"claimName": "docdb-data"}} in volumes
    embedder = _deployment(manifests, "embedder")["spec"]["template"]["spec"]
    assert "nodeSelector" not in embedder
    assert "nvidia.com/gpu" not in str(embedder)


@pytest.fixture(scope="module")
def scaled(helm: str, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return _render(helm, tmp_path_factory.mktemp("scaled"), SCALED)


def test_the_scaled_render_is_valid(scaled: list[dict[str, Any]]) -> None:
    _valid(scaled)
    assert _deployment(scaled, "web")["spec"]["replicas"] == 3
    assert _deployment(scaled, "worker")["spec"]["replicas"] == 8
    assert _deployment(scaled, "embedder")["spec"]["replicas"] == 2


@pytest.mark.parametrize("values", [{}, SCALED], ids=["default", "scaled"])
def test_beat_runs_exactly_once(helm: str, tmp_path: Path, values: dict[str, Any]) -> None:
    beat = _deployment(_render(helm, tmp_path, values), "beat")
    assert beat["spec"]["replicas"] == 1
    # Never two at once, also during an upgrade.
    assert beat["spec"]["strategy"] == {"type": "Recreate"}


def test_with_s3_no_pod_keeps_files(scaled: list[dict[str, Any]]) -> None:
    assert _by_kind(scaled, "PersistentVolumeClaim") == {}
    (config,) = _by_kind(scaled, "ConfigMap").values()
    assert config["data"]["DOCDB_STORAGE"] == "s3"
    assert config["data"]["DOCDB_S3_ENDPOINT_URL"] == "http://seaweedfs:8333"
    for deployment in _by_kind(scaled, "Deployment").values():
        for volume in deployment["spec"]["template"]["spec"].get("volumes", []):
            assert "persistentVolumeClaim" not in volume, deployment["metadata"]["name"]


def test_the_embedder_asks_for_gpu_nodes_and_gpus(scaled: list[dict[str, Any]]) -> None:
    embedder = _deployment(scaled, "embedder")
    pod = embedder["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    container = _container(embedder)
    assert container["resources"]["limits"] == {"nvidia.com/gpu": 1, "memory": "24Gi"}
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env["DOCDB_EMBEDDER_DEVICE"] == "cuda"
    # Only the embedder runs on the GPU nodes.
    for component in ("web", "worker", "beat"):
        assert "nodeSelector" not in _deployment(scaled, component)["spec"]["template"]["spec"]


def test_secrets_are_only_in_the_secret(scaled: list[dict[str, Any]]) -> None:
    (secret,) = _by_kind(scaled, "Secret").values()
    assert secret["stringData"] == SECRETS
    for manifest in scaled:
        if manifest["kind"] == "Secret":
            continue
        text = yaml.safe_dump(manifest)
        for name, value in SECRETS.items():
            assert value not in text, f"{name} in {manifest['kind']} {manifest['metadata']['name']}"


def test_the_chart_refuses_a_secret_among_the_plain_settings(helm: str, tmp_path: Path) -> None:
    values = _values_file(tmp_path, {"config": {"DOCDB_SECRET_KEY": "x" * 50}})
    result = _helm(helm, "template", "docdb", str(CHART), "--values", values)
    assert result.returncode != 0
    assert "DOCDB_SECRET_KEY is a secret" in result.stderr


def test_every_setting_it_sets_is_a_docdb_setting(scaled: list[dict[str, Any]]) -> None:
    (config,) = _by_kind(scaled, "ConfigMap").values()
    named = set(config["data"]) | set(SECRETS)
    named |= {item["name"] for item in _container(_deployment(scaled, "embedder"))["env"]}
    assert named - {"HF_HOME"} - set(SETTINGS) == set(), "not in docdb/config.py"
    assert set(config["data"]) | set(SECRETS) >= STORAGE_SETTINGS


def test_every_process_reads_the_settings_and_is_probed(scaled: list[dict[str, Any]]) -> None:
    for name, deployment in _by_kind(scaled, "Deployment").items():
        container = _container(deployment)
        sources = {next(iter(source.values()))["name"] for source in container["envFrom"]}
        assert sources == {"docdb-config", "docdb-secret"}, name
        assert "livenessProbe" in container, name
    web = _container(_deployment(scaled, "web"))
    assert web["readinessProbe"]["httpGet"]["path"] == WEB_HEALTH
    embedder = _container(_deployment(scaled, "embedder"))
    assert embedder["startupProbe"]["httpGet"]["path"] == "/health"
    assert '@router.get("/health")' in (REPO_DIR / "docdb" / "embedder" / "app.py").read_text()


def test_services_and_the_ingress_reach_the_pods(scaled: list[dict[str, Any]]) -> None:
    services = _by_kind(scaled, "Service")
    (config,) = _by_kind(scaled, "ConfigMap").values()
    for component in ("web", "embedder"):
        deployment, service = _deployment(scaled, component), services[f"docdb-{component}"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
        ports = {port["name"] for port in _container(deployment)["ports"]}
        assert {port["targetPort"] for port in service["spec"]["ports"]} <= ports
    embedder_port = services["docdb-embedder"]["spec"]["ports"][0]["port"]
    assert config["data"]["DOCDB_EMBEDDER_URL"] == f"http://docdb-embedder:{embedder_port}"
    # One host for Weaviate's HTTP and gRPC ports, over the official chart's pods.
    weaviate = services["docdb-weaviate"]["spec"]
    assert weaviate["selector"] == {"app": "weaviate"}
    ports = {port["name"]: port["port"] for port in weaviate["ports"]}
    assert config["data"]["DOCDB_WEAVIATE_URL"] == f"http://docdb-weaviate:{ports['http']}"
    assert config["data"]["DOCDB_WEAVIATE_GRPC_PORT"] == str(ports["grpc"])
    (ingress,) = _by_kind(scaled, "Ingress").values()
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert path["backend"]["service"] == {"name": "docdb-web", "port": {"name": "http"}}


def test_the_pods_wait_for_the_setup_job(scaled: list[dict[str, Any]]) -> None:
    (job,) = _by_kind(scaled, "Job").values()
    command = " ".join(_container(job)["command"])
    assert "migrate --noinput" in command
    assert "weaviate_schema" in command
    for component in ("web", "worker", "beat"):
        (init,) = _deployment(scaled, component)["spec"]["template"]["spec"]["initContainers"]
        assert "migrate --check" in " ".join(init["command"])
