#!/usr/bin/env bash
# The long tier: the randomized differential test (__test__/differential.spec.ts) for an hour
# (DIFF_MINUTES to change it), against the same local S3 server as `npm test`. It prints how many
# sequences and operations it ran; a failure prints the seed and path that replay it.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules/ava ] || npm ci --no-audit --no-fund
bash scripts/setup.sh
node scripts/build.mjs
export DIFF_MINUTES="${DIFF_MINUTES:-60}"
npx tsx scripts/with-s3.ts npx ava --timeout "$(( DIFF_MINUTES + 10 ))m" --verbose __test__/differential.spec.ts "$@"
