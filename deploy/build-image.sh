#!/usr/bin/env bash
# Builds the server image FROM scratch (deploy/Dockerfile) with podman or
# docker: compiles the static binary for each architecture, stages the
# build context, then builds. Nothing is pulled.
#
#   deploy/build-image.sh [-t IMAGE] [--arch amd64,arm64] [--context DIR] [--stage-only DIR]
#
# --context keeps the staged context (and so the binary) in DIR; --stage-only
# writes it to DIR and stops (the release workflow hands it to docker buildx
# for a multi-architecture push).
# Environment: VERSION (default git describe), REVISION (default HEAD),
# CONTAINER_ENGINE (default podman, else docker).
set -euo pipefail
cd "$(dirname "$0")/.."

image=codingbrain:dev
arches=$(go env GOARCH)
stage_only=
keep=
while [ $# -gt 0 ]; do
  case $1 in
    -t) image=$2; shift 2 ;;
    --arch) arches=$2; shift 2 ;;
    --context) keep=$2; shift 2 ;;
    --stage-only) stage_only=$2; shift 2 ;;
    *) echo "usage: $0 [-t IMAGE] [--arch amd64,arm64] [--context DIR] [--stage-only DIR]" >&2; exit 2 ;;
  esac
done

VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
REVISION=${REVISION:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
CREATED=${CREATED:-$(date -u +%Y-%m-%dT%H:%M:%SZ)}
CA=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
if [ ! -s "$CA" ]; then
  echo "no CA bundle at $CA (install ca-certificates or set CA_BUNDLE)" >&2; exit 1
fi

ctx=${stage_only:-${keep:-$(mktemp -d)}}
[ -n "$stage_only$keep" ] || trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/data"
chmod 0700 "$ctx/data"
cp deploy/Dockerfile "$ctx/Dockerfile"
install -m 0444 "$CA" "$ctx/ca-certificates.crt"
printf 'root:x:0:0:root:/:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/data:/sbin/nologin\n' > "$ctx/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$ctx/group"
chmod 0444 "$ctx/passwd" "$ctx/group"

ldflags="-s -w -X main.version=$VERSION -X main.commit=$REVISION -X main.date=$CREATED"
for arch in ${arches//,/ }; do
  mkdir -p "$ctx/linux/$arch"
  CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath -tags timetzdata \
    -ldflags "$ldflags" -o "$ctx/linux/$arch/codingbrain" ./cmd/codingbrain
  chmod 0555 "$ctx/linux/$arch/codingbrain"
done
if [ -n "$stage_only" ]; then
  echo "staged the image context in $ctx"; exit 0
fi

engine=${CONTAINER_ENGINE:-}
if [ -z "$engine" ]; then
  if command -v podman >/dev/null 2>&1; then engine=podman
  elif command -v docker >/dev/null 2>&1; then engine=docker
  else echo "neither podman nor docker is installed" >&2; exit 1; fi
fi
args=(build --build-arg "VERSION=$VERSION" --build-arg "REVISION=$REVISION" --build-arg "CREATED=$CREATED" -t "$image")
# HEALTHCHECK is a Docker image-format field: podman drops it from OCI images.
[ "$engine" = podman ] && args+=(--format docker)
arch=${arches%%,*}
args+=(--build-arg "TARGETARCH=$arch")
"$engine" "${args[@]}" "$ctx"
echo "built $image ($VERSION, $arch) with $engine"
