#!/usr/bin/env bash
# DR drill: seed a store, back it up, verify the backup, destroy the store,
# restore it, verify the restored store, and print the measured times and
# the recovery time (RTO: from "the store is gone" to "restored, checked,
# embeddings current").
#
#   scripts/dr-drill.sh [MEMORIES]            SQLite (default 100000)
#   DATABASE_URL=postgres://… scripts/dr-drill.sh [MEMORIES]
#                                             also restore into PostgreSQL
#                                             (an empty database; its tables
#                                             are replaced with --force)
#
# Seeding uses the benchmarks' generator (TestDrillSeed in
# internal/store/sqlite). Everything happens in a temporary directory,
# removed at the end unless KEEP=1.
set -euo pipefail

N=${1:-100000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/codingbrain-drill.XXXXXX")
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$WORK"' EXIT
BIN=$WORK/codingbrain
DATA=$WORK/data
BACKUPS=$WORK/backups

now() { date +%s.%N; }
# cpu FILE CMD…: runs CMD, adding its CPU seconds (user + system) to FILE
# when /usr/bin/time is there. On a shared machine wall-clock times depend
# on the load; CPU seconds do not.
cpu() {
	local f=$1
	shift
	if [ -x /usr/bin/time ]; then
		/usr/bin/time -o "$f" -f '%U %S' "$@"
	else
		"$@"
	fi
}
cpusec() { [ -s "$1" ] && awk '{ printf "%.1f", $1 + $2 }' "$1" || echo "?"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
step() { printf '\n== %s\n' "$*"; }

step "build"
(cd "$ROOT" && go build -o "$BIN" ./cmd/codingbrain)

step "seed $N memories (SQLite)"
t=$(now)
mkdir -p "$DATA"
(cd "$ROOT" && CODINGBRAIN_DRILL_DB="$DATA/codingbrain.db" CODINGBRAIN_DRILL_MEMORIES="$N" \
	go test ./internal/store/sqlite -run '^TestDrillSeed$' -count=1 >/dev/null)
echo "seeded in $(since "$t")s; database $(du -h "$DATA/codingbrain.db" | cut -f1)"

step "backup create"
t=$(now)
cpu "$WORK/create.cpu" "$BIN" backup create --data-dir "$DATA" --to "$BACKUPS"
CREATE=$(since "$t")

step "backup verify (restore into a scratch SQLite file, integrity, canaries)"
t=$(now)
cpu "$WORK/verify.cpu" "$BIN" backup verify --from "$BACKUPS" --max-age 1h
VERIFY=$(since "$t")

step "disaster: the store is destroyed"
rm -rf "$DATA"
echo "removed $DATA"
LOST=$(now)

step "backup restore (SQLite), with embeddings"
t=$(now)
cpu "$WORK/restore.cpu" "$BIN" backup restore --from "$BACKUPS" --data-dir "$DATA"
RESTORE=$(since "$t")

step "post-restore checks"
"$BIN" migrate status --data-dir "$DATA" | tail -1
"$BIN" audit verify --data-dir "$DATA" | tail -1
RTO=$(since "$LOST")

if [ -n "${DATABASE_URL:-}" ]; then
	step "backup restore into PostgreSQL"
	t=$(now)
	"$BIN" backup restore --from "$BACKUPS" --database-url "$DATABASE_URL" --force --skip-embeddings
	PGRESTORE=$(since "$t")
	step "backup verify into a scratch PostgreSQL database"
	t=$(now)
	"$BIN" backup verify --from "$BACKUPS" --max-age 1h --scratch-database-url "$DATABASE_URL"
	PGVERIFY=$(since "$t")
fi

step "figures ($N memories, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg))"
ls -l "$BACKUPS" | tail -n +2
echo "                          wall    CPU (user+system)"
printf 'backup create            %6ss  %6ss\n' "$CREATE" "$(cpusec "$WORK/create.cpu")"
printf 'backup verify            %6ss  %6ss\n' "$VERIFY" "$(cpusec "$WORK/verify.cpu")"
printf 'create + verify          %6ss          (target 30s)\n' "$(awk -v a="$CREATE" -v b="$VERIFY" 'BEGIN { printf "%.1f", a + b }')"
printf 'backup restore (SQLite)  %6ss  %6ss  (load, graph, checks, embeddings)\n' "$RESTORE" "$(cpusec "$WORK/restore.cpu")"
printf 'RTO                      %6ss  (store lost -> restored and checked)\n' "$RTO"
if [ -n "${DATABASE_URL:-}" ]; then
	printf 'restore into PostgreSQL  %6ss  (without embeddings)\n' "$PGRESTORE"
	printf 'verify in PostgreSQL     %6ss\n' "$PGVERIFY"
fi
