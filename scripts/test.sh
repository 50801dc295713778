#!/usr/bin/env bash
# The whole test suite from a fresh clone: installs what it needs, builds once, runs the Rust
# unit tests, then the ava suite against local S3 servers (see scripts/with-s3.ts).
# Set SQLITE_S3VFS_TEST_ENDPOINT (and AWS_* credentials) to run against another endpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules/ava ] || npm ci --no-audit --no-fund
bash scripts/setup.sh
node scripts/build.mjs
cargo test --release --target x86_64-unknown-linux-gnu --lib --quiet
npx tsx scripts/with-s3.ts npx ava "$@"
