#!/usr/bin/env bash
# `npm run package`: this machine's binary in the distribution profile (LTO, one codegen unit,
# stripped; glibc 2.17 on Linux through zig, see scripts/build.mjs), and the npm tarballs of the
# main package and of this machine's platform package, in dist/. Prints their sizes and the
# binary's glibc need.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules/ava ] || npm ci --no-audit --no-fund
bash scripts/setup.sh
SQLITE_S3VFS_PROFILE=dist node scripts/build.mjs
rm -rf dist
npx tsx scripts/pack.ts dist
for f in *.node; do
  if command -v objdump >/dev/null && [ "$(uname -s)" = Linux ]; then
    echo "$f needs $(objdump -T "$f" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)"
  fi
done
