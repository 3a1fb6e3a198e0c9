"""Every DOCDB_* setting in one table: its type, default and meaning.

Django (docdb/settings.py), the embedder (docdb/embedder/config.py) and the local Redis and
Weaviate (docdb/localstack.py) read their settings through it, the scripts take their defaults
from it, and `.env.example` is made from it; tests/test_config.py checks that the table and the
code name the same settings.

    python -m docdb.config env-example > .env.example
    python -m docdb.config defaults NAME...   # `export NAME=default` for each unset NAME, to eval
    python -m docdb.config ocr-packages       # the Debian packages OCR needs (Makefile)

Only the standard library: the embedder imports it without Django, and the scripts run it with
any Python 3.11.
"""

import argparse
import os
import re
import shlex
import sys
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

REPO_DIR = Path(__file__).resolve().parent.parent

Kind = Literal["str", "int", "bool", "list"]


@dataclass(frozen=True)
class Setting:
    name: str
    kind: Kind
    # As written in .env. None: derived from other settings, as `meaning` says.
    default: str | None
    meaning: str
    # Whole numbers below this are refused.
    minimum: int | None = None


@dataclass(frozen=True)
class Group:
    """A section of .env.example: its title, lines printed under it, its settings."""

    title: str
    notes: tuple[str, ...]
    settings: tuple[Setting, ...]


