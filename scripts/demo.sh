#!/usr/bin/env bash
# The demo from a fresh clone: installs and builds what it needs, starts a local S3 server,
# runs examples/demo.ts against it.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules/ava ] || npm ci --no-audit --no-fund
bash scripts/setup.sh
node scripts/build.mjs
npx tsx scripts/with-s3.ts npx tsx examples/demo.ts
