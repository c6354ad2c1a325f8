#!/usr/bin/env bash
# make deploy: everything a first (or any later) production deploy needs, in order:
#   1. the queue and its dead letter queue, when missing;
#   2. the D1 database, when missing, with its id written into wrangler.consumer.toml;
#   3. the D1 migrations;
#   4. the consumer Worker, then the bot (so the bot never sends to a queue nobody reads), then
#      the dashboard (it answers 503 until DASHBOARD_PASSWORD is set; see docs/dashboard.md).
# Run `npx wrangler login` (or set CLOUDFLARE_API_TOKEN) first. Secrets are not set here:
#   npx wrangler secret put TELEGRAM_WEBHOOK_SECRET -c wrangler.producer.toml
#   npx wrangler secret put TELEGRAM_BOT_TOKEN -c wrangler.producer.toml
#   npx wrangler secret put ANALYTICS_ID_KEY -c wrangler.producer.toml
# WRANGLER overrides the wrangler command (the tests point it at a fake). BOT_CONFIG deploys
# another bot config instead of wrangler.producer.toml.
set -euo pipefail
cd "$(dirname "$0")/.."

WRANGLER=${WRANGLER:-node_modules/.bin/wrangler}
CONSUMER_CONFIG=${CONSUMER_CONFIG:-wrangler.consumer.toml}
BOT_CONFIG=${BOT_CONFIG:-wrangler.producer.toml}
DASHBOARD_CONFIG=${DASHBOARD_CONFIG:-wrangler.dashboard.toml}
QUEUE=telegram-analytics
DLQ=telegram-analytics-dlq
DATABASE=telegram-analytics
PLACEHOLDER_ID=00000000-0000-0000-0000-000000000000

say() { printf 'deploy: %s\n' "$*"; }

# Dev-only switches (docs/security.md): LOCAL_DEV (the published dev key, and make demo's
# backdated events), AE_LOCAL_MIRROR and every DEV_* switch live in .dev.vars only. A config
# that sets one as a var, or a Worker that has one as a secret, is refused before anything is
# deployed.
DEV_SWITCHES='LOCAL_DEV|AE_LOCAL_MIRROR|DEV_[A-Z0-9_]+'
refuse_dev_switches_in_config() {
    local config=$1 found
    found=$(grep -v '^[[:space:]]*#' "$config" \
        | grep -oE "(^|[{,[:space:]])\"?($DEV_SWITCHES)\"?[[:space:]]*=" \
        | grep -oE "$DEV_SWITCHES" | sort -u | tr '\n' ' ' || true)
    if [ -n "$found" ]; then
        say "refusing to deploy: $config sets the dev-only switch(es) ${found% } (local dev only, in .dev.vars; see docs/security.md)"
        exit 1
    fi
}
refuse_dev_switches_in_secrets() {
    local config=$1 listed found
    # A Worker not deployed yet has no secrets (wrangler fails: nothing to check).
    listed=$("$WRANGLER" secret list --format json -c "$config" 2>/dev/null) || return 0
    found=$(node -e '
      let list = [];
      try { list = JSON.parse(process.argv[1] || "[]"); } catch (e) { process.exit(0); }
      const re = new RegExp("^(" + process.argv[2] + ")$");
      process.stdout.write(list.map((s) => s && s.name).filter((n) => re.test(n || "")).join(" "));
    ' "$listed" "$DEV_SWITCHES")
    if [ -n "$found" ]; then
        say "refusing to deploy: the Worker of $config has the dev-only secret(s) $found; remove them: npx wrangler secret delete NAME -c $config"
        exit 1
    fi
}
for config in "$CONSUMER_CONFIG" "$BOT_CONFIG" "$DASHBOARD_CONFIG"; do
    refuse_dev_switches_in_config "$config"
done

"$WRANGLER" whoami >/dev/null 2>&1 || { say "not logged in: run npx wrangler login (or set CLOUDFLARE_API_TOKEN)"; exit 1; }
for config in "$CONSUMER_CONFIG" "$BOT_CONFIG" "$DASHBOARD_CONFIG"; do
    refuse_dev_switches_in_secrets "$config"
done
for queue in "$QUEUE" "$DLQ"; do
    if "$WRANGLER" queues info "$queue" >/dev/null 2>&1; then
        say "queue $queue exists"
    else
        say "creating queue $queue"
        "$WRANGLER" queues create "$queue"
    fi
done

databases=$("$WRANGLER" d1 list --json)
existing_id=$(node -e '
  const list = JSON.parse(process.argv[1]);
  const db = list.find((d) => d.name === process.argv[2]);
  process.stdout.write(db ? (db.uuid || db.id || "") : "");
' "$databases" "$DATABASE")
if [ -z "$existing_id" ]; then
    say "creating D1 database $DATABASE"
    created=$("$WRANGLER" d1 create "$DATABASE")
    echo "$created"
    existing_id=$(grep -oE '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}' <<<"$created" | head -n1)
    [ -n "$existing_id" ] || { say "could not read the new database's id"; exit 1; }
else
    say "D1 database $DATABASE exists ($existing_id)"
fi
for config in "$CONSUMER_CONFIG" "$DASHBOARD_CONFIG"; do
    configured=$(sed -n 's/^database_id *= *"\(.*\)"/\1/p' "$config" | head -n1)
    if [ "$configured" != "$existing_id" ]; then
        say "writing database_id $existing_id into $config (was $configured)"
        sed -i "s/^database_id *= *\".*\"/database_id = \"$existing_id\"/" "$config"
    fi
done
if [ "$existing_id" = "$PLACEHOLDER_ID" ]; then
    say "the database id is still the placeholder"; exit 1
fi

say "applying migrations"
"$WRANGLER" d1 migrations apply DB --remote -c "$CONSUMER_CONFIG"
say "deploying the consumer"
"$WRANGLER" deploy -c "$CONSUMER_CONFIG"
say "deploying the bot ($BOT_CONFIG)"
"$WRANGLER" deploy -c "$BOT_CONFIG"
say "deploying the dashboard ($DASHBOARD_CONFIG)"
"$WRANGLER" deploy -c "$DASHBOARD_CONFIG"
say "done. Set the webhook once:"
say "  curl https://api.telegram.org/bot<TOKEN>/setWebhook -d url=https://<bot>.<subdomain>.workers.dev/telegram -d secret_token=<SECRET>"