GROUPS = (
    Group(
        "Django",
        (),
        (
            Setting(
                "DOCDB_ENV_FILE",
                "str",
                None,
                "The .env file Django reads at start (empty: .env in the project root); real "
                "environment variables win over it. Set it in the environment, not in a .env file.",
            ),
            Setting(
                "DOCDB_DEBUG",
                "bool",
                "true",
                "Development mode: detailed error pages, static files served by runserver. Off in "
                "any deployment.",
            ),
            Setting(
                "DOCDB_SECRET_KEY",
                "str",
                "",
                "A long random string, required when DOCDB_DEBUG is false (empty: a "
                "development-only key, refused then).",
            ),
            Setting(
                "DOCDB_ALLOWED_HOSTS",
                "list",
                "localhost,127.0.0.1,[::1]",
                "Comma-separated host names DocDB answers to.",
            ),
            Setting(
                "DOCDB_CSRF_TRUSTED_ORIGINS",
                "list",
                "",
                "Comma-separated origins whose forms are trusted, e.g. https://docs.example.com "
                "behind a TLS proxy.",
            ),
            Setting("DOCDB_TIME_ZONE", "str", "UTC", "The time zone dates are shown in."),
            Setting(
                "DOCDB_LOG_LEVEL",
                "str",
                "INFO",
                "Level of the log written to standard output.",
            ),
            Setting(
                "DOCDB_WEB_PORT",
                "int",
                "8000",
                "Port of the web server: Django under `make run`, the published port under docker "
                "compose.",
            ),
            Setting(
                "DOCDB_HTTPS",
                "bool",
                "false",
                "Served over HTTPS (directly or behind a TLS proxy): secure cookies, a redirect to "
                "HTTPS, HSTS. Off for the plain http://localhost:8000 of `make run` and `docker "
                "compose up`.",
            ),
            Setting(
                "DOCDB_HSTS_SECONDS",
                "int",
                "31536000",
                "With DOCDB_HTTPS: how long browsers keep to HTTPS once told (HSTS; one year).",
            ),
            Setting(
                "DOCDB_HSTS_INCLUDE_SUBDOMAINS",
                "bool",
                "true",
                "HSTS covers the host names below DocDB's own too.",
            ),
            Setting(
                "DOCDB_HSTS_PRELOAD",
                "bool",
                "false",
                "Invite browsers to put the whole domain on their HTTPS-only list: the operator's "
                "call.",
            ),
            Setting(
                "DOCDB_TRUST_X_FORWARDED_PROTO",
                "bool",
                "false",
                "Trust the X-Forwarded-Proto header: only behind a proxy that sets it itself.",
            ),
            Setting(
                "DOCDB_TRUST_X_FORWARDED_FOR",
                "bool",
                "false",
                "Take a client's address for login throttling from the X-Forwarded-For header "
                "(the address one proxy in front saw): only behind a proxy that sets it itself. "
                "Off, every login through a proxy counts as the proxy's address.",
            ),
            Setting(
                "DOCDB_LOGIN_FAILURE_LIMIT",
                "int",
                "5",
                "Failed logins (the site's and the admin's) of one username from one address "
                "before that pair is locked out.",
                minimum=1,
            ),
            Setting(
                "DOCDB_LOGIN_LOCKOUT_MINUTES",
                "int",
                "15",
                "How long a locked-out username and address pair must wait before trying again.",
                minimum=1,
            ),
            Setting(
                "DOCDB_STATIC_ROOT",
                "str",
                None,
                "Where collectstatic puts the static files (empty: static in DOCDB_DATA_DIR; the "
                "Docker image uses /app/staticfiles).",
            ),
        ),
    ),
    Group(
        "Database",
        (),
        (
            Setting(
                "DOCDB_DATABASE_URL",
                "str",
                "",
                "The database, e.g. postgres://docdb:PASSWORD@127.0.0.1:5432/docdb (empty: "
                "DATABASE_URL, which hosting platforms set, else SQLite). docker compose sets its "
                "own Postgres.",
            ),
            Setting(
                "DOCDB_SQLITE_PATH",
                "str",
                None,
                "The SQLite database file (empty: db.sqlite3 in DOCDB_DATA_DIR).",
            ),
            Setting(
                "DOCDB_TEST_SQLITE_PATH",
                "str",
                None,
                "The SQLite database file of the tests (empty: test.sqlite3 in DOCDB_DATA_DIR).",
            ),
        ),
    ),
    Group(
        "docker compose",
        (
            "docker-compose.yml reads this file too. Add the GPU embedder, or use Weaviate Cloud",
            "instead of the local Weaviate and embedder:",
            "COMPOSE_FILE=docker-compose.yml:docker-compose.gpu.yml",
            "COMPOSE_FILE=docker-compose.yml:docker-compose.cloud.yml",
        ),
        (
            Setting(
                "DOCDB_POSTGRES_PASSWORD",
                "str",
                "",
                "The password of docker compose's Postgres, required there. Letters, digits, - and "
                "_ only: it goes into the database URL as is.",
            ),
            Setting(
                "DOCDB_WEB_WORKERS",
                "int",
                "2",
                "gunicorn worker processes of docker compose's web service.",
            ),
        ),
    ),
    Group(
        "Data",
        (),
        (
            Setting(
                "DOCDB_DATA_DIR",
                "str",
                "data",
                "Where all data lives: the SQLite database, uploaded PDFs, page images, Weaviate's "
                "and Redis's files, the model. A relative path is taken from the project root.",
            ),
            Setting(
                "DOCDB_MEDIA_DIR",
                "str",
                None,
                "Uploaded PDFs, page images and thumbnails (empty: media in DOCDB_DATA_DIR).",
            ),
            Setting(
                "DOCDB_CACHE_DIR",
                "str",
                None,
                "Where scripts/weaviate-binary.sh and scripts/seaweedfs-binary.sh keep the servers "
                "they got (empty: "
                "~/.cache/docdb; the Makefile sets it to its own cache, which holds its wheelhouse "
                "too).",
            ),
        ),
    ),
    Group(
        "Object storage",
        (
            "Originals, page images and thumbnails: in DOCDB_MEDIA_DIR (local, the default), or in",
            "an S3 bucket (s3), which web and workers on many hosts share instead of a disk.",
        ),
        (
            Setting(
                "DOCDB_STORAGE",
                "str",
                "local",
                "Where documents' files are kept: `local` (DOCDB_MEDIA_DIR) or `s3` (the bucket "
                "below, through django-storages; the bucket stays private, Django serves its files "
                "to their owners).",
            ),
            Setting("DOCDB_S3_BUCKET", "str", "", "With DOCDB_STORAGE=s3: the bucket's name."),
            Setting(
                "DOCDB_S3_ENDPOINT_URL",
                "str",
                "",
                "With DOCDB_STORAGE=s3: the S3-compatible server, e.g. http://seaweedfs:8333 or "
                "https://minio.example.com (empty: Amazon S3).",
            ),
            Setting(
                "DOCDB_S3_REGION",
                "str",
                "",
                "With DOCDB_STORAGE=s3: the bucket's region (empty: the client's default).",
            ),
            Setting(
                "DOCDB_S3_ACCESS_KEY_ID",
                "str",
                "",
                "With DOCDB_STORAGE=s3: the access key (empty: boto3's own lookup, e.g. an "
                "instance role or AWS_ACCESS_KEY_ID).",
            ),
            Setting(
                "DOCDB_S3_SECRET_ACCESS_KEY",
                "str",
                "",
                "With DOCDB_STORAGE=s3: the secret key that goes with the access key.",
            ),
        ),
    ),
    Group(
        "Uploads and ingestion",
        (),
        (
            Setting("DOCDB_UPLOAD_MAX_MB", "int", "200", "Largest upload, in MB."),
            Setting("DOCDB_UPLOAD_MAX_FILES", "int", "50", "Most files in one upload."),
            Setting("DOCDB_PDF_MAX_PAGES", "int", "5000", "Longest document, in pages."),
            Setting(
                "DOCDB_RENDER_LONGEST_EDGE",
                "int",
                "2048",
                "Pages are rendered with their longest edge at this many pixels (the model's "
                "resolution).",
            ),
            Setting(
                "DOCDB_RENDER_MAX_PIXELS",
                "int",
                "4194304",
                "Most pixels in one page image (2048 x 2048).",
            ),
            Setting(
                "DOCDB_RENDER_TIMEOUT_SECONDS",
                "int",
                "60",
                "Seconds one page may take to render (or to read its text) before the document "
                "fails; OCR of a page gets as long, and the page stays without text after it.",
            ),
            Setting(
                "DOCDB_RENDER_PAGES_PER_CHUNK",
                "int",
                "8",
                "Pages per import when the operations page imports a document into Weaviate again.",
            ),
            Setting("DOCDB_THUMBNAIL_WIDTH", "int", "320", "Page thumbnails' width in pixels."),
            Setting(
                "DOCDB_PAGE_JPEG_QUALITY",
                "int",
                "88",
                "JPEG quality of the page images kept.",
            ),
            Setting(
                "DOCDB_TASK_TIME_LIMIT_SECONDS",
                "int",
                "21600",
                "A Celery task still running after this long (6 hours) is killed.",
            ),
            Setting(
                "DOCDB_TASK_ALWAYS_EAGER",
                "bool",
                "false",
                "Run Celery tasks in the process that queues them, without a worker.",
            ),
            Setting(
                "DOCDB_WORKER_CONCURRENCY",
                "int",
                "1",
                "Processes per Celery worker (`make run`, docker compose); run more workers "
                "anywhere, they share the work fairly.",
            ),
        ),
    ),
    Group(
        "Text for scanned pages (OCR)",
        (
            "Keyword and hybrid search and snippets read a page's text layer; a scan has none, so",
            "Tesseract reads its page image. `make run` and the Docker image install Tesseract",
            "and the Debian package tesseract-ocr-<code> of each language (chi_sim: -chi-sim).",
        ),
        (
            Setting(
                "DOCDB_OCR",
                "str",
                "auto",
                "auto: a page whose text layer is empty or nearly so (DOCDB_OCR_MIN_CHARS) gets "
                "its text from Tesseract; off: it stays without text, found by its image only.",
            ),
            Setting(
                "DOCDB_OCR_LANGUAGES",
                "list",
                "eng",
                "The languages Tesseract reads, comma-separated Tesseract codes (eng, deu, fra, "
                "chi_sim, ...); more languages read mixed pages and read each page more slowly.",
            ),
            Setting(
                "DOCDB_OCR_MIN_CHARS",
                "int",
                "10",
                "A page whose text layer has fewer letters and digits than this is read by OCR "
                "(1: only pages with no text at all), and keeps the OCR text if it has more.",
                minimum=1,
            ),
        ),
    ),
    Group(
        "Pipeline scheduling (docdb/documents/scheduler.py)",
        (),
        (
            Setting(
                "DOCDB_PIPELINE_HEARTBEAT_SECONDS",
                "int",
                "15",
                "A worker refreshes its hold on the document it works on this often.",
            ),
            Setting(
                "DOCDB_PIPELINE_HOLD_SECONDS",
                "int",
                "90",
                "A hold not refreshed for this long means its worker died, and another takes the "
                "document over. At least 3 heartbeats, or a live worker's document could be taken "
                "over between two.",
            ),
            Setting(
                "DOCDB_PIPELINE_MAX_RESUMES",
                "int",
                "3",
                "A document whose worker died this many times fails (the file may kill every "
                "worker).",
            ),
            Setting(
                "DOCDB_PIPELINE_RETRY_BASE_SECONDS",
                "int",
                "10",
                "Weaviate or the embedder away: the first wait before trying again, doubling each "
                "time.",
            ),
            Setting(
                "DOCDB_PIPELINE_RETRY_LIMIT",
                "int",
                "6",
                "Weaviate or the embedder away: how many times to try again before the document "
                "fails.",
            ),
            Setting(
                "DOCDB_SWEEP_INTERVAL_SECONDS",
                "int",
                "30",
                "Celery beat runs the sweeper this often; it queues work again where a message was "
                "lost.",
            ),
            Setting(
                "DOCDB_CONSISTENCY_CHECK_MINUTES",
                "int",
                "15",
                "Celery beat has the database, Weaviate and the files compared this often; the "
                "operations page shows the last result.",
            ),
            Setting(
                "DOCDB_PIPELINE_SWEEP_TOKENS",
                "int",
                "8",
                "At most this many tokens the sweeper adds at once when it finds the ingest queue "
                "empty.",
            ),
            Setting(
                "DOCDB_BROKER_VISIBILITY_TIMEOUT_SECONDS",
                "int",
                "1800",
                "A task a dead worker never acknowledged goes back to the queue after this long. "
                "One page range must finish well within it.",
            ),
        ),
    ),
    Group(
        "Redis (the Celery broker)",
        (),
        (
            Setting("DOCDB_REDIS_PORT", "int", "6389", "Port of the Redis `make run` starts."),
            Setting(
                "DOCDB_REDIS_URL",
                "str",
                None,
                "The Celery broker (empty: redis://127.0.0.1:DOCDB_REDIS_PORT/0).",
            ),
        ),
    ),
    Group(
        "Weaviate",
        (),
        (
            Setting(
                "DOCDB_WEAVIATE_VERSION",
                "str",
                "1.39.0",
                "The Weaviate server `make run` gets (scripts/weaviate-binary.sh); "
                "docker-compose.yml pins the same image.",
            ),
            Setting(
                "DOCDB_WEAVIATE_BINARY",
                "str",
                "",
                "A weaviate-server binary to use instead of the cached, downloaded or built one.",
            ),
            Setting(
                "DOCDB_WEAVIATE_HOST",
                "str",
                "127.0.0.1",
                "The host of DOCDB_WEAVIATE_URL when that is empty.",
            ),
            Setting(
                "DOCDB_WEAVIATE_HTTP_PORT",
                "int",
                "8080",
                "Weaviate's HTTP port: where the local one listens, and the port of "
                "DOCDB_WEAVIATE_URL when that is empty.",
            ),
            Setting("DOCDB_WEAVIATE_GRPC_PORT", "int", "50051", "Weaviate's gRPC port."),
            Setting(
                "DOCDB_WEAVIATE_GOSSIP_PORT",
                "int",
                "7946",
                "The local Weaviate's gossip port.",
            ),
            Setting(
                "DOCDB_WEAVIATE_DATA_PORT",
                "int",
                "7947",
                "The local Weaviate's cluster data port.",
            ),
            Setting("DOCDB_WEAVIATE_RAFT_PORT", "int", "8300", "The local Weaviate's Raft port."),
            Setting(
                "DOCDB_WEAVIATE_RAFT_RPC_PORT",
                "int",
                "8301",
                "The local Weaviate's internal Raft RPC port.",
            ),
            Setting(
                "DOCDB_WEAVIATE_URL",
                "str",
                None,
                "Where DocDB reaches Weaviate (empty: "
                "http://DOCDB_WEAVIATE_HOST:DOCDB_WEAVIATE_HTTP_PORT); on Weaviate Cloud, the "
                "cluster's URL. For a Weaviate cluster, the address of the load balancer in "
                "front of its nodes (HAProxy in docker-compose.cluster.yml, the Service in "
                "Kubernetes; docs/scaling.md).",
            ),
            Setting(
                "DOCDB_WEAVIATE_REPLICATION_FACTOR",
                "int",
                "1",
                "How many nodes hold each page, for a new collection (1 for one node; 3 for a "
                "cluster, so that any one node can be lost with no search or write failing).",
                minimum=1,
            ),
            Setting(
                "DOCDB_WEAVIATE_SHARDS",
                "int",
                "0",
                "Shards of a new collection (0: Weaviate's default, one per node). More shards "
                "spread the pages of a large library over more nodes.",
                minimum=0,
            ),
            Setting(
                "DOCDB_WEAVIATE_WRITE_CONSISTENCY",
                "str",
                "QUORUM",
                "How many replicas must confirm a write: ONE, QUORUM (a majority: with 3 replicas "
                "a write survives one lost node and is never only on one) or ALL.",
            ),
            Setting(
                "DOCDB_WEAVIATE_READ_CONSISTENCY",
                "str",
                "QUORUM",
                "How many replicas a search asks: ONE (fastest, may miss a page written "
                "moments ago on another node), QUORUM (with QUORUM writes, always sees every "
                "confirmed page) or ALL.",
            ),
            Setting(
                "DOCDB_WEAVIATE_CLOUD",
                "bool",
                "false",
                "Weaviate Cloud, which embeds with its hosted model: set DOCDB_WEAVIATE_URL to the "
                "cluster's URL and DOCDB_WEAVIATE_API_KEY to its key.",
            ),
            Setting(
                "DOCDB_WEAVIATE_API_KEY",
                "str",
                "docdb-local-key",
                "Weaviate's API key, also the bearer key Weaviate forwards to the embedder "
                "(self-hosted vectorization needs API-key auth). Change it on any machine others "
                "can reach.",
            ),
            Setting("DOCDB_WEAVIATE_COLLECTION", "str", "DocDBPage", "The collection of pages."),
            Setting(
                "DOCDB_WEAVIATE_MODEL",
                "str",
                "ModernVBERT/colmodernvbert",
                "The model the collection's vectorizer names.",
            ),
            Setting(
                "DOCDB_WEAVIATE_TIMEOUT_SECONDS",
                "int",
                "600",
                "How long DocDB waits for Weaviate, and for the embedder's vectors of a batch of "
                "pages.",
            ),
            Setting(
                "DOCDB_WEAVIATE_IMPORT_BATCH_SIZE",
                "int",
                "4",
                "Pages per import request to Weaviate.",
            ),
            Setting(
                "DOCDB_VECTORIZE",
                "str",
                "server",
                "Who embeds pages and queries: server (Weaviate's multi2multivec-weaviate module "
                "calls the embedder) or client (DocDB calls the embedder in large batches and "
                "imports the vectors; self-hosted only). docs/benchmarks.md compares them.",
            ),
            Setting(
                "DOCDB_WEAVIATE_MUVERA",
                "bool",
                "true",
                "The page index of new collections: MUVERA keeps one fixed-size encoding per page "
                "in HNSW and re-ranks the candidates with exact MaxSim; off, HNSW indexes every "
                "token vector (~900 per page). docs/benchmarks.md (Search at scale) chose this and "
                "the next three.",
            ),
            Setting(
                "DOCDB_WEAVIATE_HNSW_EF",
                "int",
                "256",
                "The HNSW ef of new collections (-1: Weaviate's dynamic ef).",
            ),
            Setting(
                "DOCDB_WEAVIATE_SEARCH_CANDIDATES",
                "int",
                "200",
                "Semantic search re-ranks at least this many candidate pages exactly with MUVERA, "
                "then keeps the best.",
            ),
            Setting(
                "DOCDB_WEAVIATE_FLAT_SEARCH_CUTOFF",
                "int",
                "2000",
                "A search whose libraries hold fewer pages than this scans them, else goes "
                "through HNSW.",
            ),
            Setting(
                "DOCDB_WEAVIATE_POOLED_VECTORS",
                "int",
                "32",
                "Two-stage semantic search (self-hosted, new collections): each page's "
                "multi-vector pooled into this many vectors (0: off, at most 256) finds the "
                "candidates.",
            ),
            Setting(
                "DOCDB_WEAVIATE_POOLED_EF",
                "int",
                "96",
                "Two-stage semantic search: the ef of the pooled vectors' HNSW.",
            ),
            Setting(
                "DOCDB_WEAVIATE_RERANK_CANDIDATES",
                "int",
                "40",
                "Two-stage semantic search: candidates re-ranked with exact MaxSim over the full "
                "vectors (at least 1, below DOCDB_WEAVIATE_FLAT_SEARCH_CUTOFF).",
            ),
            Setting(
                "DOCDB_WEAVIATE_MODULES_TIMEOUT",
                "str",
                "600s",
                "How long Weaviate waits for the embedder: a CPU embeds a full-size page in ~15 s, "
                "and Weaviate sends two per request.",
            ),
            Setting(
                "DOCDB_WEAVIATE_GOMEMLIMIT",
                "str",
                "4GiB",
                "The memory the local Weaviate tries to stay within.",
            ),
            Setting(
                "DOCDB_WEAVIATE_LOG_LEVEL",
                "str",
                "warning",
                "The local Weaviate's log level.",
            ),
        ),
    ),
    Group(
        "Embedder (the self-hosted Weaviate Embeddings endpoint serving ColModernVBERT)",
        (),
        (
            Setting("DOCDB_EMBEDDER_HOST", "str", "127.0.0.1", "The address it listens on."),
            Setting("DOCDB_EMBEDDER_PORT", "int", "8011", "The port it listens on.", minimum=1),
            Setting(
                "DOCDB_EMBEDDER_URL",
                "str",
                None,
                "Where Weaviate (the collection's base_url) and DocDB reach it (empty: "
                "http://127.0.0.1:DOCDB_EMBEDDER_PORT).",
            ),
            Setting(
                "DOCDB_EMBEDDER_URLS",
                "list",
                "",
                "Several embedders, comma-separated, for DocDB's own calls (client-side vectors, "
                "DOCDB_VECTORIZE=client, and queries): each batch of pages goes to the next, "
                "one batch per embedder at once, and to another when one does not answer "
                "(empty: DOCDB_EMBEDDER_URL alone). Weaviate's module knows one base_url: for "
                "server-side vectors put a load balancer in front (docs/scaling.md).",
            ),
            Setting(
                "DOCDB_EMBEDDER_MODEL",
                "str",
                "ModernVBERT/colmodernvbert-merged",
                "A hub id, a local directory, or `tiny` for the random test model (no download; "
                "results are noise). Not `ModernVBERT/colmodernvbert`: that is a LoRA adapter, "
                "not a model.",
            ),
            Setting(
                "DOCDB_EMBEDDER_MODEL_REVISION",
                "str",
                "main",
                "The hub revision (commit, tag or branch) downloaded when DOCDB_EMBEDDER_MODEL is "
                "a hub id. Pin a commit saved by transformers 5: older revisions use other weight "
                "names, and the embedder refuses to start on them.",
            ),
            Setting(
                "DOCDB_EMBEDDER_DEVICE",
                "str",
                "auto",
                "auto (CUDA when torch sees a GPU, else CPU), cpu, cuda or cuda:N.",
            ),
            Setting(
                "DOCDB_EMBEDDER_DTYPE",
                "str",
                "auto",
                "auto (bfloat16 on a GPU and on a CPU with native bfloat16, AVX512_BF16 or AMX; "
                "else float32), float32, bfloat16, float16, or int8 (CPU only: float32 with the "
                "linear layers quantized to int8 at start; docs/benchmarks.md has the trade-off).",
            ),
            Setting(
                "DOCDB_EMBEDDER_QUERY_DTYPE",
                "str",
                "auto",
                "auto (int8 on a CPU with int8 dot products, VNNI; else same), same (queries run "
                "through the model as pages do) or int8 (CPU only: queries through a copy of the "
                "text model with int8 linear layers, ~150 MB more; docs/benchmarks.md has its "
                "speed and fidelity).",
            ),
            Setting(
                "DOCDB_EMBEDDER_LONGEST_EDGE",
                "int",
                "2048",
                "Longest edge in pixels a page image is resized to before it is cut into the "
                "model's 512-px tiles: a multiple of 512. 2048 (the model's own: an A4 page is 13 "
                "tiles) is the quality default; 1024 (5 tiles) embeds ~3x faster and searches "
                "finer print less well. Changing it changes the vectors of pages embedded after.",
            ),
            Setting(
                "DOCDB_EMBEDDER_COMPILE",
                "str",
                "off",
                "off, default or reduce-overhead (CUDA graphs): the torch.compile mode of the "
                "model's forward pass on a GPU; ignored on a CPU. Off until a GPU run of "
                "bench/gpu_embedder.py shows it helps (docs/benchmarks.md).",
            ),
            Setting(
                "DOCDB_EMBEDDER_IMAGE_BACKEND",
                "str",
                "auto",
                "auto (torchvision on a GPU, which then preprocesses page images there, else PIL), "
                "pil or torchvision (the `gpu` extra).",
            ),
            Setting(
                "DOCDB_EMBEDDER_API_KEYS",
                "list",
                None,
                "Comma-separated bearer keys it accepts (empty: DOCDB_WEAVIATE_API_KEY, which "
                "Weaviate forwards, when that is set in its environment; else it asks for none).",
            ),
            Setting(
                "DOCDB_EMBEDDER_BATCH_SIZE",
                "int",
                "0",
                "Inputs per forward pass (0: 32 on a GPU, 8 on a CPU, where batching barely helps "
                "but bounds memory).",
                minimum=0,
            ),
            Setting(
                "DOCDB_EMBEDDER_BATCH_WAIT_MS",
                "int",
                "0",
                "How long the model thread waits for more inputs before running a partial batch.",
                minimum=0,
            ),
            Setting(
                "DOCDB_EMBEDDER_MAX_INPUTS",
                "int",
                "64",
                "Most inputs in one request.",
                minimum=1,
            ),
            Setting(
                "DOCDB_EMBEDDER_MAX_QUERY_TOKENS",
                "int",
                "8192",
                "Longest query embedded, in tokens (the model's own included; at most what the "
                "model reads, 8192 for ColModernVBERT): a longer one is refused with 413, and "
                "one of more than 8 bytes a token before it is tokenized. Also the tokens of one "
                "forward pass over queries.",
                minimum=16,
            ),
            Setting(
                "DOCDB_EMBEDDER_WORKERS",
                "int",
                "0",
                "Processes serving the model, each with its own copy (0: 1 on a CPU; on a GPU one "
                "per 16 GiB of its memory, up to 4, each holding 10-13 GiB at batch 32). They "
                "share the page embeddings they made through /dev/shm (docs/benchmarks.md).",
                minimum=0,
            ),
            Setting(
                "DOCDB_EMBEDDER_FRONT",
                "bool",
                "false",
                "true: one process answers HTTP and hands page bytes and queries through shared "
                "memory to DOCDB_EMBEDDER_WORKERS model processes, which decode (JPEGs on the GPU "
                "there), batch and run the model; one that dies is restarted. false: each worker "
                "process serves HTTP and the model (docs/benchmarks.md compares them).",
            ),
            Setting(
                "DOCDB_EMBEDDER_RECENT_PAGES",
                "int",
                "256",
                "Page embeddings kept by image content (~0.45 MB each), so that Weaviate's second "
                "request for a page (its pooled vector) does not run the model again; 0 keeps "
                "none.",
                minimum=0,
            ),
            Setting(
                "DOCDB_EMBEDDER_RECENT_QUERIES",
                "int",
                "512",
                "Query embeddings kept by text (~25 KB for a few words; queries of more than 256 "
                "tokens are not kept), so that the next page of results, the same search in "
                "another mode and each page's similarity maps do not run the model again; 0 keeps "
                "none.",
                minimum=0,
            ),
            Setting(
                "DOCDB_EMBEDDER_TEST_DELAY_MS",
                "int",
                "0",
                "Random test model only (refused with a real one): milliseconds each page image "
                "the model computes costs on top, slept in the model thread, so tests and "
                "benchmarks run at a real model's pace (~15000-20000 on a CPU). Queries and pages "
                "answered from the recent pages cost nothing extra; GET /health reports it as "
                "test_delay_ms.",
                minimum=0,
            ),
            Setting(
                "DOCDB_EMBEDDER_CACHE_DIR",
                "str",
                None,
                "Where models are downloaded or built (empty: models in DOCDB_DATA_DIR).",
            ),
            Setting(
                "DOCDB_EMBEDDER_SHARED_DIR",
                "str",
                None,
                "Set by the embedder for its worker processes: where they share page embeddings. "
                "Leave it empty.",
            ),
            Setting(
                "DOCDB_EMBEDDER_CONNECT_TIMEOUT_SECONDS",
                "int",
                "2",
                "How long DocDB waits to connect to it.",
            ),
            Setting(
                "DOCDB_EMBEDDER_TIMEOUT_SECONDS",
                "int",
                "10",
                "How long DocDB waits for its answer to a query or a similarity map (page batches "
                "wait DOCDB_WEAVIATE_TIMEOUT_SECONDS).",
            ),
            Setting(
                "DOCDB_EMBEDDER_CLIENT_BATCH_SIZE",
                "int",
                "32",
                "With DOCDB_VECTORIZE=client: page images per request from the worker to the "
                "embedder.",
            ),
        ),
    ),
    Group(
        "Tests",
        (),
        (
            Setting(
                "DOCDB_CORPUS_DIR",
                "str",
                "",
                "The folder of real and hostile PDFs for the `corpus` test group (empty: the group "
                "is skipped).",
            ),
            Setting(
                "DOCDB_CLUSTER_TESTS",
                "str",
                "",
                "1 runs tests/test_cluster.py (three Weaviate nodes behind HAProxy, ~5 minutes "
                "on 2 cores), opt-in until those tests are reliable on a loaded machine.",
            ),
            Setting(
                "DOCDB_SEAWEEDFS_BINARY",
                "str",
                "",
                "A SeaweedFS `weed` binary for the tests' S3 server (empty: "
                "scripts/seaweedfs-binary.sh gets the pinned version into DOCDB_CACHE_DIR).",
            ),
            Setting(
                "DOCDB_CHROMIUM",
                "str",
                "/usr/bin/chromium",
                "The Chromium the browser tests drive with Playwright.",
            ),
        ),
    ),
)

