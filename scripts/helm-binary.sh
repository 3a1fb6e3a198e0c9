#!/usr/bin/env bash
# Prints the path of a helm binary of the pinned version, getting one if needed (the tests lint and
# render deploy/helm/docdb with it):
#   1. the cache ($DOCDB_CACHE_DIR, outside the repository), from an earlier run;
#   2. the official release archive from get.helm.sh;
#   3. a build from source with `go install` through the Go module proxy (~5 min on 2 cores).
# Progress goes to stderr; only the path goes to stdout.
set -euo pipefail

version="3.22.0"
cache="${DOCDB_CACHE_DIR:-$HOME/.cache/docdb}/helm/v${version}"
binary="$cache/helm"

if [[ -x "$binary" ]]; then echo "$binary"; exit 0; fi
mkdir -p "$cache"
failures=()

case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) platform="linux-amd64" ;;
    Linux-aarch64) platform="linux-arm64" ;;
    Darwin-x86_64) platform="darwin-amd64" ;;
    Darwin-arm64) platform="darwin-arm64" ;;
    *) platform="" ;;
esac
if [[ -n "$platform" ]] && command -v curl >/dev/null; then
    url="https://get.helm.sh/helm-v${version}-${platform}.tar.gz"
    echo "Downloading Helm v${version} from $url ..." >&2
    tmp="$(mktemp -d)"
    if curl -fsSL --connect-timeout 15 --max-time 300 -o "$tmp/helm.tar.gz" "$url"; then
        tar -xzf "$tmp/helm.tar.gz" -C "$tmp"
        if [[ -x "$tmp/$platform/helm" ]]; then mv "$tmp/$platform/helm" "$binary.tmp" && mv "$binary.tmp" "$binary"; fi
    else
        failures+=("release download from $url failed (no network access to get.helm.sh?)")
    fi
    rm -rf "$tmp"
    if [[ -x "$binary" ]]; then echo "$binary"; exit 0; fi
else
    failures+=("no release archive for $(uname -s)-$(uname -m), or curl is missing")
fi

if command -v go >/dev/null; then
    echo "Building helm v${version} with go install (first time only; ~5 min on 2 cores) ..." >&2
    if GOBIN="$cache" CGO_ENABLED=0 GOFLAGS=-trimpath go install "helm.sh/helm/v3/cmd/helm@v${version}" >&2; then
        echo "$binary"; exit 0
    fi
    failures+=("go install helm.sh/helm/v3/cmd/helm@v${version} failed (needs Go and the Go module proxy)")
else
    failures+=("Go is not installed, so building from source was not possible")
fi

{
    echo "Could not get Helm v${version}:"
    for failure in "${failures[@]}"; do echo "  - $failure"; done
    echo "Put a helm v${version} binary at $binary."
} >&2
exit 1
