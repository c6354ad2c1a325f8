#!/usr/bin/env bash
# Coverage-guided fuzzing of the `shared/` crates with cargo-fuzz + libFuzzer, on STABLE Rust.
#
#   ./run.sh <seconds-per-target> [target ...]     (default: every target in fuzz_targets/)
#
# Installs cargo-fuzz (pinned) when missing, builds once, runs each target for the given time,
# prints one summary line per target and exits non-zero if any target crashed (panic, hang or
# out-of-memory). Crash inputs land in artifacts/<target>/; minimise them with
#   cargo fuzz tmin --sanitizer none <target> artifacts/<target>/crash-…
# and keep them in regressions/<target>/: every run replays them first.
#
# Built with `--sanitizer none`: no -Z flag reaches rustc, so stable works as it is. The code
# under test is safe Rust, and ASan costs ~8x the speed. For an ASan run anyway:
#   FUZZ_SANITIZER=address ./run.sh 60     (sets RUSTC_BOOTSTRAP=1 for -Zsanitizer)
# FUZZ_ARGS adds libFuzzer flags, e.g. FUZZ_ARGS="-max_len=65536 -jobs=2".
set -euo pipefail

CARGO_FUZZ_VERSION=0.13.2
SANITIZER=${FUZZ_SANITIZER:-none}
read -r -a EXTRA_ARGS <<<"${FUZZ_ARGS:-}"

cd "$(dirname "${BASH_SOURCE[0]}")"

seconds=${1:-}
if ! [[ $seconds =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 <seconds-per-target> [target ...]" >&2
    exit 2
fi
shift
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for f in fuzz_targets/*.rs; do targets+=("$(basename "$f" .rs)"); done
fi

# ---- what is missing ----
if [ "$(cargo fuzz --version 2>/dev/null | awk '{print $NF}')" != "$CARGO_FUZZ_VERSION" ]; then
    echo "installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked \
        || cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi
if ! command -v c++ >/dev/null; then
    # libfuzzer-sys compiles libFuzzer (C++) from source.
    echo "a C++ compiler is needed (apt-get install g++)" >&2
    exit 2
fi
# The fuzz project is this directory (its parent, shared/, holds three crates and no manifest
# of its own, so cargo-fuzz is told where it is).
dir_args=(--fuzz-dir "$PWD")
if [ "$SANITIZER" != none ]; then
    export RUSTC_BOOTSTRAP=1 # cargo-fuzz passes -Zsanitizer=…; stable rustc accepts it so.
    dir_args+=(--target-dir "target/sanitizer-$SANITIZER") # keep the fast build too
fi

# ---- build once ----
start=$(date +%s)
cargo fuzz build --sanitizer "$SANITIZER" "${dir_args[@]}" # every target; seconds when up to date
echo "fuzz: built in $(($(date +%s) - start)) s (sanitizer: $SANITIZER)"

# ---- run ----
failed=0
for t in "${targets[@]}"; do
    work=.work/corpus/$t # what this run learns (not checked in); seeds stay untouched
    log=.work/$t.log
    mkdir -p "$work" "artifacts/$t"
    dirs=("$work" "corpus/$t")
    if [ -n "$(ls -A "regressions/$t" 2>/dev/null)" ]; then dirs+=("regressions/$t"); fi
    before=$(find "artifacts/$t" -type f | sort)

    status=0
    cargo fuzz run --sanitizer "$SANITIZER" "${dir_args[@]}" "$t" "${dirs[@]}" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        "${EXTRA_ARGS[@]}" >"$log" 2>&1 || status=$?

    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(sed -n 's/.* cov: \([0-9]*\) .*/\1/p' "$log" | tail -1)
    corp=$(find "$work" -type f | wc -l)
    new=$(comm -13 <(echo "$before") <(find "artifacts/$t" -type f | sort))
    written=$(sed -n 's/.*Test unit written to //p' "$log" | sed "s|^$PWD/||" | tail -1)
    crash=no
    if [ "$status" -ne 0 ] || [ -n "$new" ]; then
        crash=YES
        failed=1
    fi
    printf 'fuzz %-13s %s s: %s execs (%s/s), cov %s, corpus %s, crash: %s\n' \
        "$t" "$seconds" "${execs:-?}" "${rate:-?}" "${cov:-?}" "$corp" "$crash"
    if [ "$crash" = YES ]; then
        echo "  panic: $(grep -m1 -A1 'panicked at' "$log" | tr '\n' ' ' || true)"
        grep -m1 -E '^SUMMARY|ERROR: libFuzzer' "$log" | sed 's/^/  /' || true
        echo "  input: ${written:-${new:-(none written; see $log)}}" | tr '\n' ' '
        echo
        echo "  minimise: cargo fuzz tmin --sanitizer $SANITIZER ${dir_args[*]} $t <input>;" \
            "then keep it in regressions/$t/. Full log: $log"
    fi
done
exit "$failed"
