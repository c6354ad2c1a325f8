# Telegram bot + analytics pipeline on Cloudflare Workers (Rust).
# `make dev` and `make test` install whatever is missing themselves.

SHELL := /bin/bash
.DEFAULT_GOAL := help

WORKER_BUILD_VERSION := 0.8.7
# Must equal the wasm-bindgen version in Cargo.lock (pinned with `=` in Cargo.toml).
WASM_BINDGEN_VERSION := $(shell sed -n '/^name = "wasm-bindgen"$$/{n;s/version = "\(.*\)"/\1/p;}' Cargo.lock)
CARGO_BIN := $(or $(CARGO_HOME),$(HOME)/.cargo)/bin
ROOT := $(CURDIR)
STATE_DIR ?= $(ROOT)/.wrangler/state
# The configs make dev writes (tools/dev-stack), beside the state.
DEV_DIR = $(dir $(STATE_DIR))dev
# make dev BOT=path/to/wrangler.toml runs that bot instead of the demo bot.
BOT ?= wrangler.producer.toml
DEV_VARS ?= .dev.vars
DEV_PORT ?= 8787
DASHBOARD_PORT ?= 8788
DASHBOARD_INSPECTOR_PORT ?= 9329
WRANGLER := $(ROOT)/node_modules/.bin/wrangler

# worker-build downloads wasm-bindgen, esbuild and wasm-opt unless pointed at local binaries.
export WASM_BINDGEN_BIN := $(CARGO_BIN)/wasm-bindgen
export ESBUILD_BIN := $(ROOT)/node_modules/@esbuild/linux-x64/bin/esbuild
export WASM_OPT_BIN := $(ROOT)/node_modules/.bin/wasm-opt
export WRANGLER_SEND_METRICS := false

.PHONY: dev-vars demo api new-bot build-bot deploy economy scale help bootstrap tools npm build build-producer build-consumer build-minimal-bot build-dashboard \
        migrate dev test lint unit e2e dry-run docs sizes errors bench bench-smoke soak soak-chaos soak-small fuzz fuzz-smoke \
        clean chromium chdb screenshots alerts-demo

help:
	@echo "make dev      build the Workers and run them locally (bot + consumer, and the dashboard);"
	@echo "              make dev BOT=path/to/wrangler.toml runs your own bot instead of the demo bot"
	@echo "make demo     fill the local stack with 90 days of synthetic traffic (DEMO_USERS, DEMO_DAYS), then make dev"
	@echo "make test     formatting, clippy, unit tests, dry-run deploys, end-to-end tests"
	@echo "make bench    benchmarks: bot variants side by side, sizes, consumer throughput"
	@echo "make soak     10,000 updates at concurrency 50, then checks nothing was lost or doubled"
	@echo "make soak-chaos  the same with faults injected during the load (queue, D1, consumer crashes, a panic, a killed isolate, no AE for a while, a slow Bot API)"
	@echo "make fuzz     fuzz envelope decoding, update parsing, the webhook request path and the report CLI's arguments (FUZZ_SECONDS per target)"
	@echo "make errors   error reports from D1, e.g. make errors ARGS='top --since 24h'"
	@echo "make deploy   create the queues and D1 database when missing, migrate, deploy consumer then bot"
	@echo "make economy  what a day of traffic costs on the free and paid plans (docs/economy.md)"
	@echo "make scale    which Cloudflare limit a growing bot hits first: measured D1 speed and storage (docs/scale.md)"
	@echo "make docs     regenerate generated parts of docs/"
	@echo "make new-bot  a new bot crate outside the repository: make new-bot NAME=quiz DIR=../quiz"
	@echo "make build-bot  build any bot crate with the pinned tools: make build-bot DIR=../quiz"
	@echo "make api      rewrite bot-analytics/public-api.txt, the library's public API snapshot"
	@echo "make sizes    print the size of every .wasm file (raw and gzip)"
	@echo "make screenshots  refresh the dashboard screenshots in docs/ (real Chromium)"
	@echo "make alerts-demo  what a Telegram alert looks like: one failing update, the alert the fake Bot API gets"

## ---- bootstrap: everything a fresh machine lacks ----
bootstrap: tools npm

