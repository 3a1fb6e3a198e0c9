"""A throwaway PostgreSQL server for `pytest --postgres` (`make test-postgres`).

It uses Debian's `postgresql` package (initdb and pg_ctl, not its system-wide cluster): a server of
its own on a free port with its data in a temporary folder, removed at the end. PostgreSQL refuses
to run as root, so under root (CI) it runs as the package's `postgres` user.
"""

import os
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote


class PostgresUnavailable(Exception):
    pass


@dataclass
class PostgresServer:
    url: str
    root: Path
    bin_dir: Path
    run_as: list[str]

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "postgres.log"

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def program(self, name: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Run one of the server's programs (initdb, pg_ctl) as the user that owns the data."""
        command = [*self.run_as, str(self.bin_dir / name), "-D", str(self.data_dir), *args]
        return subprocess.run(command, capture_output=True, text=True, check=False)

    def stop(self) -> None:
        self.program("pg_ctl", "-m", "fast", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


def postgres_bin_dir() -> Path:
    """The newest installed server's programs (Debian keeps them out of PATH)."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda path: int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1].parent
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    raise PostgresUnavailable(
        "PostgreSQL is not installed: `make test-postgres` installs it "
        "(Debian: apt-get install postgresql)."
    )


def postgres_start(*, port: int) -> PostgresServer:
    bin_dir = postgres_bin_dir()
    # Not pytest's tmp_path: its folders are private to the user running the tests.
    root = Path(tempfile.mkdtemp(prefix="docdb-postgres-"))
    run_as: list[str] = []
    password = secrets.token_urlsafe(16)
    password_file = root / "password"
    password_file.write_text(password)
    if os.geteuid() == 0:
        run_as = ["runuser", "-u", "postgres", "--"]
        for path in (root, password_file):
            shutil.chown(path, "postgres", "postgres")
    server = PostgresServer(
        url=f"postgres://docdb:{password}@127.0.0.1:{port}/docdb",
        root=root,
        bin_dir=bin_dir,
        run_as=run_as,
    )
    # Durability is worth nothing for a database dropped at the end of the run.
    options = f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off -c synchronous_commit=off"
    credentials = ["--username", "docdb", "--pwfile", str(password_file), "--auth", "scram-sha-256"]
    steps = [
        ["initdb", *credentials, "--encoding", "UTF8", "--no-locale"],
        ["pg_ctl", "-l", str(server.log_path), "-o", options, "-w", "-t", "60", "start"],
    ]
    for name, *args in steps:
        result = server.program(name, *args)
        if result.returncode != 0:
            log = server.log_tail()
            server.stop()
            raise PostgresUnavailable(
                f"{name} failed ({result.returncode}):\n{result.stdout}{result.stderr}{log}"
            )
    return server


def settings_use(url: str) -> None:
    """Point Django's default database at `url`, before the tests create their database there.

    Loading the models made a connection object for the configured database (to ask its longest
    table name) but opened nothing: it is dropped, and the next use builds one for `url`."""
    from django.conf import settings
    from django.db import connections

    from docdb.settings import database_config

    settings.DATABASES["default"] = database_config(url)
    connections.configure_settings(settings.DATABASES)
    connections["default"].close()
    del connections["default"]


def database_url(database: dict[str, Any]) -> str:
    """A DOCDB_DATABASE_URL naming the database these settings point at ("" for SQLite).

    The Celery worker gets it, so that it works in the test database the tests created."""
    if "postgresql" not in database["ENGINE"]:
        return ""
    credentials = f"{quote(database['USER'], safe='')}:{quote(database['PASSWORD'], safe='')}"
    address = f"{database['HOST']}:{database['PORT']}"
    return f"postgres://{credentials}@{address}/{quote(str(database['NAME']), safe='')}"
