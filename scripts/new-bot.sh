#!/usr/bin/env bash
# make new-bot NAME=quiz DIR=../quiz — a complete bot crate on bot-analytics, from
# templates/bot/: Cargo.toml and the repository's Cargo.lock, src/lib.rs (with a test),
# wrangler.toml, .dev.vars.example, README.md, .gitignore, and .cargo/config.toml (builds share
# the repository's target directory). It builds and runs at once with `make dev BOT=DIR/wrangler.toml`.
set -euo pipefail

name=${1:-}
dir=${2:-}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if ! [[ $name =~ ^[a-z][a-z0-9-]{0,38}[a-z0-9]$ ]]; then
    echo "new-bot: NAME must be 2–40 characters of a-z, 0-9 and -, starting with a letter (got '$name')" >&2
    exit 2
fi
if [ -z "$dir" ]; then
    echo "new-bot: DIR is required: where the bot's crate goes (make new-bot NAME=$name DIR=../$name)" >&2
    exit 2
fi
if [ -e "$dir" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
    echo "new-bot: $dir exists and is not empty; pick a new directory" >&2
    exit 2
fi
mkdir -p "$dir/src"
dir=$(cd "$dir" && pwd)

fill() { sed -e "s|{{NAME}}|$name|g" -e "s|{{REPO}}|$repo|g" "$1" > "$2"; }
fill "$repo/templates/bot/Cargo.toml.in" "$dir/Cargo.toml"
fill "$repo/templates/bot/wrangler.toml.in" "$dir/wrangler.toml"
fill "$repo/templates/bot/src/lib.rs" "$dir/src/lib.rs"
fill "$repo/templates/bot/README.md" "$dir/README.md"
fill "$repo/templates/bot/.dev.vars.example" "$dir/.dev.vars.example"
cp "$repo/templates/bot/gitignore" "$dir/.gitignore"
mkdir -p "$dir/.cargo"
fill "$repo/templates/bot/cargo/config.toml" "$dir/.cargo/config.toml"
# The versions this repository is tested with (cargo drops what the bot does not use).
cp "$repo/Cargo.lock" "$dir/Cargo.lock"

echo "new-bot: $name in $dir"
echo "  cd $dir && cp .dev.vars.example .dev.vars"
echo "  make -C $repo dev BOT=$dir/wrangler.toml"