tools:
	@rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown \
	  || rustup target add wasm32-unknown-unknown
	@rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt
	@if [ "$$($(CARGO_BIN)/worker-build --version 2>/dev/null | awk '{print $$NF}')" != "$(WORKER_BUILD_VERSION)" ]; then \
	  echo "installing worker-build $(WORKER_BUILD_VERSION)"; \
	  cargo install worker-build --version $(WORKER_BUILD_VERSION) --locked; fi
	@if [ "$$($(WASM_BINDGEN_BIN) --version 2>/dev/null | awk '{print $$NF}')" != "$(WASM_BINDGEN_VERSION)" ]; then \
	  echo "installing wasm-bindgen-cli $(WASM_BINDGEN_VERSION) (about 4 minutes)"; \
	  cargo install wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION) --locked; fi

npm: node_modules/.package-lock.json

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

## ---- build ----
build: build-producer build-consumer build-minimal-bot build-dashboard

# Rebuilt only when a source changed, so `wrangler dev`/`deploy` (whose [build] command calls
# these targets) start in seconds when nothing changed.
SHARED_SRC := $(shell find shared/core/src shared/core/fixtures shared/telegram/src shared/ingest/src -type f) \
  shared/core/Cargo.toml shared/telegram/Cargo.toml shared/ingest/Cargo.toml Cargo.toml Cargo.lock
LIBRARY_SRC := $(shell find bot-analytics/src -name '*.rs') bot-analytics/Cargo.toml $(SHARED_SRC)
producer-worker/build/index.js: $(shell find producer-worker/src -name '*.rs') producer-worker/Cargo.toml $(LIBRARY_SRC) | tools npm
	cd producer-worker && $(CARGO_BIN)/worker-build --release
# The consumer ships without the wasm names section (worker-build keeps it): with the alerts it
# was 287 KB gzip with names, about 248 KB without, under the 250 KB budget. Its panics still
# log their message and file:line; only stack frames lose their function names. The bot keeps
# its names (docs/benchmarks.md: size against cold start).
WASM_FEATURES := --enable-mutable-globals --enable-sign-ext --enable-nontrapping-float-to-int \
  --enable-bulk-memory --enable-multivalue --enable-reference-types --enable-exception-handling
consumer-worker/build/index.js: $(shell find consumer-worker/src -name '*.rs') consumer-worker/Cargo.toml $(SHARED_SRC) | tools npm
	cd consumer-worker && $(CARGO_BIN)/worker-build --release
	$(WASM_OPT_BIN) consumer-worker/build/index_bg.wasm -o consumer-worker/build/index_bg.wasm --strip-debug $(WASM_FEATURES)
examples/minimal-bot/build/index.js: $(shell find examples/minimal-bot/src -name '*.rs') examples/minimal-bot/Cargo.toml $(LIBRARY_SRC) | tools npm
	cd examples/minimal-bot && $(CARGO_BIN)/worker-build --release

DASHBOARD_SRC := $(shell find dashboard/src dashboard/assets -type f) dashboard/Cargo.toml
dashboard-worker/build/index.js: $(shell find dashboard-worker/src -name '*.rs') dashboard-worker/Cargo.toml $(DASHBOARD_SRC) $(SHARED_SRC) | tools npm
	cd dashboard-worker && $(CARGO_BIN)/worker-build --release

build-producer: producer-worker/build/index.js
build-consumer: consumer-worker/build/index.js
build-minimal-bot: examples/minimal-bot/build/index.js
build-dashboard: dashboard-worker/build/index.js

# Your own bot, outside this repository: `make new-bot NAME=quiz DIR=../quiz` writes a complete
# crate from templates/bot/; `make build-bot DIR=../quiz` builds any bot crate with the pinned
# tools (what its wrangler.toml's [build] runs), without downloads from outside the registries.
new-bot:
	@scripts/new-bot.sh "$(NAME)" "$(DIR)"

build-bot: | tools npm
	@[ -n "$(DIR)" ] && [ -f "$(DIR)/Cargo.toml" ] || { \
	  echo "build-bot: DIR must be a bot crate's directory (with its Cargo.toml), e.g. make build-bot DIR=../quiz"; exit 2; }
	cd "$(DIR)" && $(CARGO_BIN)/worker-build --release

