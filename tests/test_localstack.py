"""Starting servers beside others on one machine: the tests' own stack, `make run`, a benchmark.

Ports are picked outside the kernel's ephemeral range, where any outgoing connection could take
one before the server binds it, and a Weaviate that still finds a port taken starts again on
other ports."""

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from docdb import localstack
from docdb.localstack import WeaviateServer, free_ports, weaviate_start


def test_free_ports_are_distinct_unused_and_outside_the_ephemeral_range() -> None:
    ephemeral = localstack._ephemeral_ports()
    ports = free_ports(20)
    assert len(set(ports)) == 20
    for port in ports:
        assert port not in ephemeral
        with socket.socket() as sock:
            sock.bind(("", port))


def test_a_port_in_use_is_never_picked() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert localstack._port_hold(busy.getsockname()[1]) is None


@pytest.fixture
def started() -> Iterator[list[WeaviateServer]]:
    servers: list[WeaviateServer] = []
    yield servers
    for server in servers:
        server.process.terminate()
        server.process.wait(60)


@pytest.mark.services
@pytest.mark.timeout(300)
def test_weaviate_starts_again_on_other_ports_when_one_was_taken_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, started: list[WeaviateServer]
) -> None:
    """Another program binds the gRPC port between the pick and Weaviate's start."""
    first_pick = free_ports(6)
    picks = iter([first_pick])
    monkeypatch.setattr(localstack, "free_ports", lambda count: next(picks, None) or free_ports(6))
    with socket.socket() as thief:
        thief.bind(("", first_pick[1]))
        thief.listen()
        server = weaviate_start(
            data_dir=tmp_path / "data", api_key="key", log_path=tmp_path / "weaviate.log"
        )
        started.append(server)
    assert server.ports.grpc != first_pick[1]
    assert "address already in use" in (tmp_path / "weaviate.log").read_text()
    assert server.process.poll() is None


@pytest.mark.services
@pytest.mark.timeout(300)
def test_two_weaviates_run_side_by_side(tmp_path: Path, started: list[WeaviateServer]) -> None:
    """Nothing machine-wide, such as the Go profiler's port 6060, is shared between them."""
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        started.append(
            weaviate_start(
                data_dir=tmp_path / name / "data",
                api_key="key",
                log_path=tmp_path / name / "weaviate.log",
            )
        )
    for server in started:
        assert server.process.poll() is None
        log = server.log_path.read_text().lower()
        assert "address already in use" not in log, log


def test_make_run_names_the_process_holding_a_port_it_needs() -> None:
    """`make run` checks its ports before it starts anything (scripts/run.sh): a service left from
    an earlier run is named, with what to do, instead of "Address already in use"."""
    names = ["WEB", "REDIS", "EMBEDDER", "WEAVIATE_HTTP", "WEAVIATE_GRPC", "WEAVIATE_GOSSIP",
             "WEAVIATE_DATA", "WEAVIATE_RAFT", "WEAVIATE_RAFT_RPC"]  # fmt: skip
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    env = {**os.environ, **{f"DOCDB_{name}_PORT": str(port) for name, port in ports.items()}}
    command = [sys.executable, "-m", "docdb.localstack", "ports-check"]
    assert subprocess.run(command, env=env, capture_output=True, check=False).returncode == 0
    held = ports["REDIS"]
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", held))
        listener.listen()
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert f"Port {held}, which the Redis needs, is already in use" in result.stderr
    assert f"(process {os.getpid()})" in result.stderr and f"`kill {os.getpid()}`" in result.stderr
    assert "run `make run` again" in result.stderr
    assert result.stderr.count("Port ") == 1
