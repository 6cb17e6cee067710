#!/usr/bin/env bash
# Builds the server image and checks it runs hardened: read-only root, every
# capability dropped, no-new-privileges, UID 65532, the signing key mounted
# as a read-only secret file. Through the mapped port it creates and
# searches a memory with a token minted from that same key, then checks the
# process's user and capabilities, that the image has no shell and that
# nothing outside /data is writable. Skips (exit 0, saying so) without
# podman unless CI=true, where podman and runc are installed first.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v podman >/dev/null 2>&1 || ! command -v runc >/dev/null 2>&1; then
  (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc >/dev/null 2>&1 \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc; } >/dev/null 2>&1) || true
fi
if ! command -v podman >/dev/null 2>&1 || ! command -v runc >/dev/null 2>&1; then
  if [ "${CI:-}" = true ]; then echo "podman and runc are needed and could not be installed" >&2; exit 1; fi
  echo "SKIP container checks: podman/runc not installed"; exit 0
fi

image=codingbrain:ci
name=codingbrain-ci-$$
work=$(mktemp -d)
cleanup() {
  podman --runtime runc rm -f -t 0 "$name" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; podman logs "$name" 2>&1 | tail -20 >&2 || true; exit 1; }

VERSION=ci-$(git rev-parse --short HEAD 2>/dev/null || echo dev) deploy/build-image.sh -t "$image" --context "$work/ctx" >"$work/build.log" 2>&1 \
  || { tail -30 "$work/build.log"; fail "image build"; }
size=$(podman image inspect "$image" --format '{{.Size}}')
echo "image $image: $((size / 1024 / 1024)) MiB ($size bytes)"
cb="$work/ctx/linux/$(go env GOARCH)/codingbrain"

# The image's metadata: non-root user, health check, labels, volume.
cfg=$(podman image inspect "$image" --format '{{.Config.User}}|{{json .Config.Healthcheck}}|{{index .Labels "org.opencontainers.image.revision"}}|{{json .Config.Volumes}}')
case $cfg in 65532:65532\|*healthcheck*\|?*\|*'"/data"'*) ;; *) fail "image config: $cfg" ;; esac

# The signing key is a secret file owned by the container's user; /data is
# the only writable place.
mkdir -p "$work/secret" "$work/data"
head -c 32 /dev/urandom >"$work/secret/signing.key"
chown 65532:65532 "$work/data" "$work/secret/signing.key"
chmod 0700 "$work/data"; chmod 0400 "$work/secret/signing.key"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 18765)
podman --runtime runc run -d --name "$name" \
  --ulimit nofile=20000:20000 --ulimit nproc=4096:4096 \
  --read-only --cap-drop=ALL --security-opt no-new-privileges --user 65532:65532 \
  --memory 512m --pids-limit 256 \
  -p "127.0.0.1:$port:8765" \
  -v "$work/data:/data" -v "$work/secret/signing.key:/data/signing.key:ro" \
  "$image" >/dev/null 2>"$work/run.err" || { cat "$work/run.err"; fail "podman run"; }

healthy=
for _ in $(seq 1 120); do
  if podman healthcheck run "$name" >/dev/null 2>&1; then healthy=1; break; fi
  [ "$(podman inspect "$name" --format '{{.State.Running}}')" = true ] || fail "container exited"
  sleep 0.5
done
[ -n "$healthy" ] || fail "not healthy after 60s"
echo "healthy: the image's HEALTHCHECK (codingbrain healthcheck) passes"

base=http://127.0.0.1:$port
token=$("$cb" token issue --data-dir "$work/secret" --public-url http://localhost:8765 --sub ci --org acme --ttl 10m)
created=$(curl -fsS -X POST -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  -d '{"content":"Release images are built FROM scratch and run with a read-only root.","category":"convention"}' \
  "$base/api/v1/memories") || fail "create a memory"
id=$(printf '%s' "$created" | sed -n 's/^{"id":"\([^"]*\)".*/\1/p')
[ -n "$id" ] || fail "create answered $created"
found=$(curl -fsS -X POST -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  -d '{"query":"scratch read-only root"}' "$base/api/v1/search") || fail "search"
case $found in *"\"$id\""*) ;; *) fail "search did not find $id: $found" ;; esac
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' -d '{"query":"x"}' "$base/api/v1/search")
[ "$code" = 401 ] || fail "search without a token answered $code, want 401"
echo "memory $id created and found through port $port; no token: 401"

# The process: UID 65532, no capabilities at all, no-new-privileges.
top=$(podman top "$name" huser capeff capbnd)
echo "$top"
echo "$top" | awk 'NR==2 && $1=="65532" && $2=="none" && $3=="none" {ok=1} END {exit !ok}' || fail "process user/capabilities: $top"
pid=$(podman inspect "$name" --format '{{.State.Pid}}')
status=$(cat "/proc/$pid/status")
for want in 'Uid:	65532	65532	65532	65532' 'CapEff:	0000000000000000' 'CapPrm:	0000000000000000' 'NoNewPrivs:	1'; do
  grep -qF "$want" <<<"$status" || fail "/proc/$pid/status lacks '$want'"
done
[ "$(podman inspect "$name" --format '{{.HostConfig.ReadonlyRootfs}}')" = true ] || fail "root file system is writable"

# Writable state only under /data; no shell to exec.
if out=$(podman exec "$name" /usr/local/bin/codingbrain keys generate --dir / 2>&1); then fail "wrote a key into /: $out"; fi
grep -q 'read-only file system' <<<"$out" || fail "writing into / failed otherwise: $out"
if out=$(podman exec "$name" /usr/local/bin/codingbrain keys generate --dir /etc/ssl 2>&1); then fail "wrote a key into /etc/ssl: $out"; fi
podman exec "$name" /usr/local/bin/codingbrain keys generate --dir /data/ci-keys >/dev/null || fail "cannot write under /data"
if podman exec "$name" /bin/sh -c true >/dev/null 2>&1; then fail "the image has a shell"; fi
echo "writes outside /data fail (read-only file system); /data is writable; no /bin/sh"

# SIGTERM stops it cleanly within the grace period.
podman stop -t 20 "$name" >/dev/null 2>&1
rc=$(podman inspect "$name" --format '{{.State.ExitCode}}')
[ "$rc" = 0 ] || fail "exit code after SIGTERM: $rc"
echo "container checks passed"