sizes: build
	@for f in producer-worker consumer-worker dashboard-worker examples/minimal-bot; do \
	  w=$${f##*/}; w=$${w%-worker}; wasm=$$f/build/index_bg.wasm; \
	  printf "%-11s wasm: %7d bytes raw, %7d bytes gzip\n" $$w $$(stat -c %s $$wasm) $$(gzip -9 -c $$wasm | wc -c); \
	done

## ---- local dev ----
$(DEV_VARS):
	cp .dev.vars.example $(DEV_VARS)
	@echo "created $(DEV_VARS) from .dev.vars.example"

migrate: npm
	$(WRANGLER) d1 migrations apply DB --local --persist-to $(STATE_DIR) -c wrangler.consumer.toml

# The bot (the demo bot, or BOT=path/to/wrangler.toml) and the consumer run in one wrangler dev
# on DEV_PORT (local queues are per wrangler dev process; only the first config of a
# multi-config wrangler dev gets the HTTP port, and the webhook must stay there); the dashboard
# runs in a second wrangler dev on DASHBOARD_PORT with the same --persist-to, so it reads the
# same local D1. tools/dev-stack builds the bot where its config lives and writes the configs
# with absolute paths into DEV_DIR, with a 1 s coalescing window and batch timeout (events show
# up within about two seconds; production keeps 20 s). The dashboard's output goes to
# .wrangler/dashboard-dev.log; it stops with make dev.
# An older .dev.vars gets the settings local dev needs since.
dev-vars: $(DEV_VARS)
	@grep -q '^DASHBOARD_PASSWORD=' $(DEV_VARS) || { \
	  echo 'DASHBOARD_PASSWORD=dev-dashboard-password' >> $(DEV_VARS); \
	  echo "added the dev DASHBOARD_PASSWORD to $(DEV_VARS)"; }
	@grep -q '^LOCAL_DEV=' $(DEV_VARS) || { \
	  echo 'LOCAL_DEV=1' >> $(DEV_VARS); \
	  echo "added LOCAL_DEV=1 to $(DEV_VARS) (the published dev pseudonym key, make demo's simulated time)"; }

dev: dev-vars build-consumer build-dashboard migrate
	@cargo run -q -p dev-stack -- --bot $(BOT) --consumer wrangler.consumer.toml \
	  --dashboard wrangler.dashboard.toml --vars $(DEV_VARS) --out $(DEV_DIR)
	@secret=$$(sed -n 's/^TELEGRAM_WEBHOOK_SECRET=//p' $(DEV_DIR)/.dev.vars); \
	echo; \
	echo "Bot: $(BOT)"; \
	echo "Webhook URL: http://127.0.0.1:$(DEV_PORT)/telegram"; \
	echo "Post a sample update (in another terminal):"; \
	echo "  curl -sS -X POST http://127.0.0.1:$(DEV_PORT)/telegram -H 'Content-Type: application/json' -H \"X-Telegram-Bot-Api-Secret-Token: $$secret\" --data @$(ROOT)/tests/fixtures/updates/message_start.json"; \
	echo "Then see the events (about two seconds later):"; \
	echo "  npx wrangler d1 execute DB --local --persist-to $(STATE_DIR) -c wrangler.consumer.toml --command \"SELECT blob1, blob3, blob4, count(*) FROM analytics_points_local GROUP BY 1, 2, 3\""; \
	echo "Dashboard: http://127.0.0.1:$(DASHBOARD_PORT)/"; \
	echo "  (any user name; the password is DASHBOARD_PASSWORD in $(DEV_VARS); log: $(dir $(STATE_DIR))dashboard-dev.log)"; \
	echo
	@$(WRANGLER) dev -c $(DEV_DIR)/dashboard.toml --persist-to $(STATE_DIR) --ip 127.0.0.1 \
	  --port $(DASHBOARD_PORT) --inspector-port $(DASHBOARD_INSPECTOR_PORT) \
	  --show-interactive-dev-session=false < /dev/null > $(dir $(STATE_DIR))dashboard-dev.log 2>&1 & \
	dashboard=$$!; \
	trap 'kill -TERM '$$dashboard' 2>/dev/null; wait '$$dashboard' 2>/dev/null' EXIT; \
	$(WRANGLER) dev -c $(DEV_DIR)/bot.toml -c $(DEV_DIR)/consumer.toml \
	  --persist-to $(STATE_DIR) --ip 127.0.0.1 --port $(DEV_PORT)

# make demo: DEMO_DAYS days of synthetic traffic from DEMO_USERS users (deterministic from
# DEMO_SEED) through the bot and the consumer in local workerd, into the state make dev uses, so
# make dev then shows history (docs/demo.md). Stop make dev first: both use DEV_PORT and the state.
DEMO_USERS ?= 600
DEMO_DAYS ?= 90
DEMO_SEED ?= 24
DEMO_CONCURRENCY ?= 16
demo: dev-vars build-consumer
	@cargo run -q -p dev-stack -- --bot $(BOT) --consumer wrangler.consumer.toml \
	  --vars $(DEV_VARS) --out $(DEV_DIR)
	@cargo run -q -p demo -- --configs $(DEV_DIR) --state $(STATE_DIR) --work $(dir $(STATE_DIR))demo \
	  --port $(DEV_PORT) --users $(DEMO_USERS) --days $(DEMO_DAYS) --seed $(DEMO_SEED) \
	  --concurrency $(DEMO_CONCURRENCY)

## ---- checks ----
# The library's public API, one item a line (rustdoc's JSON; see the script). `make lint` fails
# when the code's API differs from the snapshot; `make api` rewrites it, to commit with the change.
api:
	scripts/public-api.py bot-analytics --write bot-analytics/public-api.txt

lint: tools
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy -p analytics-core -p telegram-policy -p ingest-policy -p bot-analytics -p producer-worker -p consumer-worker -p minimal-bot \
	  -p dashboard-core -p dashboard-worker --target wasm32-unknown-unknown -- -D warnings
	scripts/public-api.py bot-analytics --check bot-analytics/public-api.txt
	RUSTDOCFLAGS="-D warnings" cargo doc -p analytics-core -p telegram-policy -p ingest-policy -p bot-analytics -p dashboard-core --no-deps -q

unit:
	cargo test -p analytics-core -p telegram-policy -p ingest-policy -p bot-analytics -p producer-worker -p consumer-worker -p report -p dashboard-core -p dev-stack
	cargo test -p bench --lib --test economy_cli
	cargo test -p demo --lib --test population --test rollup

dry-run: build
	$(WRANGLER) deploy --dry-run -c wrangler.producer.toml --outdir target/dry-run/producer
	$(WRANGLER) deploy --dry-run -c wrangler.consumer.toml --outdir target/dry-run/consumer
	$(WRANGLER) deploy --dry-run -c examples/minimal-bot/wrangler.toml --outdir target/dry-run/minimal-bot
	$(WRANGLER) deploy --dry-run -c wrangler.dashboard.toml --outdir target/dry-run/dashboard
	scripts/test-deploy.sh

# Production: queues and D1 database when missing, migrations, consumer, then the bot
# (BOT_CONFIG=examples/minimal-bot/wrangler.toml deploys the minimal bot instead).
deploy: bootstrap build
	scripts/deploy.sh

e2e: build chromium chdb
	scripts/e2e.sh
	cargo test -p demo --test demo_e2e -- --test-threads=1 --nocapture

# The fake Analytics Engine SQL API of the e2e tests (tests/fake_ae_sql/server.py) runs every
# query on ClickHouse through chDB, from PyPI: installed at these versions when missing (a
# 182 MB wheel and pandas, pyarrow, numpy; about 830 MB installed). Needs Python 3.11+.
PYTHON ?= python3
export AE_SQL_PYTHON := $(PYTHON)
CHDB_VERSION := 4.4.0
CHDB_CORE_VERSION := 26.9.0
chdb:
	@command -v $(PYTHON) > /dev/null 2>&1 || { echo "installing Debian's python3 for chDB"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-pip; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
	  echo "the fake Analytics Engine SQL API needs Python 3.11+ as $(PYTHON)"; exit 1; }
	@$(PYTHON) -c 'import sys, chdb; sys.exit(chdb.__version__ != "$(CHDB_VERSION)")' 2> /dev/null || { \
	  echo "installing chDB $(CHDB_VERSION) (ClickHouse) for the fake Analytics Engine SQL API"; \
	  $(PYTHON) -m pip --version > /dev/null 2>&1 || { apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-pip; }; \
	  pip_install="$(PYTHON) -m pip install --quiet --disable-pip-version-check chdb==$(CHDB_VERSION) chdb-core==$(CHDB_CORE_VERSION)"; \
	  $$pip_install || $$pip_install --break-system-packages; }
	@$(PYTHON) tests/fake_ae_sql/server.py --version

# The dashboard's browser test drives Debian's chromium (never a browser a tool downloads).
chromium:
	@command -v chromium > /dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the dashboard's browser test"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# Screenshots of the dashboard for docs/: the overview, pipeline and owner pages from the data of
# `make demo` (in a state of its own), the error pages from the browser test's known errors.
screenshots: build chromium chdb dev-vars
	scripts/screenshots.sh

# What a Telegram alert looks like (docs/alerts.md): the local stack with the fake Bot API, one
# update whose reply fails, and the alert the fake Bot API receives, printed.
alerts-demo: build-producer build-consumer
	cargo run -q -p e2e-tests --bin alerts-demo

# A few hundred requests through the benchmark harness, so it cannot rot (asserts no speed).
bench-smoke: build
	cargo run -q -p bench --bin bench -- --smoke
	cargo run -q -p bench --bin dashboard -- --smoke

# The soak: SOAK_UPDATES updates at SOAK_CONCURRENCY, every update kind, failing handlers; then
# accounts for every event (stored once, or counted as dropped). `make soak` runs it without
# coalescing and with the default window; `make soak-chaos` injects faults during the load.
SOAK_UPDATES ?= 10000
SOAK_CONCURRENCY ?= 50
soak: bootstrap build
	cargo run --release -q -p bench --bin soak -- --updates $(SOAK_UPDATES) --concurrency $(SOAK_CONCURRENCY) --coalesce-ms 0
	cargo run --release -q -p bench --bin soak -- --updates $(SOAK_UPDATES) --concurrency $(SOAK_CONCURRENCY)

# Faults during the load: ~5 % of queue sends and of D1 calls fail, the consumer crashes once
# after a commit and once after the points (before their marks), a handler panics, the bot's
# isolate is killed inside its coalescing window, Analytics Engine is removed for 10 s, the Bot
# API is slow. Prints a table of the faults and what each cost; ends with `soak: E emitted,
# S stored, 0 duplicated, D dropped (counted), K lost with a killed isolate, 0 unaccounted`.
soak-chaos: bootstrap build
	cargo run --release -q -p bench --bin soak -- --updates $(SOAK_UPDATES) --concurrency $(SOAK_CONCURRENCY) --chaos

# The small soak of make test: the chaos soak, shorter (Analytics Engine off for 3 s).
soak-small: build
	cargo run -q -p bench --bin soak -- --updates 600 --concurrency 20 --chaos --ae-outage-s 3

# Coverage-guided fuzzing of the shared/ crates (cargo-fuzz + libFuzzer, on stable without a sanitizer; see
# shared/fuzz/run.sh). A crash fails the run and is saved as a regression input.
FUZZ_SECONDS ?= 300
fuzz:
	shared/fuzz/run.sh $(FUZZ_SECONDS)

fuzz-smoke:
	shared/fuzz/run.sh 20

test: bootstrap lint unit dry-run bench-smoke soak-small fuzz-smoke e2e

# The full benchmark (not part of make test): rewrites the results in docs/benchmarks.md.
BENCH_ARGS ?=
bench: bootstrap build
	cargo bench -q -p analytics-core --bench core -- --quick
	cargo run --release -q -p bench --bin bench -- --write-doc $(BENCH_ARGS)
	cargo run --release -q -p bench --bin dashboard -- --write-doc

docs:
	cargo run -q -p analytics-core --example gen_docs

# The traffic simulator: a day at 1k … 10M events, the window choice and the free plan's ceiling,
# written into docs/economy.md (trace mode: see docs/economy.md).
economy:
	cargo run -q --release -p bench --bin economy -- --write-doc

# Not part of make test: one D1 database's speed and a day's storage, measured on SQLite with
# the consumer's statements, and the documented limits in events a day (docs/scale.md).
# SCALE_EVENTS sets the measured day (default 1,000,000 events).
SCALE_EVENTS ?= 1000000
scale:
	cargo run -q --release -p bench --bin economy -- --scale --events $(SCALE_EVENTS) --write-doc

# Error reports from D1: make errors ARGS="top --since 24h" (add --remote for production)
errors:
	@cargo run -q -p report -- $(ARGS)

clean:
	cargo clean
	rm -rf producer-worker/build consumer-worker/build examples/minimal-bot/build dashboard-worker/build .wrangler