SETTINGS: dict[str, Setting] = {s.name: s for group in GROUPS for s in group.settings}


class SettingError(ValueError):
    """An environment variable holds a value DocDB cannot use."""


def _value(name: str, kind: Kind, environ: Mapping[str, str]) -> str:
    """The text of setting `name` in `environ`, else its default ("" when it is derived)."""
    setting = SETTINGS[name]
    if setting.kind != kind:
        raise TypeError(f"{name} is read as {setting.kind}, not {kind}")
    return environ.get(name, "").strip() or setting.default or ""


def env_str(name: str, environ: Mapping[str, str] = os.environ) -> str:
    return _value(name, "str", environ)


def env_int(name: str, environ: Mapping[str, str] = os.environ) -> int:
    value = _value(name, "int", environ)
    try:
        number = int(value)
    except ValueError:
        raise SettingError(f"{name} must be a whole number, not {value!r}.") from None
    minimum = SETTINGS[name].minimum
    if minimum is not None and number < minimum:
        raise SettingError(f"{name} must be at least {minimum}, not {number}.")
    return number


def env_bool(name: str, environ: Mapping[str, str] = os.environ) -> bool:
    value = _value(name, "bool", environ).lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise SettingError(f"{name} must be true or false, not {value!r}.")


def env_list(name: str, environ: Mapping[str, str] = os.environ) -> list[str]:
    return [item.strip() for item in _value(name, "list", environ).split(",") if item.strip()]


