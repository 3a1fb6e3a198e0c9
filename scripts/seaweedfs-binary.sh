#!/usr/bin/env bash
# Prints the path of a SeaweedFS `weed` binary of the pinned version, getting one if needed:
#   1. the cache ($DOCDB_CACHE_DIR, outside the repository), from an earlier run;
#   2. the official release archive from GitHub;
#   3. a build from source through the Go module proxy (needs Go >= 1.26; ~10 min on 2 cores).
# Progress goes to stderr; only the path goes to stdout. Only the tests use it: SeaweedFS is the
# S3-compatible server they store documents in (DOCDB_STORAGE=s3).
set -euo pipefail

# The release and the module version of the same commit: `go install` refuses this module because
# its go.mod has a replace directive, so the source is downloaded and built with `go build`.
release="4.53"
module="github.com/seaweedfs/seaweedfs@v0.0.0-20261109003541-7506e5f91cd6"
cache="${DOCDB_CACHE_DIR:-$HOME/.cache/docdb}/seaweedfs/${release}"
binary="$cache/weed"

if [[ -n "${DOCDB_SEAWEEDFS_BINARY:-}" ]]; then
    [[ -x "$DOCDB_SEAWEEDFS_BINARY" ]] || { echo "DOCDB_SEAWEEDFS_BINARY=$DOCDB_SEAWEEDFS_BINARY is not an executable file" >&2; exit 1; }
    echo "$DOCDB_SEAWEEDFS_BINARY"; exit 0
fi
if [[ -x "$binary" ]]; then echo "$binary"; exit 0; fi
mkdir -p "$cache"
failures=()

case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) asset="linux_amd64.tar.gz" ;;
    Linux-aarch64) asset="linux_arm64.tar.gz" ;;
    Darwin-x86_64) asset="darwin_amd64.tar.gz" ;;
    Darwin-arm64) asset="darwin_arm64.tar.gz" ;;
    *) asset="" ;;
esac
if [[ -n "$asset" ]] && command -v curl >/dev/null; then
    url="https://github.com/seaweedfs/seaweedfs/releases/download/${release}/${asset}"
    echo "Downloading SeaweedFS ${release} from $url ..." >&2
    tmp="$(mktemp -d)"
    if curl -fsSL --connect-timeout 15 --max-time 600 -o "$tmp/$asset" "$url"; then
        mkdir -p "$tmp/x" && tar -xzf "$tmp/$asset" -C "$tmp/x"
        found="$(find "$tmp/x" -type f -name weed -perm -u+x | head -n 1)"
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
    echo "Building SeaweedFS ${release} from ${module} (first time only; ~10 min on 2 cores) ..." >&2
    tmp="$(mktemp -d)"
    # The module cache is read-only, so the source is copied to a folder go can write in.
    if dir="$(go mod download -json "$module" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')" && [[ -n "$dir" ]] \
        && cp -r "$dir" "$tmp/src" && chmod -R u+w "$tmp/src" \
        && (cd "$tmp/src" && CGO_ENABLED=0 GOFLAGS=-trimpath go build -o "$binary.tmp" ./weed >&2); then
        mv "$binary.tmp" "$binary"
        rm -rf "$tmp"
        echo "$binary"; exit 0
    fi
    rm -rf "$tmp" "$binary.tmp"
    failures+=("go build of ${module} failed (needs Go >= 1.26 and the Go module proxy)")
else
    failures+=("Go is not installed, so building from source was not possible")
fi

{
    echo "Could not get the SeaweedFS binary ${release}:"
    for failure in "${failures[@]}"; do echo "  - $failure"; done
    echo "Put a weed binary at $binary, or point DOCDB_SEAWEEDFS_BINARY at one."
} >&2
exit 1
