#!/usr/bin/env bash
# Writes the compose stack's secret files with fresh random passwords into
# deploy/compose/secrets/ (kept out of git). Existing files are kept: pass
# --force to replace them (then recreate the PostgreSQL volume too: its
# password was set when it was first initialised).
set -euo pipefail
dir="$(cd "$(dirname "$0")" && pwd)/secrets"
force=${1:-}
mkdir -p "$dir"
chmod 0700 "$dir"
if [ -e "$dir/postgres_password" ] && [ "$force" != --force ]; then
  echo "secrets already exist in $dir (use --force to replace them)"; exit 0
fi
rand() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
umask 022
pg=$(rand); vk=$(rand); gf=$(rand)
printf '%s' "$pg" >"$dir/postgres_password"
printf 'requirepass %s\n' "$vk" >"$dir/valkey.conf"
printf '%s' "$gf" >"$dir/grafana_admin_password"
cat >"$dir/codingbrain_config.json" <<JSON
{
  "database_url": "postgres://codingbrain:$pg@postgres:5432/codingbrain?sslmode=disable",
  "valkey_url": "redis://:$vk@valkey:6379/0"
}
JSON
# Compose (outside swarm) bind-mounts these files with their host owner and
# mode; each container runs as its own non-root user, so they must be
# readable by it. Keep the directory itself readable only by the operators.
chmod 0444 "$dir"/postgres_password "$dir"/valkey.conf "$dir"/grafana_admin_password "$dir"/codingbrain_config.json
echo "wrote secrets to $dir"
