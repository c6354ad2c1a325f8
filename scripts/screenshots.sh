#!/usr/bin/env bash
# `make screenshots`: the dashboard's screenshots in docs/, from the data of `make demo`.
#   1. the browser test (tests/tests/dashboard_browser.rs) takes the error pages' screenshots
#      from its known errors (the demo's bot has no failing handler);
#   2. make demo fills a state of its own (target/screenshots/state) with 90 days of traffic;
#   3. a dashboard on that state, and tests/browser/screenshots.mjs in headless Chromium, take
#      the overview, pipeline and owner pages.
# Every process it starts is stopped on the way out.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
work=$root/target/screenshots
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

SCREENSHOT_DIR=$work/test cargo test -q -p e2e-tests --test dashboard_browser -- --nocapture > "$work.test.log" 2>&1 \
  || { tail -40 "$work.test.log"; exit 1; }
for page in errors group; do cp "$work/test/dashboard-$page.png" "docs/dashboard-$page.png"; done

rm -rf "$work/state" "$work/dev" "$work/demo"
mkdir -p "$work"
make --no-print-directory demo STATE_DIR="$work/state" DEV_PORT="$(free_port)"
cargo run -q -p dev-stack -- --bot wrangler.producer.toml --consumer wrangler.consumer.toml \
  --dashboard wrangler.dashboard.toml --vars .dev.vars --out "$work/dev"
port=$(free_port)
node_modules/.bin/wrangler dev -c "$work/dev/dashboard.toml" --persist-to "$work/state" --ip 127.0.0.1 \
  --port "$port" --inspector-port "$(free_port)" --show-interactive-dev-session=false \
  < /dev/null > "$work/dashboard.log" 2>&1 &
dashboard=$!
trap 'kill -TERM $dashboard 2>/dev/null; wait $dashboard 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/" || true)
  [ "$code" = 401 ] && break
  sleep 0.2
done
[ "$code" = 401 ] || { echo "screenshots: the dashboard did not start:"; tail -30 "$work/dashboard.log"; exit 1; }

pages='[{"name":"overview","url":"/?range=30d"},{"name":"pipeline","url":"/pipeline?range=30d"},
  {"name":"users","url":"/users?range=30d"},{"name":"retention","url":"/retention?range=30d"},
  {"name":"funnels","url":"/funnels?range=30d"},{"name":"sources","url":"/sources?range=30d"}]'
DASHBOARD_URL="http://127.0.0.1:$port" \
DASHBOARD_PASSWORD="$(sed -n 's/^DASHBOARD_PASSWORD=//p' .dev.vars)" \
CHROMIUM="$(command -v chromium)" SCREENSHOT_DIR="$work/demo-png" SCREENSHOT_PAGES="$pages" \
  node tests/browser/screenshots.mjs
for page in overview pipeline users retention funnels sources; do
  cp "$work/demo-png/dashboard-$page.png" "docs/dashboard-$page.png"
done
echo "screenshots: docs/dashboard-{overview,pipeline,users,retention,funnels,sources}.png from make demo; errors and group from the browser test"