def data_dir(environ: Mapping[str, str] = os.environ) -> Path:
    return (REPO_DIR / env_str("DOCDB_DATA_DIR", environ)).resolve()


def env_example() -> str:
    """The text of .env.example: every setting under its group, its meaning above it."""
    lines = [
        "# Every setting DocDB reads, with its default. Copy to .env and change what you need.",
        "# Made from docdb/config.py by `python -m docdb.config env-example > .env.example`.",
    ]
    for group in GROUPS:
        lines += ["", f"# --- {group.title} ---"]
        if group.notes:
            lines += [*(f"# {note}" for note in group.notes), ""]
        for setting in group.settings:
            lines += textwrap.wrap(
                setting.meaning,
                width=100,
                initial_indent="# ",
                subsequent_indent="# ",
                break_long_words=False,
                break_on_hyphens=False,
            )
            lines.append(f"{setting.name}={setting.default or ''}")
    return "\n".join(lines) + "\n"


def shell_defaults(names: Sequence[str], environ: Mapping[str, str] = os.environ) -> str:
    """`export NAME=default` lines for a shell to eval, for the settings `environ` leaves empty."""
    exports = []
    for name in names:
        if name not in SETTINGS:
            raise SettingError(f"{name} is not a DocDB setting.")
        default = SETTINGS[name].default
        if default is None:
            raise SettingError(f"{name} is derived from other settings: it has no default.")
        if not environ.get(name, "").strip():
            exports.append(f"export {name}={shlex.quote(default)}\n")
    return "".join(exports)


