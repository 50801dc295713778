#!/usr/bin/env bash
# The whole test suite from a fresh clone: installs what it needs, builds once, runs the Rust
# unit tests, then the ava suite against local S3 servers (see scripts/with-s3.ts).
# Set SQLITE_S3VFS_TEST_ENDPOINT (and AWS_* credentials) to run against another endpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules/ava ] || npm ci --no-audit --no-fund
bash scripts/setup.sh
node scripts/build.mjs
# Same target directory as `napi build` (which passes --target), so no dependency is rebuilt.
host=$(rustc -vV | sed -n 's/^host: //p')
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --release --target "$host" --lib 2>&1 | tee "$log"
set +e
npx tsx scripts/with-s3.ts npx ava "$@" 2>&1 | tee -a "$log"
status=${PIPESTATUS[0]}
set -e
# One summary line for both runners.
rust_passed=$(sed -n 's/^test result: .* \([0-9]*\) passed; \([0-9]*\) failed.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
rust_failed=$(sed -n 's/^test result: .* \([0-9]*\) passed; \([0-9]*\) failed.*/\2/p' "$log" | awk '{s+=$1} END {print s+0}')
ava_passed=$(sed -n 's/^ *\([0-9]*\) tests\{0,1\} passed.*/\1/p' "$log" | tail -1)
ava_failed=$(sed -n 's/^ *\([0-9]*\) tests\{0,1\} failed.*/\1/p' "$log" | tail -1)
echo "$(( ${rust_passed:-0} + ${ava_passed:-0} )) passed, $(( ${rust_failed:-0} + ${ava_failed:-0} )) failed"
exit "$status"
