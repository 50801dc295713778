#!/usr/bin/env bash
# `npm run bench` from a fresh clone: installs what it needs (S3 server, the Python library and
# matplotlib for the chart), builds once, runs bench/run.ts. Big fixtures are kept in .bench/.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules/ava ] || npm ci --no-audit --no-fund
bash scripts/setup.sh
.venv/bin/python -c 'import matplotlib' 2>/dev/null ||
  .venv/bin/pip install --quiet --disable-pip-version-check 'matplotlib==3.10.7'
node scripts/build.mjs
# turbolite from crates.io, built once (about 13 minutes on 2 cores); BENCH_TURBOLITE=0 skips it.
if [ "${BENCH_TURBOLITE:-1}" != 0 ] && [ ! -x bench/turbolite/target/release/turbolite-bench ]; then
  (cd bench/turbolite && cargo build --release)
fi
npx tsx bench/run.ts
