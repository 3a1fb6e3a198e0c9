"""How DocDB starts its own Redis and Weaviate on one machine (`make run`, tests, benchmarks).

`python -m docdb.localstack redis|weaviate` replaces itself with the server process, configured
from the DOCDB_* environment (docdb/config.py); the test fixtures and the benchmarks start
theirs with `weaviate_start` and `free_ports`, on free ports with a temporary data directory.
No Django here.
"""

import dataclasses
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import psutil
import requests

from docdb.config import REPO_DIR, data_dir, env_int, env_str

# Below this lie the usual ports of servers a developer runs (8080, 6379, 5432, 6060, ...).
_PORT_FLOOR = 10000
# How Weaviate (Go) says that a port it wanted was taken, before it exits.
_ADDRESS_IN_USE = "address already in use"


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
        # Its debug listener would bind port 6060, the same for every Weaviate on the machine:
        # a second one (tests beside `make run`, a benchmark beside the tests) would lose it.
        "GO_PROFILING_DISABLE": "true",
        "QUERY_DEFAULTS_LIMIT": "25",
        # A CPU embeds a full-size page in ~15 s and Weaviate sends two per request.
        "MODULES_CLIENT_TIMEOUT": env_str("DOCDB_WEAVIATE_MODULES_TIMEOUT"),
        # Self-hosted vectorization needs API-key auth: the key reaches the embedder as bearer.
        "AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED": "false",
        "AUTHENTICATION_APIKEY_ENABLED": "true",
        "AUTHENTICATION_APIKEY_ALLOWED_KEYS": api_key,
        "AUTHENTICATION_APIKEY_USERS": "docdb",
        "LIMIT_RESOURCES": "true",
        "GOMEMLIMIT": env_str("DOCDB_WEAVIATE_GOMEMLIMIT"),
        "LOG_LEVEL": env_str("DOCDB_WEAVIATE_LOG_LEVEL"),
    }


def weaviate_command(binary: str, http_port: int) -> list[str]:
    return [binary, "--host", "127.0.0.1", "--port", str(http_port), "--scheme", "http"]


def _ephemeral_ports() -> range:
    """The ports the kernel gives outgoing connections: any client may take one at any time."""
    try:
        low, high = (
            int(n) for n in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        )
    except (OSError, ValueError):
        low, high = 49152, 65535  # IANA's range, what macOS uses
    return range(low, high + 1)


def _port_hold(port: int) -> list[socket.socket] | None:
    """Sockets bound to `port` on every address, TCP and UDP, IPv4 and IPv6 (Weaviate's gossip
    uses UDP too, its Raft listens on the machine's IPv6 address), or None when anything uses
    it. No SO_REUSEADDR: a connection still closing counts as a use."""
    held: list[socket.socket] = []
    try:
        for family, address in ((socket.AF_INET, ""), (socket.AF_INET6, "::")):
            for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                try:
                    sock = socket.socket(family, kind)
                except OSError:
                    continue  # no IPv6 on this machine
                held.append(sock)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind((address, port))
    except OSError:
        for sock in held:
            sock.close()
        return None
    return held


def free_ports(count: int) -> list[int]:
    """`count` different ports that nothing uses now, chosen at random outside the kernel's
    ephemeral range, so that no outgoing connection takes one before the server binds it.

    A program that picks its own ports can still take one in between: `weaviate_start` tries
    again on others when that happens."""
    ephemeral = _ephemeral_ports()
    candidates = [port for port in range(_PORT_FLOOR, 65536) if port not in ephemeral]
    chosen: dict[int, list[socket.socket]] = {}
    try:
        for _ in range(100 * count):
            port = secrets.choice(candidates)
            held = None if port in chosen else _port_hold(port)
            if held is not None:
                chosen[port] = held
            if len(chosen) == count:
                return list(chosen)
    finally:
        for held in chosen.values():
            for sock in held:
                sock.close()
    raise ServiceUnavailable(f"Found no {count} free ports between {_PORT_FLOOR} and 65535.")


def free_port() -> int:
    return free_ports(1)[0]


def free_port_run(length: int) -> int:
    """The first of `length` consecutive free ports, chosen like `free_ports`."""
    ephemeral = _ephemeral_ports()
    bases = [
        base
        for base in range(_PORT_FLOOR, 65536 - length)
        if not any(port in ephemeral for port in (base, base + length - 1))
    ]
    for _ in range(200):
        base = secrets.choice(bases)
        held: list[list[socket.socket]] = []
        try:
            for port in range(base, base + length):
                sockets = _port_hold(port)
                if sockets is None:
                    break
                held.append(sockets)
            else:
                return base
        finally:
            for sockets in held:
                for sock in sockets:
                    sock.close()
    raise ServiceUnavailable(f"Found no {length} consecutive free ports above {_PORT_FLOOR}.")


