"""Real services for the tests: Redis, Weaviate, the embedder (tiny model) and a Celery worker.

Each is started once per test session on free local ports with its data in a temporary folder,
and stopped at the end. Nothing here is a mock.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import pytest
import requests
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.test import Client, RequestFactory, override_settings

if TYPE_CHECKING:
    from playwright.sync_api import Browser

from docdb.localstack import free_port, redis_command, server_spawn, weaviate_start

# Tests compute in float32 on every CPU: their tolerances are float32's, and `auto` picks bfloat16
# on CPUs with native bfloat16 (test_precision.py tests that choice). The services started here
# inherit the variable; the `float32_cpu` fixture below makes `auto` read a CPU without it in
# this process.
os.environ["DOCDB_EMBEDDER_DTYPE"] = "float32"
from tests.helpers import PASSWORD
from tests.postgres import PostgresServer, database_url, postgres_start, settings_use
from tests.seaweedfs import S3Server, seaweedfs_start

REPO_DIR = Path(__file__).resolve().parent.parent
API_KEY = "test-weaviate-key"
# Tests render pages smaller than production (2048) so the CPU-only tiny model stays quick.
RENDER_LONGEST_EDGE = 1024
# Below the corpus's 3000-page file, so the test suite sees the page limit at work instead of
# spending minutes on it (its memory use is measured by the ingestion benchmark instead).
TEST_PDF_MAX_PAGES = 2000
# Holds on documents: a heartbeat each second, a dead worker noticed after 5 s.
HEARTBEAT_SECONDS = 1
HOLD_SECONDS = 5


@dataclass
class Service:
    """A server process of the test stack; it can be stopped, killed and started again."""

    name: str
    command: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes]
    ready: Callable[[], bool] | None = None

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the process and all its children at once, as the OOM killer or a crash would."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def start(self, *, timeout: float = 120) -> None:
        """Start it again with the same command, ports and data, and wait until it is ready."""
        assert self.process.poll() is not None, f"{self.name} is still running"
        self.process = server_spawn(self.command, self.env, self.log_path)
        if self.ready is not None:
            wait_until(self, self.ready, timeout=timeout)


def service_start(
    name: str, command: list[str], *, log_dir: Path, env: dict[str, str] | None = None
) -> Service:
    log_path = log_dir / f"{name}.log"
    env = env or dict(os.environ)
    return Service(
        name=name,
        command=command,
        env=env,
        log_path=log_path,
        process=server_spawn(command, env, log_path),
    )


def wait_until(service: Service, ready: Callable[[], bool], *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise RuntimeError(f"{service.name} exited early:\n{service.log_tail()}")
        try:
            if ready():
                return
        except Exception:  # noqa: S110 - a server that is starting up fails its probe any way
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{service.name} did not become ready in {timeout}s:\n{service.log_tail()}")


def http_ok(url: str) -> bool:
    return requests.get(url, timeout=2).status_code == 200


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--postgres",
        action="store_true",
        help="run the tests that use the database, and only those, on a PostgreSQL server "
        "started for this run (Debian's postgresql; see tests/postgres.py)",
    )


# The fixtures that start a real server or need one. A test using any of them, directly or through
# another fixture, is marked `services`; `make test-fast` runs the tests without that mark. A test
# that starts a server (or the embedder program) itself carries the mark in its own file.
SERVICE_FIXTURES = frozenset(
    {
        "redis_server",
        "weaviate_server",
        "embedder",
        "stack",
        "live",
        "browser",
        # test_embedder.py's own `python -m docdb.embedder` process
        "service",
        "s3_server",
        "s3_stack",
    }
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "services: needs real servers (added from the fixtures a test uses); "
        "`make test-fast` leaves these out",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.services)

    # With --postgres, a test that never touches the database would only run a second time.
    if not config.getoption("postgres"):
        # ... and one about a database server that many hosts share has no subject without it.
        only_postgres = [item for item in items if item.get_closest_marker("postgres_pass")]
        config.hook.pytest_deselected(items=only_postgres)
        items[:] = [item for item in items if item not in only_postgres]
        return

    def uses_db(item: pytest.Item) -> bool:
        # Through a fixture (db, live_server, ...) or the django_db mark.
        fixtures = getattr(item, "fixturenames", ())
        return "django_db_setup" in fixtures or item.get_closest_marker("django_db") is not None

    config.hook.pytest_deselected(items=[item for item in items if not uses_db(item)])
    items[:] = [item for item in items if uses_db(item)]


@pytest.fixture(scope="session", autouse=True)
def password_hashing_fast() -> Iterator[None]:
    """Every test user's password is hashed when it is made and again at each login; with the
    production hasher (PBKDF2, a million rounds: 0.7 s on a busy core) that was most of the time
    of a view test. What the hasher protects is not what these tests check."""
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """`--postgres`: this session's own PostgreSQL server, with Django's settings pointed at it."""
    server = postgres_start(port=free_port())
    settings_use(server.url)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def django_db_modify_db_settings(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Each test session gets its own SQLite file, so two runs on one machine never share it.

    A file, not memory: the Celery worker process must see what the tests commit. With
    --postgres, its own PostgreSQL server instead."""
    if request.config.getoption("postgres"):
        request.getfixturevalue("postgres_server")
        return
    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3"):
        database["TEST"]["NAME"] = str(tmp_path_factory.mktemp("db") / "test.sqlite3")


