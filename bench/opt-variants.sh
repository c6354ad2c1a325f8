#!/usr/bin/env bash
# The producer's wasm size against its cold start, for rustc's opt-level and wasm-opt settings
# (not part of `make bench`: it builds the bot several times, about 10 minutes on 2 cores).
# Each variant is built with worker-build, optimised with binaryen's wasm-opt as worker-build
# does (the same feature flags), measured raw and gzip -9, and started cold 5 times by the
# bench harness (`--cold-variants`). Prints one markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/target/opt-variants
WASM_OPT=${WASM_OPT_BIN:-$ROOT/node_modules/.bin/wasm-opt}
FEATURES=(--enable-mutable-globals --enable-sign-ext --enable-nontrapping-float-to-int
          --enable-bulk-memory --enable-multivalue --enable-reference-types --enable-exception-handling)
rm -rf "$OUT"
mkdir -p "$OUT"
export WASM_BINDGEN_BIN=${WASM_BINDGEN_BIN:-$HOME/.cargo/bin/wasm-bindgen}
export ESBUILD_BIN=${ESBUILD_BIN:-$ROOT/node_modules/@esbuild/linux-x64/bin/esbuild}
variants=()
for level in ${LEVELS:-z s}; do
    (cd producer-worker && CARGO_PROFILE_RELEASE_OPT_LEVEL=$level CARGO_TARGET_DIR=$ROOT/target/opt-$level \
        "$HOME/.cargo/bin/worker-build" --release --no-opt --out-dir "$OUT/raw-$level" >/dev/null 2>&1)
    for opt in none Oz Os O3; do
        for names in kept stripped; do
            dir=$OUT/opt-$level-$opt-$names
            cp -r "$OUT/raw-$level" "$dir"
            args=()
            if [ "$opt" != none ]; then args+=("-$opt"); fi
            if [ "$names" = stripped ]; then args+=(--strip-debug); else args+=(--debuginfo); fi
            "$WASM_OPT" "$dir/index_bg.wasm" -o "$dir/index_bg.wasm" "${args[@]}" "${FEATURES[@]}"
            variants+=("opt-level $level; wasm-opt $opt; names $names=$dir")
        done
    done
done
spec=$(IFS=,; echo "${variants[*]}")
cold=$(cargo run -q --release -p bench --bin bench -- --cold-variants "$spec" --cold-starts "${COLD_STARTS:-5}" | grep '^| ')
echo "| variant | wasm raw | wasm gzip | start → first answer | first request | second request |"
echo "| --- | --- | --- | --- | --- | --- |"
for v in "${variants[@]}"; do
    label=${v%%=*}
    dir=${v#*=}
    raw=$(stat -c %s "$dir/index_bg.wasm")
    gz=$(gzip -9 -c "$dir/index_bg.wasm" | wc -c)
    row=$(grep -F "| $label |" <<<"$cold" | cut -d'|' -f3- || echo " (no cold start measured) |")
    echo "| $label | $raw | $gz |$row"
done
