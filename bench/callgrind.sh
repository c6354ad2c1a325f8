#!/usr/bin/env bash
# Instructions per update of the analytics path (bench/src/bin/analytics_path.rs), counted by
# callgrind: the run with N updates minus the run with none, divided by N. Counts, not times:
# the machine's load does not move it. Prints one line; `make bench` records it.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000}
if ! command -v valgrind >/dev/null; then
    echo "callgrind: valgrind missing (apt-get install -y valgrind)"; exit 0
fi
cargo build -q --release -p bench --bin analytics_path
count() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/analytics_path "$1" 2>&1 \
        | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
base=$(count 0)
full=$(count "$n")
echo "analytics path: $(( (full - base) / n )) instructions per update (callgrind, $n updates)"
