#!/usr/bin/env bash
# Installs what the tests, the demo and the benchmark need, from the registries only, into
# the project's own folders (.tools/, .venv/). Idempotent: a second run does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="$PWD/.tools/bin"
mkdir -p "$TOOLS"

# The default S3 server of the tests: atomic If-None-Match (see __test__/server-qualification).
[ -x "$TOOLS/gofakes3" ] || GOBIN="$TOOLS" go install github.com/johannesboyne/gofakes3/cmd/gofakes3@v1.2.0
# A second server that verifies SigV4, for the wrong-credentials tests.
[ -x "$TOOLS/versitygw" ] || GOBIN="$TOOLS" go install github.com/versity/versitygw/cmd/versitygw@v1.7.0

# The Python library we are compatible with, for the interop tests; moto's S3 server, a third
# implementation for the server matrix (npm run test:servers).
if ! .venv/bin/python -c 'import sqlite_s3vfs, apsw, boto3, moto' 2>/dev/null; then
  [ -x .venv/bin/pip ] || python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check \
    'sqlite-s3vfs==0.0.36' 'apsw==3.54.1.0' 'boto3==1.44.8' 'moto[server]==5.2.3'
fi

# zig and cargo-zigbuild (PyPI): the native binary is built for glibc 2.17 on Linux
# (scripts/build.mjs), so the tests load what users of older distributions can load.
if [ "$(uname -s)" = Linux ] && { [ ! -x .venv/bin/cargo-zigbuild ] || ! .venv/bin/python -c 'import ziglang' 2>/dev/null; }; then
  [ -x .venv/bin/pip ] || python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check 'ziglang==0.17.1' 'cargo-zigbuild==0.24.1'
fi

# s3proxy (Java, Maven Central), the fourth: its runnable jar, checked against Maven's SHA-1.
S3PROXY=".tools/s3proxy/s3proxy-4.0.0-jar-with-dependencies.jar"
if [ ! -f "$S3PROXY" ]; then
  mkdir -p .tools/s3proxy
  url="https://repo1.maven.org/maven2/org/gaul/s3proxy/4.0.0/$(basename "$S3PROXY")"
  curl -sSfL -o "$S3PROXY.part" "$url"
  want=$(curl -sSfL "$url.sha1" | cut -c1-40)
  echo "$want  $S3PROXY.part" | sha1sum -c --quiet
  mv "$S3PROXY.part" "$S3PROXY"
fi

# The JS runtimes of the install test (__test__/install.spec.ts): Node 22 and 24, Bun and Deno,
# each a binary from the npm registry in its own folder (the system Node is the first runtime).
RT=".tools/runtimes"
os=$(node -p process.platform)
cpu=$(node -p process.arch)
runtime() { # folder, package@version, the binary's path inside the package
  if [ ! -x "$RT/$1/node_modules/$3" ]; then
    npm install --prefix "$RT/$1" --no-save --no-package-lock --no-audit --no-fund --ignore-scripts "$2" >/dev/null
  fi
}
runtime node22 "node-$os-$cpu@22.23.5" "node-$os-$cpu/bin/node"
runtime node24 "node-$os-$cpu@24.22.3" "node-$os-$cpu/bin/node"
runtime bun "@oven/bun-$os-$cpu@1.4.5" "@oven/bun-$os-$cpu/bin/bun"
libc=""
if [ "$os" = linux ]; then
  # musl's ldd exits 1 for --version: read its output, not its status.
  case "$(ldd --version 2>&1 || true)" in *musl*) libc=-musl ;; *) libc=-glibc ;; esac
fi
runtime deno "@deno/$os-$cpu$libc@2.9.6" "@deno/$os-$cpu$libc/deno"
