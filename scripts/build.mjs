// Builds the native addon (napi) and the TypeScript API. Cargo rebuilds only what changed.
//
// On a glibc Linux the binary is built for glibc 2.17 with zig (`cargo zigbuild`, both from PyPI
// into .venv by scripts/setup.sh), as napi-rs's own packages are: what the tests load is what
// users of Amazon Linux 2, Ubuntu 20.04 or Debian 11 can load. SQLITE_S3VFS_PROFILE=dist builds
// the distribution profile (`npm run package`). `node scripts/build.mjs --print-cargo` prints the
// cargo command and environment the Rust unit tests must use to share the build.
import { execFileSync, execSync } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { delimiter, dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const profile = process.env.SQLITE_S3VFS_PROFILE ?? 'release'
process.report.excludeNetwork = true
const glibc = process.platform === 'linux' && Boolean(process.report.getReport().header.glibcVersionRuntime)
const arch = { x64: 'x86_64', arm64: 'aarch64' }[process.arch]

/** PATH with zig and cargo-zigbuild (.venv) first. */
function zigPath() {
  const venv = join(root, '.venv')
  const lib = join(venv, 'lib')
  const py = existsSync(lib) ? readdirSync(lib).find((d) => d.startsWith('python')) : undefined
  const zigDir = py ? join(lib, py, 'site-packages', 'ziglang') : ''
  if (!existsSync(join(zigDir, 'zig')) || !existsSync(join(venv, 'bin', 'cargo-zigbuild'))) {
    throw new Error('zig and cargo-zigbuild are missing from .venv: run scripts/setup.sh')
  }
  return [join(venv, 'bin'), zigDir, process.env.PATH].join(delimiter)
}

const zig = glibc && arch !== undefined
const target = zig ? `${arch}-unknown-linux-gnu.2.17` : undefined
const env = zig ? { ...process.env, PATH: zigPath() } : process.env

if (process.argv.includes('--print-cargo')) {
  // For scripts/test.sh: `cargo-zigbuild test` with the same target and PATH shares the build.
  const host = execFileSync('rustc', ['-vV'], { encoding: 'utf8' }).match(/^host: (\S+)$/m)[1]
  console.log(zig ? `PATH='${env.PATH}' cargo-zigbuild test --target ${target}` : `cargo test --target ${host}`)
  process.exit(0)
}

const run = (cmd) => execSync(cmd, { stdio: 'inherit', cwd: root, env })
const profileFlag = profile === 'release' ? '--release' : `--profile ${profile}`
run(`npx napi build --platform ${profileFlag} ${zig ? `-x --target ${target}` : ''} --js binding.js --dts binding.d.ts`)
run('npx tsc -p tsconfig.json')
