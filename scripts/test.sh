#!/usr/bin/env bash
# The whole test suite from a fresh clone: installs what it needs, builds once, runs the Rust
# unit tests, then the ava suite against local S3 servers (see scripts/with-s3.ts).
# Set SQLITE_S3VFS_TEST_ENDPOINT (and AWS_* credentials) to run against another endpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules/ava ] || npm ci --no-audit --no-fund
bash scripts/setup.sh
node scripts/build.mjs
# The same target, toolchain and PATH as `napi build` (zig on Linux), so nothing is rebuilt.
cargo_test=$(node scripts/build.mjs --print-cargo)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Under a local S3 server too: the store conformance suite runs against S3 (its S3 case is
# #[ignore]d in a plain `cargo test`, which has no server). Only on the servers that can hold
# what S3 holds (versitygw and s3proxy keep objects as files: `q/a` and `q/a/b` cannot both
# exist), and never on an external endpoint (it would leave a bucket behind).
ignored=()
case "${SQLITE_S3VFS_TEST_ENDPOINT:+external}${SQLITE_S3VFS_TEST_SERVER:-gofakes3}" in
  gofakes3 | moto) ignored=(--include-ignored) ;;
esac
npx tsx scripts/with-s3.ts bash -c "$cargo_test --release --lib -- ${ignored[*]:-}" 2>&1 | tee "$log"
# The package's types as users see them (strict, nodenext and bundler resolution).
npx tsc -p __test__/types/tsconfig.json
npx tsc -p __test__/types/tsconfig.bundler.json
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