@pytest.fixture(scope="session")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack")


@dataclass
class RedisInfo:
    url: str
    port: int
    service: Service
    data_dir: Path


@pytest.fixture(scope="session")
def redis_server(stack_dir: Path) -> Iterator[RedisInfo]:
    port = free_port()
    data_dir = stack_dir / "redis"
    data_dir.mkdir()
    service = service_start("redis", redis_command(data_dir=data_dir, port=port), log_dir=stack_dir)

    def ready() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")

    wait_until(service, ready, timeout=20)
    service.ready = ready
    yield RedisInfo(
        url=f"redis://127.0.0.1:{port}/0", port=port, service=service, data_dir=data_dir
    )
    service.stop()


@dataclass
class WeaviateInfo:
    url: str
    http_port: int
    grpc_port: int
    api_key: str
    service: Service
    binary: str
    env: dict[str, str]


@pytest.fixture(scope="session")
def weaviate_server(stack_dir: Path) -> Iterator[WeaviateInfo]:
    server = weaviate_start(
        data_dir=stack_dir / "weaviate",
        api_key=API_KEY,
        log_path=stack_dir / "weaviate.log",
        timeout=90,
    )
    service = Service(
        name="weaviate",
        command=server.command,
        env=server.env,
        log_path=server.log_path,
        process=server.process,
        ready=lambda: http_ok(f"{server.url}/v1/.well-known/ready"),
    )
    info = WeaviateInfo(
        url=server.url,
        http_port=server.ports.http,
        grpc_port=server.ports.grpc,
        api_key=API_KEY,
        service=service,
        binary=server.command[0],
        env={},
    )
    yield info
    info.service.stop()


@dataclass
class EmbedderInfo:
    url: str
    api_key: str
    model_dir: Path
    service: Service

    def health(self) -> dict[str, object]:
        return dict(requests.get(f"{self.url}/health", timeout=5).json())


@pytest.fixture(scope="session")
def tiny_model_dir(stack_dir: Path) -> Path:
    path = stack_dir / "tiny-model"
    subprocess.run(
        [sys.executable, "-m", "docdb.embedder", "build-tiny", str(path)], check=True, cwd=REPO_DIR
    )
    return path


@pytest.fixture(scope="session")
def embedder(stack_dir: Path, tiny_model_dir: Path) -> Iterator[EmbedderInfo]:
    port = free_port()
    env = {
        **os.environ,
        "DOCDB_EMBEDDER_HOST": "127.0.0.1",
        "DOCDB_EMBEDDER_PORT": str(port),
        "DOCDB_EMBEDDER_MODEL": str(tiny_model_dir),
        "DOCDB_EMBEDDER_DEVICE": "cpu",
        "DOCDB_EMBEDDER_API_KEYS": API_KEY,
    }
    service = service_start(
        "embedder", [sys.executable, "-m", "docdb.embedder"], log_dir=stack_dir, env=env
    )
    url = f"http://127.0.0.1:{port}"
    service.ready = lambda: http_ok(f"{url}/health")
    wait_until(service, service.ready, timeout=120)
    yield EmbedderInfo(url=url, api_key=API_KEY, model_dir=tiny_model_dir, service=service)
    service.stop()


@dataclass
class Stack:
    redis: RedisInfo
    weaviate: WeaviateInfo
    embedder: EmbedderInfo
    worker: Service
    worker_env: dict[str, str]
    media_dir: Path
    beat: Service
    stack_dir: Path

    def worker_restart(self) -> None:
        self.worker.stop()
        self.worker.start()


