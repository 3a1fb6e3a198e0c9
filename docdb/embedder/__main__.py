"""`python -m docdb.embedder` serves the model; `python -m docdb.embedder build-tiny PATH` builds
the random test model into PATH. Settings come from DOCDB_EMBEDDER_* environment variables."""

import argparse
import logging
import os
import sys
from pathlib import Path

import uvicorn

from docdb.embedder.config import ConfigError, config_from_env
from docdb.embedder.model import ModelLoadError, tiny_model_build
from docdb.embedder.server import create_app


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m docdb.embedder", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    build = commands.add_parser("build-tiny", help="build the random test model and exit")
    build.add_argument("path", type=Path)
    args = parser.parse_args(argv)
    if args.command == "build-tiny":
        print(f"built the tiny test model in {tiny_model_build(args.path)}")
        return 0
    return serve()


def serve() -> int:
    logging.basicConfig(
        stream=sys.stdout, level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
    )
    try:
        config = config_from_env(os.environ)
        app = create_app(config)
    except (ConfigError, ModelLoadError) as exc:
        print(f"docdb.embedder: {exc}", file=sys.stderr)
        return 1
    # Our middleware logs each request with its input count, so uvicorn's access log would
    # only repeat it.
    uvicorn.run(app, host=config.host, port=config.port, access_log=False, log_config=None)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
