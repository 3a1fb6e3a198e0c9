#!/usr/bin/env bash
# Prints the path of a weaviate-server binary of the pinned version, getting one if needed:
#   1. the cache ($DOCDB_CACHE_DIR, outside the repository), from an earlier run;
#   2. the official release archive (what weaviate-client's embedded mode downloads);
#   3. a build from source with `go install` through the Go module proxy (needs Go >= 1.26).
# Progress goes to stderr; only the path goes to stdout.
set -euo pipefail

# The pinned version is docdb/config.py's default; any Python 3.11 runs that module.
defaults="$(cd "$(dirname "$0")/.." && python3 -m docdb.config defaults DOCDB_WEAVIATE_VERSION)"
eval "$defaults"
version="$DOCDB_WEAVIATE_VERSION"
cache="${DOCDB_CACHE_DIR:-$HOME/.cache/docdb}/weaviate/v${version}"
binary="$cache/weaviate-server"

if [[ -n "${DOCDB_WEAVIATE_BINARY:-}" ]]; then
    [[ -x "$DOCDB_WEAVIATE_BINARY" ]] || { echo "DOCDB_WEAVIATE_BINARY=$DOCDB_WEAVIATE_BINARY is not an executable file" >&2; exit 1; }
    echo "$DOCDB_WEAVIATE_BINARY"; exit 0
fi
if [[ -x "$binary" ]]; then echo "$binary"; exit 0; fi
mkdir -p "$cache"
failures=()

case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) asset="weaviate-v${version}-Linux-amd64.tar.gz" ;;
    Linux-aarch64) asset="weaviate-v${version}-Linux-arm64.tar.gz" ;;
    Darwin-*) asset="weaviate-v${version}-Darwin-all.zip" ;;
    *) asset="" ;;
esac
if [[ -n "$asset" ]] && command -v curl >/dev/null; then
    url="https://github.com/weaviate/weaviate/releases/download/v${version}/${asset}"
    echo "Downloading Weaviate v${version} from $url ..." >&2
    tmp="$(mktemp -d)"
    if curl -fsSL --connect-timeout 15 --max-time 600 -o "$tmp/$asset" "$url"; then
        if [[ "$asset" == *.zip ]]; then unzip -q "$tmp/$asset" -d "$tmp/x"; else mkdir -p "$tmp/x" && tar -xzf "$tmp/$asset" -C "$tmp/x"; fi
        found="$(find "$tmp/x" -type f -name weaviate -perm -u+x | head -n 1)"
        if [[ -n "$found" ]]; then mv "$found" "$binary.tmp" && mv "$binary.tmp" "$binary"; fi
    else
        failures+=("release download from $url failed (no network access to GitHub?)")
    fi
    rm -rf "$tmp"
    if [[ -x "$binary" ]]; then echo "$binary"; exit 0; fi
else
    failures+=("no release archive for $(uname -s)-$(uname -m), or curl is missing")
fi

if command -v go >/dev/null; then
    echo "Building weaviate-server v${version} with go install (first time only; ~10-30 min on 2 cores) ..." >&2
    if GOBIN="$cache" CGO_ENABLED=0 GOFLAGS=-trimpath go install "github.com/weaviate/weaviate/cmd/weaviate-server@v${version}" >&2; then
        echo "$binary"; exit 0
    fi
    failures+=("go install github.com/weaviate/weaviate/cmd/weaviate-server@v${version} failed (needs Go >= 1.26 and the Go module proxy)")
else
    failures+=("Go is not installed, so building from source was not possible")
fi

{
    echo "Could not get the Weaviate server v${version}:"
    for failure in "${failures[@]}"; do echo "  - $failure"; done
    echo "Put a weaviate binary at $binary, or point DOCDB_WEAVIATE_BINARY at one, or use docker compose."
} >&2
exit 1
