#!/usr/bin/env bash
# The command line in a script: import a local SQLite file, query it as JSON and read that with
# node (jq works as well), export it back, and check that the copy is the same file.
#
#   examples/cli.sh orders.sqlite s3://my-bucket/examples/cli.sqlite
# SQLITE_S3VFS names the command (default: npx sqlite-s3vfs).
set -euo pipefail
file="$1"
url="$2"
cli=${SQLITE_S3VFS:-npx sqlite-s3vfs}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

$cli import "$file" "$url" --overwrite --quiet
$cli query "$url" "SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name" --json |
  node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => console.log("tables:", JSON.parse(s).map((r) => r.name).join(", ")))'
$cli query "$url" "SELECT count(*) AS n FROM sqlite_schema" --nl
$cli export "$url" "$work/copy.sqlite" --quiet
cmp "$file" "$work/copy.sqlite" && echo "the export is byte-identical to $file"
