"""A bounded load test on loopback: N concurrent searchers for S seconds against the API while a
long document is ingesting. Prints p50/p95/max search latency, errors, and pages ingested meanwhile.

Start DocDB (`DOCDB_EMBEDDER_MODEL=tiny make run`), create a token
(`.venv/bin/python manage.py create_api_token admin`), then:

    .venv/bin/python bench/load.py --token docdb_... --pdf ../shared/corpus/real/freeculture.pdf
"""

import argparse
import statistics
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import requests

QUERIES = [
    "copyright law and culture",
    "who owns the ideas",
    "piracy",
    "the history of film",
    "creative commons licenses",
]
MODES = ["vector", "hybrid", "keyword"]


def _searcher(
    base: str, headers: dict[str, str], deadline: float, latencies: list[float], errors: list[str]
) -> None:
    session = requests.Session()
    turn = 0
    while time.monotonic() < deadline:
        params = {"q": QUERIES[turn % len(QUERIES)], "mode": MODES[turn % len(MODES)], "limit": 10}
        turn += 1
        started = time.monotonic()
        try:
            response = session.get(f"{base}/api/search", params=params, headers=headers, timeout=30)
            if response.status_code != 200:
                errors.append(f"{response.status_code} {response.text[:200]}")
            else:
                latencies.append(time.monotonic() - started)
        except requests.RequestException as exc:
            errors.append(str(exc))


def _pages_done(base: str, headers: dict[str, str], document_id: str) -> int:
    response = requests.get(f"{base}/api/documents/{document_id}", headers=headers, timeout=10)
    return int(response.json()["pages_done"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--token", required=True)
    parser.add_argument("--pdf", type=Path, help="a long PDF to ingest during the test")
    parser.add_argument("--searchers", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=60)
    args = parser.parse_args()
    host = urlparse(args.url).hostname or ""
    if not (host == "localhost" or host.startswith("127.") or host == "::1"):
        parser.error("the load test only targets loopback addresses")
    headers = {"Authorization": f"Bearer {args.token}"}
    document_id = ""
    if args.pdf:
        with args.pdf.open("rb") as handle:
            response = requests.post(
                f"{args.url}/api/documents", headers=headers, files={"file": handle}, timeout=120
            )
        body = response.json()
        if not body.get("documents"):
            parser.error(f"upload refused: {body}")
        document_id = body["documents"][0]["id"]
    pages_before = _pages_done(args.url, headers, document_id) if document_id else 0
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.monotonic() + args.seconds
    threads = [
        threading.Thread(target=_searcher, args=(args.url, headers, deadline, latencies, errors))
        for _ in range(args.searchers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pages_after = _pages_done(args.url, headers, document_id) if document_id else 0
    ordered = sorted(latencies)
    print(
        f"searchers {args.searchers}, {args.seconds} s, {len(ordered)} searches, "
        f"{len(errors)} errors"
    )
    if ordered:
        p95 = ordered[int(0.95 * (len(ordered) - 1))]
        print(
            f"latency p50 {statistics.median(ordered) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
            f"max {ordered[-1] * 1000:.0f} ms, {len(ordered) / args.seconds:.1f} searches/s"
        )
    if document_id:
        print(f"pages ingested meanwhile: {pages_after - pages_before}")
    for error in errors[:5]:
        print("error:", error)


if __name__ == "__main__":
    main()
