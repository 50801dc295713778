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
if [ "$(uname -s)" = Linux ] && command -v objdump >/dev/null; then
  abi=$(npx tsx -e "console.log(require('./scripts/pack').hostAbi())")
  f="sqlite-s3vfs.$abi.node"
  echo "$f: $(stat -c %s "$f") bytes, needs $(objdump -T "$f" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)"
fi
