"""Child processes with a time limit and a memory cap: every PDF engine runs in one, so a
hostile file can at worst fail its own job."""

import os
import resource
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

# Address space for one engine process. Rendering at 2048 px needs about 100 MB; what needs
# more is a hostile page (an enormous embedded image, a decompression bomb).
MEMORY_BYTES = 2 * 1024**3


@dataclass(frozen=True, slots=True)
class Finished:
    returncode: int  # negative: killed by that signal (a crash, the memory cap)
    stdout: bytes  # on a timeout, what the process wrote before it was stopped
    stderr: bytes
    timed_out: bool


def capped_run(
    args: list[str], *, timeout: float, stdin: bytes = b"", env: Mapping[str, str] | None = None
) -> Finished:
    """Run `args` with the memory cap, stopped after `timeout` seconds; `env` adds to (or
    replaces in) this process's environment."""
    if timeout <= 0:
        return Finished(returncode=-1, stdout=b"", stderr=b"", timed_out=True)
    try:
        result = subprocess.run(
            args,
            input=stdin,
            capture_output=True,
            timeout=timeout,
            check=False,
            env={**os.environ, **env} if env else None,
            preexec_fn=_memory_cap,  # one setrlimit call in the child, nothing that takes locks
        )
    except subprocess.TimeoutExpired as exc:
        return Finished(
            returncode=-1, stdout=exc.stdout or b"", stderr=exc.stderr or b"", timed_out=True
        )
    return Finished(result.returncode, result.stdout, result.stderr, timed_out=False)


def _memory_cap() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