def worker_start(env: dict[str, str], log_dir: Path, *, name: str = "worker") -> Service:
    service = service_start(
        name,
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "docdb.celery",
            "worker",
            "--loglevel",
            "INFO",
            "--concurrency",
            "1",
            "--pool",
            "prefork",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--hostname",
            f"{name}@%h",
        ],
        log_dir=log_dir,
        env=env,
    )
    time.sleep(0.5)
    if service.process.poll() is not None:
        raise RuntimeError(f"{name} exited early:\n{service.log_tail()}")
    return service


def beat_start(env: dict[str, str], log_dir: Path) -> Service:
    """Celery beat, apart from the workers as in production: it queues the sweeper."""
    return service_start(
        "beat",
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "docdb.celery",
            "beat",
            "--loglevel",
            "INFO",
            "--schedule",
            str(log_dir / "celerybeat-schedule"),
        ],
        log_dir=log_dir,
        env=env,
    )


@pytest.fixture(scope="session")
def stack(
    django_db_setup: None,
    django_db_blocker: object,
    stack_dir: Path,
    redis_server: RedisInfo,
    weaviate_server: WeaviateInfo,
    embedder: EmbedderInfo,
) -> Iterator[Stack]:
    """All services, with this test process and a Celery worker pointed at them."""
    from docdb.celery import app as celery_app
    from docdb.weaviate_store import client_close

    media_dir = stack_dir / "media"
    media_dir.mkdir()
    overrides = {
        "MEDIA_ROOT": media_dir,
        "WEAVIATE_URL": weaviate_server.url,
        "WEAVIATE_GRPC_PORT": weaviate_server.grpc_port,
        "WEAVIATE_API_KEY": weaviate_server.api_key,
        "WEAVIATE_CLOUD": False,
        "EMBEDDER_URL": embedder.url,
        "RENDER_LONGEST_EDGE": RENDER_LONGEST_EDGE,
        "CELERY_BROKER_URL": redis_server.url,
        "PIPELINE_HEARTBEAT_SECONDS": HEARTBEAT_SECONDS,
        "PIPELINE_HOLD_SECONDS": HOLD_SECONDS,
    }
    override = override_settings(**overrides)
    override.enable()
    celery_app.conf.broker_url = redis_server.url
    client_close()
    worker_env = {
        **os.environ,
        "DOCDB_SQLITE_PATH": str(settings.DATABASES["default"]["NAME"]),
        "DOCDB_DATABASE_URL": database_url(settings.DATABASES["default"]),
        "DOCDB_MEDIA_DIR": str(media_dir),
        "DOCDB_REDIS_URL": redis_server.url,
        "DOCDB_WEAVIATE_URL": weaviate_server.url,
        "DOCDB_WEAVIATE_GRPC_PORT": str(weaviate_server.grpc_port),
        "DOCDB_WEAVIATE_API_KEY": weaviate_server.api_key,
        "DOCDB_WEAVIATE_CLOUD": "false",
        "DOCDB_EMBEDDER_URL": embedder.url,
        "DOCDB_RENDER_LONGEST_EDGE": str(RENDER_LONGEST_EDGE),
        "DOCDB_PDF_MAX_PAGES": str(TEST_PDF_MAX_PAGES),
        "DOCDB_DEBUG": "true",
        # Faults heal in seconds here, not minutes: a short backoff, over about a minute in all
        # (a restarted embedder loads its model first), and a message whose worker was killed
        # comes back after 30 s (a token then, harmless twice).
        "DOCDB_PIPELINE_RETRY_BASE_SECONDS": "1",
        "DOCDB_PIPELINE_RETRY_LIMIT": "6",
        "DOCDB_BROKER_VISIBILITY_TIMEOUT_SECONDS": "30",
        # A dead worker's document is taken over after seconds, and the sweeper looks often.
        "DOCDB_PIPELINE_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
        "DOCDB_PIPELINE_HOLD_SECONDS": str(HOLD_SECONDS),
        "DOCDB_SWEEP_INTERVAL_SECONDS": "2",
    }
    worker = worker_start(worker_env, stack_dir)
    worker.ready = lambda: bool(celery_app.control.ping(timeout=1))
    wait_until(worker, worker.ready, timeout=60)
    beat = beat_start(worker_env, stack_dir)
    yield Stack(
        redis=redis_server,
        weaviate=weaviate_server,
        embedder=embedder,
        worker=worker,
        worker_env=worker_env,
        media_dir=media_dir,
        beat=beat,
        stack_dir=stack_dir,
    )
    beat.stop()
    worker.stop()
    client_close()
    override.disable()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """SeaweedFS's S3 server with an empty bucket (tests/seaweedfs.py)."""
    server = seaweedfs_start()
    yield server
    server.stop()


