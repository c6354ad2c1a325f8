#!/usr/bin/env bash
# Tests scripts/deploy.sh against a fake wrangler that records its calls: a first deploy
# creates the queues and the database and writes its id into the config; a second creates
# nothing. Part of `make test` (no network, no Cloudflare account).
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp wrangler.consumer.toml "$work/consumer.toml"
cp wrangler.dashboard.toml "$work/dashboard.toml"
state="$work/state"
mkdir -p "$state"
cat >"$work/wrangler" <<'FAKE'
#!/usr/bin/env bash
state=$(dirname "$0")/state
echo "$*" >>"$state/calls"
case "$1 $2" in
  "queues info") grep -qx "$3" "$state/queues" 2>/dev/null ;;
  "queues create") echo "$3" >>"$state/queues" ;;
  "d1 list") if [ -f "$state/db" ]; then echo "[{\"uuid\":\"$(cat "$state/db")\",\"name\":\"telegram-analytics\"}]"; else echo "[]"; fi ;;
  "secret list") cat "$state/secrets" 2>/dev/null || echo "[]" ;;
  "d1 create") echo "1b9b8e6c-0d0a-4c1e-9f3e-2a7d5c4b3a21" >"$state/db"; echo "database_id = \"1b9b8e6c-0d0a-4c1e-9f3e-2a7d5c4b3a21\"" ;;
  *) ;;
esac
FAKE
chmod +x "$work/wrangler"
run() { WRANGLER="$work/wrangler" CONSUMER_CONFIG="$work/consumer.toml" DASHBOARD_CONFIG="$work/dashboard.toml" scripts/deploy.sh >"$work/out" 2>&1 || { cat "$work/out"; exit 1; }; }
fail() { echo "test-deploy: $*"; cat "$work/out"; exit 1; }

run
grep -qx "queues create telegram-analytics" "$state/calls" || fail "queue not created"
grep -qx "queues create telegram-analytics-dlq" "$state/calls" || fail "dlq not created"
grep -qx "d1 create telegram-analytics" "$state/calls" || fail "database not created"
grep -q '^database_id = "1b9b8e6c-0d0a-4c1e-9f3e-2a7d5c4b3a21"' "$work/consumer.toml" || fail "id not written"
grep -q '^database_id = "1b9b8e6c-0d0a-4c1e-9f3e-2a7d5c4b3a21"' "$work/dashboard.toml" || fail "id not written into the dashboard's config"
order=$(grep -n "^d1 migrations apply\|^deploy -c" "$state/calls" | cut -d: -f2- | tr '\n' '|')
[ "$order" = "d1 migrations apply DB --remote -c $work/consumer.toml|deploy -c $work/consumer.toml|deploy -c wrangler.producer.toml|deploy -c $work/dashboard.toml|" ] \
    || fail "wrong order: $order"

: >"$state/calls"
run
if grep -q "create" "$state/calls"; then fail "a second deploy created something"; fi
grep -qx "deploy -c wrangler.producer.toml" "$state/calls" || fail "second deploy did not deploy the bot"
# Dev-only switches are refused before anything is deployed: as a var in a config (LOCAL_DEV
# would let make demo's backdated times and the published dev key into production) ...
refused() { # $1: what the refusal must name
    : >"$state/calls"
    if WRANGLER="$work/wrangler" CONSUMER_CONFIG="$work/consumer.toml" DASHBOARD_CONFIG="$work/dashboard.toml" \
        BOT_CONFIG="${BOT_CONFIG_UNDER_TEST:-wrangler.producer.toml}" scripts/deploy.sh >"$work/out" 2>&1; then
        fail "a deploy with $1 was not refused"
    fi
    grep -q "refusing to deploy.*$1" "$work/out" || fail "the refusal does not name $1"
    if grep -q "^deploy -c\|^d1 migrations" "$state/calls"; then fail "something was deployed despite $1"; fi
}
cp wrangler.producer.toml "$work/bot.toml"
sed -i 's/^\[vars\]$/[vars]\nLOCAL_DEV = "1"/' "$work/bot.toml"
BOT_CONFIG_UNDER_TEST="$work/bot.toml" refused LOCAL_DEV
cp wrangler.producer.toml "$work/bot.toml"
sed -i 's/^\[vars\]$/[vars]\nDEV_ENQUEUE = "1"/' "$work/bot.toml"
BOT_CONFIG_UNDER_TEST="$work/bot.toml" refused DEV_ENQUEUE
# ... or as a secret of a deployed Worker.
echo '[{"name":"TELEGRAM_BOT_TOKEN","type":"secret_text"},{"name":"LOCAL_DEV","type":"secret_text"}]' >"$state/secrets"
refused LOCAL_DEV
rm "$state/secrets"
run
echo "test-deploy: ok (first deploy creates queues and database, second creates nothing, dev-only switches are refused)"
