"""`python -m docdb.embedder` serves the model; `python -m docdb.embedder check` loads it and checks
that it finds a sample page by its text (run it after downloading the model);
`python -m docdb.embedder build-tiny PATH` builds the random test model into PATH. Settings come
from DOCDB_EMBEDDER_* environment variables."""

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

import torch
import uvicorn
from fastapi import FastAPI
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from docdb.embedder.app import create_app, logging_setup, service_app
from docdb.embedder.check import check_run
from docdb.embedder.config import ConfigError, EmbedderConfig, config_from_env
from docdb.embedder.front import FrontService
from docdb.embedder.model import ModelLoadError, checkpoint_check, device_resolve, model_source
from docdb.embedder.testmodel import tiny_model_build

log = logging.getLogger("docdb.embedder")

# Processes serving one GPU when DOCDB_EMBEDDER_WORKERS is not set. One process cannot keep a
# GPU busy: its threads decoding and preprocessing pages, reading requests and writing vectors
# hold Python's GIL so much that the model thread waits to launch its kernels. On an H200
# (bench/gpu_embedder.py, docs/benchmarks.md) 1, 2 and 4 workers gave 38 %, 59 % and 71 % of the
# model-only throughput, each worker holding 10-13 GiB of GPU memory at batch 32.
MAX_GPU_WORKERS = 4
GPU_GIB_PER_WORKER = 16
# The workers' shared page embeddings go to a private folder (mode 0700) made in here.
SHARED_MEMORY = "/dev/shm"  # noqa: S108


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m docdb.embedder", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    build = commands.add_parser("build-tiny", help="build the random test model and exit")
    build.add_argument("path", type=Path)
    commands.add_parser(
        "check", help="load the model, embed a sample page and queries, and check the ranking"
    )
    args = parser.parse_args(argv)
    if args.command == "build-tiny":
        print(f"built the tiny test model in {tiny_model_build(args.path)}")
        return 0
    if args.command == "check":
        return check()
    return serve()


def check() -> int:
    try:
        config = config_from_env(os.environ)
    except ConfigError as exc:
        print(f"docdb.embedder: {exc}", file=sys.stderr)
        return 1
    return check_run(config)


def serve() -> int:
    logging_setup()
    try:
        config = config_from_env(os.environ)
        workers = workers_resolve(config)
        if config.front:
            app = _front_app(config, workers)
        elif workers == 1:
            app = create_app(config)
        else:
            # Download or build it once, not in every worker at the same time, and refuse an
            # adapter or another model here rather than in each worker.
            checkpoint_check(
                model_source(
                    config.model, cache_dir=config.cache_dir, revision=config.model_revision
                )
            )
    except (ConfigError, ModelLoadError) as exc:
        print(f"docdb.embedder: {exc}", file=sys.stderr)
        return 1
    # Our middleware logs each request with its input count, so uvicorn's access log would
    # only repeat it.
    if workers == 1 or config.front:
        uvicorn.run(app, host=config.host, port=config.port, access_log=False, log_config=None)
        return 0
    return _serve_workers(config, workers)


def _front_app(config: EmbedderConfig, processes: int) -> FastAPI:
    """One HTTP process in front of `processes` model processes (front.py)."""
    # Download or build it once, not in every model process at the same time.
    checkpoint_check(
        model_source(config.model, cache_dir=config.cache_dir, revision=config.model_revision)
    )
    log.info("serving the model from %d model processes behind one front", processes)
    return service_app(FrontService(config, processes))


def workers_resolve(config: EmbedderConfig) -> int:
    """How many processes serve the model: as configured, else 1 on a CPU (where the model's own
    threads use every core) and as many as the GPU's memory holds, up to MAX_GPU_WORKERS."""
    if config.workers:
        return config.workers
    device = device_resolve(config.device)
    if device.type != "cuda":
        return 1
    return gpu_workers(torch.cuda.get_device_properties(device).total_memory / 2**30)


def gpu_workers(memory_gib: float) -> int:
    """Workers for a GPU with this much memory: one per GPU_GIB_PER_WORKER, 1 to MAX_GPU_WORKERS."""
    return max(1, min(MAX_GPU_WORKERS, int(memory_gib // GPU_GIB_PER_WORKER)))


def _serve_workers(config: EmbedderConfig, workers: int) -> int:
    """Several processes, each with the model, share the listening socket; the kernel hands
    each new connection to one of them. A worker that cannot start stops them all."""
    log.info("serving the model from %d worker processes", workers)
    with tempfile.TemporaryDirectory(prefix="docdb-embedder-", dir=_shared_memory()) as shared:
        # The workers read their settings from the environment: how many they are, and where
        # they share page embeddings (docdb/embedder/shared.py).
        os.environ["DOCDB_EMBEDDER_WORKERS"] = str(workers)
        os.environ["DOCDB_EMBEDDER_SHARED_DIR"] = shared
        return _supervise(config, workers)


def _shared_memory() -> str | None:
    """A RAM-backed folder for the shared page embeddings where there is one."""
    return SHARED_MEMORY if os.access(SHARED_MEMORY, os.W_OK) else None


def _supervise(config: EmbedderConfig, workers: int) -> int:
    server_config = uvicorn.Config(
        "docdb.embedder.app:app_from_env",
        factory=True,
        host=config.host,
        port=config.port,
        workers=workers,
        access_log=False,
        log_config=None,
    )
    supervisor = Multiprocess(server_config, sockets=[server_config.bind_socket()])
    supervisor.run()
    failed = [process for process in supervisor.processes if process.exitcode == STARTUP_FAILURE]
    if failed:
        print("docdb.embedder: a worker could not start (its log above says why).", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
