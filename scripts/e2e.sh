#!/usr/bin/env bash
# The end-to-end tests (tests/tests/*.rs), in two lanes at once. Most of their time is waiting
# (batch timeouts, simulated outages, retries), not CPU, so two lanes halve the wall time:
#   - lane 1: the consumer's tests (the longest file), two tests at a time;
#   - lane 2: every other file, one test at a time.
# Every test starts its own wrangler dev on free ports in its own temporary state directory,
# so the lanes share nothing. Lane 1's output goes to target/e2e-lane1.log and is printed when
# both lanes are done. Exits non-zero when any test binary failed.
#   scripts/e2e.sh [file ...]    (default: every file; names without .rs, e.g. consumer)
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

LANE1=${E2E_LANE1:-consumer}
LANE1_THREADS=${E2E_LANE1_THREADS:-2}

# Build every test binary once, and learn their paths (running them directly keeps the two
# lanes from waiting on cargo's lock).
json=$(cargo test -p e2e-tests --tests --no-run --message-format=json-render-diagnostics) || exit 1
declare -A exe
while IFS=$'\t' read -r name path; do
    exe[$name]=$path
done < <(python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and "test" in m["target"]["kind"]:
        print(m["target"]["name"] + "\t" + m["executable"])
' <<<"$json")

wanted=("$@")
if [ ${#wanted[@]} -eq 0 ]; then
    for f in tests/tests/*.rs; do wanted+=("$(basename "$f" .rs)"); done
fi
for name in "${wanted[@]}"; do
    [ -n "${exe[$name]:-}" ] || { echo "e2e: no test binary named $name" >&2; exit 2; }
done

run() { # name threads
    local start=$SECONDS status
    "${exe[$1]}" --test-threads="$2" --nocapture
    status=$?
    echo "e2e: $1 took $((SECONDS - start)) s, exit $status"
    return $status
}

lane1_log=target/e2e-lane1.log
lane1_pid=
if [[ " ${wanted[*]} " == *" $LANE1 "* ]]; then
    run "$LANE1" "$LANE1_THREADS" >"$lane1_log" 2>&1 &
    lane1_pid=$!
    echo "e2e: lane 1 runs $LANE1 ($LANE1_THREADS at a time; output in $lane1_log when done)"
fi
trap '[ -n "$lane1_pid" ] && kill "$lane1_pid" 2>/dev/null' EXIT

failed=()
for name in "${wanted[@]}"; do
    [ "$name" = "$LANE1" ] && continue
    run "$name" 1 || failed+=("$name")
done
if [ -n "$lane1_pid" ]; then
    wait "$lane1_pid" || failed+=("$LANE1")
    lane1_pid=
    echo "---- lane 1: $LANE1 ----"
    cat "$lane1_log"
fi
if [ ${#failed[@]} -gt 0 ]; then
    echo "e2e: FAILED: ${failed[*]}"
    exit 1
fi
echo "e2e: all passed"