@dataclass
class WeaviateServer:
    """A Weaviate that `weaviate_start` started, with what it takes to start it again."""

    ports: WeaviatePorts
    command: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports.http}"


def server_spawn(
    command: list[str], env: Mapping[str, str], log_path: Path
) -> subprocess.Popen[bytes]:
    """Start a server with its output appended to `log_path`, in a process group of its own
    (a test kills the group; Ctrl-C in the terminal reaches only its parent)."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=REPO_DIR,
            start_new_session=True,
        )


def weaviate_start(
    *,
    data_dir: Path,
    api_key: str,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
    attempts: int = 3,
) -> WeaviateServer:
    """A new Weaviate on free ports, ready to serve; `env` adds to or overrides its settings.

    When Weaviate exits because one of its ports was taken after `free_ports` chose it, it is
    started again on other ports, up to `attempts` times; any other exit raises with its log.
    `data_dir` must be new: what a failed start left in it is removed before the next one.
    """
    binary = weaviate_binary()
    output = ""
    for _ in range(attempts):
        ports = WeaviatePorts(*free_ports(6))
        server_env = {
            **os.environ,
            **weaviate_env(data_dir=data_dir, ports=ports, api_key=api_key),
            **(env or {}),
        }
        command = weaviate_command(binary, ports.http)
        log_start = log_path.stat().st_size if log_path.exists() else 0
        server = WeaviateServer(
            ports, command, server_env, log_path, server_spawn(command, server_env, log_path)
        )
        if _weaviate_ready_wait(server, timeout=timeout, log_start=log_start):
            return server
        output = _log_read(log_path, log_start)
        if _ADDRESS_IN_USE not in output.lower():
            raise ServiceUnavailable(f"Weaviate exited while starting:\n{output[-3000:]}")
        shutil.rmtree(data_dir, ignore_errors=True)
    raise ServiceUnavailable(
        f"Weaviate found one of its ports taken {attempts} times in a row:\n{output[-3000:]}"
    )


@dataclass
class WeaviateCluster:
    """Weaviate nodes on this machine forming one RAFT cluster, each restartable on its ports
    and data (a test's or a benchmark's stand-in for nodes on several hosts)."""

    nodes: list[WeaviateServer]

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def grpc_ports(self) -> list[int]:
        return [node.ports.grpc for node in self.nodes]

    def objects_per_node(self, collection: str, *, api_key: str) -> dict[str, int]:
        """Objects of `collection` each node holds, as the nodes API of a running node
        reports them (it counts asynchronously: a moment behind the writes)."""
        for node in self.nodes:
            if node.process.poll() is not None:
                continue
            answer = requests.get(
                f"{node.url}/v1/nodes",
                params={"output": "verbose", "collection": collection},
                headers={"Authorization": f"Bearer {api_key}"},
                timeout=10,
            )
            answer.raise_for_status()
            return {
                item["name"]: sum(shard["objectCount"] for shard in item.get("shards") or [])
                for item in answer.json()["nodes"]
            }
        raise ServiceUnavailable("no Weaviate node of the cluster is running")

    def raft_leader(self, *, api_key: str, timeout: float = 30) -> int:
        """The index of the node that leads the cluster's RAFT (schema) consensus now."""
        deadline = time.monotonic() + timeout
        while True:
            for node in self.nodes:
                if node.process.poll() is not None:
                    continue
                answer = requests.get(
                    f"{node.url}/v1/cluster/statistics",
                    headers={"Authorization": f"Bearer {api_key}"},
                    timeout=10,
                )
                answer.raise_for_status()
                for item in answer.json()["statistics"]:
                    if (item.get("raft") or {}).get("state") == "Leader":
                        return int(item["name"].removeprefix("node")) - 1
                break
            if time.monotonic() > deadline:
                raise ServiceUnavailable(f"no RAFT leader among the nodes within {timeout:.0f} s")
            time.sleep(0.5)  # an election under way

    def node_restart(self, index: int, *, timeout: float = 120) -> None:
        """Start a stopped node again with its ports and data: it rejoins the cluster."""
        node = self.nodes[index]
        log_start = node.log_path.stat().st_size if node.log_path.exists() else 0
        node.process = server_spawn(node.command, node.env, node.log_path)
        if not _weaviate_ready_wait(node, timeout=timeout, log_start=log_start):
            output = _log_read(node.log_path, log_start)
            raise ServiceUnavailable(f"Weaviate node {index + 1} exited:\n{output[-3000:]}")

    def stop(self) -> None:
        for node in self.nodes:
            if node.process.poll() is None:
                node.process.terminate()
        for node in self.nodes:
            try:
                node.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait()


