"""How DocDB starts its own Redis and Weaviate on one machine (`make run` and the tests).

`python -m docdb.localstack redis|weaviate` replaces itself with the server process, configured
from the DOCDB_* environment (see .env.example); the test fixtures call the same functions with
free ports and a temporary data directory. No Django here.
"""

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent


class ServiceUnavailable(Exception):
    pass


def weaviate_binary() -> str:
    """Path of the pinned weaviate-server, fetched or built on first use (see the script)."""
    script = REPO_DIR / "scripts" / "weaviate-binary.sh"
    result = subprocess.run(["bash", str(script)], stdout=subprocess.PIPE, text=True, check=False)
    if result.returncode != 0:
        raise ServiceUnavailable("No Weaviate server binary; the messages above say what failed.")
    return result.stdout.strip()


@dataclass(frozen=True)
class WeaviatePorts:
    http: int
    grpc: int
    gossip: int
    data: int
    raft: int
    raft_rpc: int


def weaviate_env(*, data_dir: Path, ports: WeaviatePorts, api_key: str) -> dict[str, str]:
    node = "docdb-node"
    return {
        "PERSISTENCE_DATA_PATH": str(data_dir),
        # Weaviate keys its on-disk state by node name: a pinned name survives restarts.
        "CLUSTER_HOSTNAME": node,
        "CLUSTER_GOSSIP_BIND_PORT": str(ports.gossip),
        "CLUSTER_DATA_BIND_PORT": str(ports.data),
        "RAFT_PORT": str(ports.raft),
        "RAFT_INTERNAL_RPC_PORT": str(ports.raft_rpc),
        "RAFT_JOIN": f"{node}:{ports.raft}",
        "RAFT_BOOTSTRAP_EXPECT": "1",
        "GRPC_PORT": str(ports.grpc),
        "DEFAULT_VECTORIZER_MODULE": "none",
        "ENABLE_MODULES": "multi2multivec-weaviate",
        "DISABLE_TELEMETRY": "true",
        "PROMETHEUS_MONITORING_ENABLED": "false",
        "QUERY_DEFAULTS_LIMIT": "25",
        # A CPU embeds a full-size page in ~15 s and Weaviate sends two per request.
        "MODULES_CLIENT_TIMEOUT": os.environ.get("DOCDB_WEAVIATE_MODULES_TIMEOUT", "600s"),
        # Self-hosted vectorization needs API-key auth: the key reaches the embedder as bearer.
        "AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED": "false",
        "AUTHENTICATION_APIKEY_ENABLED": "true",
        "AUTHENTICATION_APIKEY_ALLOWED_KEYS": api_key,
        "AUTHENTICATION_APIKEY_USERS": "docdb",
        "LIMIT_RESOURCES": "true",
        "GOMEMLIMIT": os.environ.get("DOCDB_WEAVIATE_GOMEMLIMIT", "4GiB"),
        "LOG_LEVEL": os.environ.get("DOCDB_WEAVIATE_LOG_LEVEL", "warning"),
    }


def weaviate_command(binary: str, http_port: int) -> list[str]:
    return [binary, "--host", "127.0.0.1", "--port", str(http_port), "--scheme", "http"]


def redis_command(*, data_dir: Path, port: int) -> list[str]:
    server = shutil.which("redis-server")
    if server is None:
        raise ServiceUnavailable(
            "redis-server is not installed (Debian: apt-get install redis-server)"
        )
    return [
        server,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data_dir),
        # Queued tasks survive a restart of Redis.
        "--appendonly",
        "yes",
        "--save",
        "",
    ]


def _ports_from_env() -> WeaviatePorts:
    def port(name: str, default: int) -> int:
        return int(os.environ.get(name) or default)

    return WeaviatePorts(
        http=port("DOCDB_WEAVIATE_HTTP_PORT", 8080),
        grpc=port("DOCDB_WEAVIATE_GRPC_PORT", 50051),
        gossip=port("DOCDB_WEAVIATE_GOSSIP_PORT", 7946),
        data=port("DOCDB_WEAVIATE_DATA_PORT", 7947),
        raft=port("DOCDB_WEAVIATE_RAFT_PORT", 8300),
        raft_rpc=port("DOCDB_WEAVIATE_RAFT_RPC_PORT", 8301),
    )


def main(argv: list[str]) -> None:
    data_root = Path(os.environ.get("DOCDB_DATA_DIR") or REPO_DIR / "data").resolve()
    service = argv[1] if len(argv) > 1 else ""
    if service == "weaviate":
        ports = _ports_from_env()
        data_dir = data_root / "weaviate"
        data_dir.mkdir(parents=True, exist_ok=True)
        binary = weaviate_binary()
        api_key = os.environ.get("DOCDB_WEAVIATE_API_KEY", "docdb-local-key")
        env = {**os.environ, **weaviate_env(data_dir=data_dir, ports=ports, api_key=api_key)}
        command = weaviate_command(binary, ports.http)
    elif service == "redis":
        data_dir = data_root / "redis"
        data_dir.mkdir(parents=True, exist_ok=True)
        command = redis_command(
            data_dir=data_dir, port=int(os.environ.get("DOCDB_REDIS_PORT") or 6389)
        )
        env = dict(os.environ)
    else:
        sys.exit("usage: python -m docdb.localstack redis|weaviate")
    os.execvpe(command[0], command, env)


if __name__ == "__main__":
    main(sys.argv)
