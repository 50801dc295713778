#!/usr/bin/env bash
# The ava suite against each of the four local S3 implementations in turn (gofakes3, versitygw,
# moto, s3proxy), without the randomized, fault-proxy and crash tests (they test the engine, not
# the server, and run in npm test); writes target/servers.md (the README's table).
# Usage: npm run test:servers [-- server...]
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node scripts/build.mjs
servers=("$@")
[ ${#servers[@]} -gt 0 ] || servers=(gofakes3 versitygw moto s3proxy)
mkdir -p target
out=target/servers.md
echo "| server | passed | expected failures | failed | failed tests |" > "$out"
echo "|---|---:|---:|---:|---|" >> "$out"
files=$(ls __test__/*.spec.ts | grep -v -e differential -e servers -e faults -e crash)
for s in "${servers[@]}"; do
  log="target/servers-$s.log"
  SQLITE_S3VFS_TEST_SERVER=$s npx tsx scripts/with-s3.ts npx ava $files > "$log" 2>&1
  passed=$(grep '✔' "$log" | grep -vc 'expected fail')
  failed=$(grep -c '✘ \[fail\]' "$log")
  expected=$(sed -n 's/^ *\([0-9]*\) known failures\{0,1\}.*/\1/p' "$log" | tail -1)
  names=$(grep -o '✘ \[fail\]: .*' "$log" | sed 's/✘ \[fail\]: //; s/ Error.*//' | paste -sd ';' | sed 's/;/; /g')
  echo "| $s | ${passed:-0} | ${expected:-0} | ${failed:-0} | ${names:-} |" >> "$out"
  echo "$s: ${passed:-0} passed, ${failed:-0} failed (log: $log)"
done
cat "$out"