def weaviate_cluster_start(
    *,
    size: int,
    data_dir: Path,
    api_key: str,
    log_dir: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> WeaviateCluster:
    """`size` Weaviate nodes of the pinned binary as one cluster on local ports.

    Weaviate on one machine: `CLUSTER_IN_LOCALHOST`, each node advertising 127.0.0.1 with ports
    of its own, the others joining the first node's gossip port, and every node named in
    `RAFT_JOIN` so that the first `size` to start elect a leader. A node reaches another's data
    port at its gossip port + 1 and its Raft RPC port at its Raft port + 1, whatever that node
    was told: each node's six ports are consecutive.
    """
    binary = weaviate_binary()
    names = [f"node{number}" for number in range(1, size + 1)]
    bases = [free_port_run(6) for _ in names]
    ports = [WeaviatePorts(*range(base, base + 6)) for base in bases]
    raft_join = ",".join(f"{name}:{node.raft}" for name, node in zip(names, ports, strict=True))
    nodes = []
    try:
        for index, (name, node_ports) in enumerate(zip(names, ports, strict=True)):
            node_env = {
                **os.environ,
                **weaviate_env(data_dir=data_dir / name, ports=node_ports, api_key=api_key),
                "CLUSTER_HOSTNAME": name,
                "CLUSTER_IN_LOCALHOST": "true",
                "CLUSTER_ADVERTISE_ADDR": "127.0.0.1",
                "CLUSTER_JOIN": f"127.0.0.1:{ports[0].gossip}" if index else "",
                "RAFT_JOIN": raft_join,
                "RAFT_BOOTSTRAP_EXPECT": str(size),
                **(env or {}),
            }
            command = weaviate_command(binary, node_ports.http)
            log_path = log_dir / f"weaviate-{name}.log"
            process = server_spawn(command, node_env, log_path)
            nodes.append(WeaviateServer(node_ports, command, node_env, log_path, process))
        cluster = WeaviateCluster(nodes)
        for node in nodes:
            if not _weaviate_ready_wait(node, timeout=timeout, log_start=0):
                output = _log_read(node.log_path, 0)
                raise ServiceUnavailable(f"A Weaviate node exited:\n{output[-3000:]}")
        return cluster
    except BaseException:
        WeaviateCluster(nodes).stop()
        raise


@dataclass
class Balancer:
    """HAProxy in front of a Weaviate cluster: one HTTP and one gRPC address for DocDB."""

    http_port: int
    grpc_port: int
    socket_path: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def connections(self) -> dict[str, int]:
        """Open connections per node (both backends), from HAProxy's statistics."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(str(self.socket_path))
            client.sendall(b"show stat\n")
            text = b"".join(iter(lambda: client.recv(65536), b"")).decode()
        header, *rows = [line for line in text.splitlines() if line]
        columns = header.lstrip("# ").split(",")
        counts: dict[str, int] = {}
        for row in rows:
            values = dict(zip(columns, row.split(","), strict=False))
            if values["svname"] not in ("FRONTEND", "BACKEND"):
                counts[values["svname"]] = counts.get(values["svname"], 0) + int(values["scur"])
        return counts

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def haproxy_config(
    cluster: WeaviateCluster, *, http_port: int, grpc_port: int, socket_path: Path
) -> str:
    """A TCP balancer over the nodes' HTTP and gRPC ports. A node counts as up while its HTTP
    port answers ready (checked twice a second); a connection that fails goes to another node
    (redispatch), so a node lost costs a client one reconnect."""
    lines = [
        "global",
        f"    stats socket {socket_path} mode 600 level admin",
        "defaults",
        "    mode tcp",
        "    timeout connect 2s",
        "    timeout client 10m",
        "    timeout server 10m",
        "    retries 3",
        "    option redispatch",
    ]
    for name, port, node_port in (("http", http_port, "http"), ("grpc", grpc_port, "grpc")):
        lines += [
            f"frontend {name}",
            f"    bind 127.0.0.1:{port}",
            f"    default_backend {name}_nodes",
            f"backend {name}_nodes",
            "    balance leastconn",
            "    option httpchk GET /v1/.well-known/ready",
        ]
        for number, node in enumerate(cluster.nodes, start=1):
            target = getattr(node.ports, node_port)
            lines.append(
                f"    server node{number} 127.0.0.1:{target} check port {node.ports.http} "
                "inter 500 fall 2 rise 2"
            )
    return "\n".join(lines) + "\n"


def haproxy_start(cluster: WeaviateCluster, *, folder: Path, timeout: float = 30) -> Balancer:
    """HAProxy (Debian's `haproxy`) on two free ports in front of the cluster's nodes."""
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    http_port, grpc_port = free_ports(2)
    socket_path = folder / "haproxy.sock"
    config = folder / "haproxy.cfg"
    config.write_text(
        haproxy_config(cluster, http_port=http_port, grpc_port=grpc_port, socket_path=socket_path)
    )
    process = server_spawn([binary, "-db", "-f", str(config)], os.environ, folder / "haproxy.log")
    balancer = Balancer(http_port, grpc_port, socket_path, process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServiceUnavailable(f"HAProxy exited:\n{_log_read(folder / 'haproxy.log', 0)}")
        try:
            if requests.get(f"{balancer.url}/v1/.well-known/ready", timeout=2).status_code == 200:
                return balancer
        except requests.RequestException:
            pass  # still starting, or no node checked up yet
        time.sleep(0.3)
    balancer.stop()
    raise ServiceUnavailable(f"HAProxy did not pass requests within {timeout:.0f} s")


def _weaviate_ready_wait(server: WeaviateServer, *, timeout: float, log_start: int) -> bool:
    """True once it answers ready, False if it exited first; stops it and raises with its log
    when it takes longer than `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            if requests.get(f"{server.url}/v1/.well-known/ready", timeout=2).status_code == 200:
                return True
        except requests.RequestException:
            pass  # still starting
        time.sleep(0.3)
    server.process.kill()
    server.process.wait()
    output = _log_read(server.log_path, log_start)
    raise ServiceUnavailable(f"Weaviate did not become ready in {timeout:.0f} s:\n{output[-3000:]}")


def _log_read(path: Path, start: int) -> str:
    """What a server wrote to its log from byte `start` on (earlier runs appended the rest)."""
    with path.open("rb") as log:
        log.seek(start)
        return log.read().decode(errors="replace")


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
    return WeaviatePorts(
        http=env_int("DOCDB_WEAVIATE_HTTP_PORT"),
        grpc=env_int("DOCDB_WEAVIATE_GRPC_PORT"),
        gossip=env_int("DOCDB_WEAVIATE_GOSSIP_PORT"),
        data=env_int("DOCDB_WEAVIATE_DATA_PORT"),
        raft=env_int("DOCDB_WEAVIATE_RAFT_PORT"),
        raft_rpc=env_int("DOCDB_WEAVIATE_RAFT_RPC_PORT"),
    )


def run_ports() -> dict[str, int]:
    """The ports `make run`'s services listen on, by service, as the environment sets them."""
    weaviate = _ports_from_env()
    return {
        "web": env_int("DOCDB_WEB_PORT"),
        "Redis": env_int("DOCDB_REDIS_PORT"),
        "embedder": env_int("DOCDB_EMBEDDER_PORT"),
        **{f"Weaviate ({name})": port for name, port in dataclasses.asdict(weaviate).items()},
    }


def ports_check(ports: Mapping[str, int]) -> list[str]:
    """What stands in the way of listening on `ports`: one sentence per port in use, naming the
    process that holds it where this user may see it, and what to do."""
    holders = {
        connection.laddr.port: connection.pid
        for connection in psutil.net_connections(kind="inet")
        if connection.status == psutil.CONN_LISTEN
    }
    problems = []
    for service, port in ports.items():
        if port not in holders and _port_free(port):
            continue
        pid = holders.get(port)
        try:
            holder = f"by `{' '.join(psutil.Process(pid).cmdline())}` (process {pid})"
            remedy = f"stop it (`kill {pid}`)"
        except (psutil.Error, TypeError):  # no pid: another user's process, or not a listener
            holder, remedy = "by another program", "stop that program"
        problems.append(
            f"Port {port}, which the {service} needs, is already in use {holder}. If it is left "
            f"from an earlier `make run` that did not stop its services (a closed terminal, the "
            f"out-of-memory killer), {remedy} and run `make run` again; or set another port in "
            ".env (the DOCDB_*_PORT settings in .env.example)."
        )
    return problems


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # A connection still closing (TIME_WAIT) does not keep a server from listening.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def main(argv: list[str]) -> None:
    data_root = data_dir()
    service = argv[1] if len(argv) > 1 else ""
    if service == "ports-check":
        problems = ports_check(run_ports())
        for problem in problems:
            print(problem, file=sys.stderr)
        sys.exit(1 if problems else 0)
    if service == "weaviate":
        ports = _ports_from_env()
        folder = data_root / "weaviate"
        folder.mkdir(parents=True, exist_ok=True)
        binary = weaviate_binary()
        api_key = env_str("DOCDB_WEAVIATE_API_KEY")
        env = {**os.environ, **weaviate_env(data_dir=folder, ports=ports, api_key=api_key)}
        command = weaviate_command(binary, ports.http)
    elif service == "redis":
        folder = data_root / "redis"
        folder.mkdir(parents=True, exist_ok=True)
        command = redis_command(data_dir=folder, port=env_int("DOCDB_REDIS_PORT"))
        env = dict(os.environ)
    else:
        sys.exit("usage: python -m docdb.localstack redis|weaviate|ports-check")
    os.execvpe(command[0], command, env)


if __name__ == "__main__":
    main(sys.argv)
