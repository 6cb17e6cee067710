#!/usr/bin/env bash
# Installs the offline checkers .ci/security.sh and .ci/deploy.sh use, at
# pinned versions, into $(go env GOPATH)/bin. Tools already present at the
# right version are kept. Usage: .ci/tools.sh [fast|trivy|all|vulndb|vulndb-path]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="$(go env GOPATH)/bin"
export PATH="$BIN:$PATH"

GOSEC=v2.30.0
GOVULNCHECK=v1.9.0
GOLANGCI=v2.15.0
ACTIONLINT=v1.7.12
KUSTOMIZE=v5.8.1
TRIVY=v0.74.0
# The vulnerability database is built from this snapshot of golang.org/x/vulndb.
VULNDB=v0.0.0-20261105234957-e22db6528018

# have NAME VERSION-SUBSTRING: the tool is installed and reports that version.
have() { [ -x "$BIN/$1" ] && [ -f "$BIN/.$1.version" ] && [ "$(cat "$BIN/.$1.version")" = "$2" ]; }
inst() { # inst NAME VERSION MODULE [env...]
  local name=$1 v=$2 mod=$3; shift 3
  if have "$name" "$v"; then return 0; fi
  echo "installing $name $v"
  env "$@" go install "$mod@$v"
  echo "$v" > "$BIN/.$name.version"
}

fast() {
  inst actionlint "$ACTIONLINT" github.com/rhysd/actionlint/cmd/actionlint
  inst gosec "$GOSEC" github.com/securego/gosec/v2/cmd/gosec
  inst govulncheck "$GOVULNCHECK" golang.org/x/vuln/cmd/govulncheck
  inst kustomize "$KUSTOMIZE" sigs.k8s.io/kustomize/kustomize/v5
  inst golangci-lint "$GOLANGCI" github.com/golangci/golangci-lint/v2/cmd/golangci-lint
  vulndb
}

# vulndb builds govulncheck's database from the vulndb module's OSV files
# into $BIN/../vulndb/$VULNDB (about 30 s).
vulndb() {
  local out; out="$(go env GOPATH)/vulndb/$VULNDB"
  if [ -f "$out/index/db.json" ] || [ -f "$out/index/db.json.gz" ]; then return 0; fi
  echo "building the vulnerability database from golang.org/x/vulndb@$VULNDB"
  rm -rf "$out.tmp"
  (cd "$(mktemp -d)" && go mod download golang.org/x/vulndb@"$VULNDB" \
    && go run golang.org/x/vulndb/cmd/indexdb@"$VULNDB" \
         -vulns "$(go env GOMODCACHE)/golang.org/x/vulndb@$VULNDB/data/osv" -out "$out.tmp")
  rm -rf "$out"; mv "$out.tmp" "$out"
}

trivy() { inst trivy "$TRIVY" github.com/aquasecurity/trivy/cmd/trivy GOEXPERIMENT=jsonv2; }

case "${1:-all}" in
  fast) fast ;;
  trivy) trivy ;;
  vulndb) vulndb ;;
  vulndb-path) echo "$(go env GOPATH)/vulndb/$VULNDB" ;;
  all) trivy & t=$!; fast; wait "$t" ;;
  *) echo "usage: $0 [fast|trivy|all|vulndb|vulndb-path]" >&2; exit 2 ;;
esac