@dataclass
class S3Stack:
    stack: Stack
    s3: S3Server
    workers: list[Service]
    # Each worker's DOCDB_DATA_DIR, its media folder inside: a host's own disk.
    data_dirs: list[Path]


@pytest.fixture(scope="module")
def s3_stack(
    request: pytest.FixtureRequest,
    stack: Stack,
    s3_server: S3Server,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[S3Stack]:
    """The stack with documents' files in the bucket (DOCDB_STORAGE=s3), for this test process
    and for workers that each have an empty data folder of their own, as on hosts that share no
    disk: two of them on PostgreSQL, one on SQLite (a one-machine database). The local-storage
    worker and beat make way (they would take the same documents) and come back afterwards."""
    from docdb.celery import app as celery_app

    stack.beat.stop()
    stack.worker.stop()
    override = override_settings(STORAGES={**settings.STORAGES, "default": s3_server.storage()})
    override.enable()
    count = 2 if request.config.getoption("postgres") else 1
    log_dir = tmp_path_factory.mktemp("s3-stack")
    data_dirs = [tmp_path_factory.mktemp(f"s3-worker-{n}") for n in range(count)]
    workers = []
    for n, data_dir in enumerate(data_dirs):
        (data_dir / "media").mkdir()
        env = {
            **stack.worker_env,
            **s3_server.env(),
            "DOCDB_DATA_DIR": str(data_dir),
            "DOCDB_MEDIA_DIR": str(data_dir / "media"),
        }
        workers.append(worker_start(env, log_dir, name=f"s3-worker-{n}"))
    wait_until(workers[0], lambda: len(celery_app.control.ping(timeout=1)) >= count, timeout=60)
    beat = beat_start({**stack.worker_env, **s3_server.env()}, log_dir)
    yield S3Stack(stack=stack, s3=s3_server, workers=workers, data_dirs=data_dirs)
    beat.stop()
    for worker in workers:
        worker.stop()
    override.disable()
    stack.worker.start()
    stack.beat.start()


@pytest.fixture
def live(stack: Stack, transactional_db: None) -> Iterator[Stack]:
    """A test with every service, committed data the worker can see, and an empty index."""
    from docdb.weaviate_store import collection_recreate

    collection_recreate()
    yield stack
    for service in (stack.worker, stack.beat, stack.weaviate.service, stack.embedder.service):
        if service.process.poll() is not None:
            pytest.fail(f"{service.name} died during the test:\n{service.log_tail()}")


class LoggedIn(Protocol):
    def __call__(self, user: AbstractBaseUser, *, enforce_csrf_checks: bool = False) -> Client: ...


@pytest.fixture
def logged_in() -> LoggedIn:
    """`logged_in(user)`: a test client logged in as `user` through the login backend, with the
    password `user_make` gives every test user."""

    def client_for(user: AbstractBaseUser, *, enforce_csrf_checks: bool = False) -> Client:
        client = Client(enforce_csrf_checks=enforce_csrf_checks)
        # The login throttle (django-axes) needs the request a login comes with.
        request = RequestFactory().post("/login/")
        assert client.login(request=request, username=user.get_username(), password=PASSWORD)
        return client

    return client_for


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The shared corpus; unset → the test is skipped, set but missing → it fails."""
    configured = os.environ.get("DOCDB_CORPUS_DIR", "")
    if not configured:
        pytest.skip("DOCDB_CORPUS_DIR is not set")
    path = Path(configured)
    if not path.is_dir():
        pytest.fail(f"DOCDB_CORPUS_DIR={configured} does not exist")
    return path


CHROMIUM = os.environ.get("DOCDB_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="session")
def browser() -> Iterator["Browser"]:
    """Debian's Chromium driven by Playwright (its own browser download cannot work here)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM} (make install-test installs it)")
    # Django's live server runs in this process; let its sync ORM calls through, for the
    # browser tests only (a subprocess inheriting it would fail `check --deploy`).
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM,
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                ],
            )
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(autouse=True, scope="session")
def float32_cpu() -> Iterator[None]:
    """`auto` resolves to float32 in this process, whatever the CPU (see the top of this file)."""
    from docdb.embedder import model

    features = {**model.cpu_features(), "bfloat16": False}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(model, "cpu_features", lambda: features)
        yield
