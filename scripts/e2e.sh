#!/usr/bin/env bash
# The end-to-end tests (tests/tests/*.rs), in several lanes at once. Most of their time is waiting
# (batch timeouts, simulated outages, retries), not CPU, so lanes divide the wall time:
#   - lane 1: the consumer's tests (the longest file), two tests at a time;
#   - lanes 2..E2E_LANES: every other file, one test at a time; each lane takes the next file not
#     yet taken, the longest first (SLOW_FIRST, from measured runs), so the lanes end together.
# Every test starts its own wrangler dev on free ports in its own temporary state directory,
# so the lanes share nothing. Each lane's output goes to target/e2e-lane<N>.log and is printed
# when every lane is done; a line per file shows progress. Exits non-zero when any file failed.
#   scripts/e2e.sh [file ...]    (default: every file; names without .rs, e.g. consumer)
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

LANES=${E2E_LANES:-3}
LANE1=${E2E_LANE1:-consumer}
LANE1_THREADS=${E2E_LANE1_THREADS:-2}
# The files by their wall time in a fresh-clone run, longest first; files not named here go last.
SLOW_FIRST=(alerts producer owner_analytics sparse new_bot privacy dashboard_browser two_bots backdating
    dashboard minimal_bot owner_events owner_pipeline dashboard_owner pipeline dashboard_sql_timeout
    hostile dashboard_sql)

# Build every test binary once, and learn their paths (running them directly keeps the lanes
# from waiting on cargo's lock).
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

# The shared queue of the lanes 2..: the wanted files, the slow ones first.
queue=()
for name in "${SLOW_FIRST[@]}"; do
    [[ " ${wanted[*]} " == *" $name "* && $name != "$LANE1" ]] && queue+=("$name")
done
for name in "${wanted[@]}"; do
    [[ " ${queue[*]} " == *" $name "* || $name == "$LANE1" ]] || queue+=("$name")
done

claims=$(mktemp -d "${TMPDIR:-/tmp}/e2e-claims.XXXXXX")
failures=$claims/failed
touch "$failures"

run() { # name threads
    local start=$SECONDS status
    "${exe[$1]}" --test-threads="$2" --nocapture
    status=$?
    # Into the lane's log, and a progress line on the script's own output (fd 3; not
    # `tee /dev/fd/3`, which reopens a redirected output file at offset 0 and overwrites it).
    echo "e2e: $1 took $((SECONDS - start)) s, exit $status"
    echo "e2e: $1 took $((SECONDS - start)) s, exit $status" >&3
    [ $status -eq 0 ] || echo "$1" >>"$failures"
    return 0
}

# A lane of the shared queue: takes each file no other lane took (mkdir is atomic).
lane() {
    local name
    for name in "${queue[@]}"; do
        mkdir "$claims/$name" 2>/dev/null && run "$name" 1
    done
}

pids=()
logs=()
exec 3>&1
if [[ " ${wanted[*]} " == *" $LANE1 "* ]]; then
    logs+=(target/e2e-lane1.log)
    run "$LANE1" "$LANE1_THREADS" >target/e2e-lane1.log 2>&1 &
    pids+=($!)
    echo "e2e: lane 1 runs $LANE1 ($LANE1_THREADS at a time)"
fi
for ((n = 2; n <= LANES; n++)); do
    logs+=("target/e2e-lane$n.log")
    lane >"target/e2e-lane$n.log" 2>&1 &
    pids+=($!)
done
echo "e2e: lanes 2..$LANES run ${#queue[@]} files: ${queue[*]}"
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$claims"' EXIT

for pid in "${pids[@]}"; do wait "$pid"; done
for log in "${logs[@]}"; do
    echo "---- ${log#target/} ----"
    cat "$log"
done
if [ -s "$failures" ]; then
    echo "e2e: FAILED: $(tr '\n' ' ' <"$failures")"
    exit 1
fi
echo "e2e: all passed"