# Tesseract's language codes ("eng", "chi_sim"); also what keeps them plain arguments.
TESSERACT_LANGUAGE = re.compile(r"[a-z]{3}(_[a-z]+)?")


def tesseract_package(language: str) -> str:
    """The Debian package of a Tesseract language pack: chi_sim → tesseract-ocr-chi-sim."""
    return "tesseract-ocr-" + language.replace("_", "-")


def ocr_packages(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The Debian packages OCR needs as configured: Tesseract and its language packs."""
    if env_str("DOCDB_OCR", environ) == "off":
        return []
    return ["tesseract-ocr", *map(tesseract_package, env_list("DOCDB_OCR_LANGUAGES", environ))]


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m docdb.config", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("env-example", help="print .env.example")
    defaults = commands.add_parser("defaults", help="print `export NAME=default` for unset NAMEs")
    defaults.add_argument("names", nargs="+", metavar="NAME")
    commands.add_parser("ocr-packages", help="print the Debian packages OCR needs as configured")
    args = parser.parse_args(argv)
    try:
        if args.command == "env-example":
            text = env_example()
        elif args.command == "ocr-packages":
            text = " ".join(ocr_packages()) + "\n"
        else:
            text = shell_defaults(args.names)
    except SettingError as exc:
        parser.error(str(exc))
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
