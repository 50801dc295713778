// The install test: the package as `npm install sqlite-s3vfs` gives it to a user. Both tarballs
// (the main package, and this machine's platform package with the binary built by this run) are
// packed and installed into a fresh project with cargo, rustc, go and python shadowed on PATH;
// from there an ES module (`import`, versioned layout) and a CommonJS file (`require`,
// sqlite-s3vfs layout) each create a database, write in a transaction, query, serialize and
// catch a coded error, on every runtime `scripts/setup.sh` installs: this Node, Node 22 and 24,
// Bun and Deno. The binary's glibc need is checked with `objdump -T`. Writes target/install.md.
import test from 'ava'
import { execFileSync, spawnSync } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, join, resolve } from 'node:path'
import { hostAbi, packTarballs, type Packed } from '../scripts/pack'
import { endpoint, freshBucket, region } from './helpers/s3'

const root = resolve(__dirname, '..')
const abi = hostAbi()
const work = mkdtempSync(join(tmpdir(), 's3vfs-install-'))
const app = join(work, 'app')
const runtimes = join(root, '.tools', 'runtimes')
const nodePkg = `node-${process.platform}-${process.arch}`

/** The runtimes to run the smoke tests on: [name, binary, args before the script].
 *  SQLITE_S3VFS_INSTALL_RUNTIMES=node limits them to this Node (the release workflow's runners). */
const ALL_RUNTIMES: [string, string, string[]][] = [
  [`node ${process.version}`, process.execPath, []],
  ['node 22', join(runtimes, 'node22', 'node_modules', nodePkg, 'bin', 'node'), []],
  ['node 24', join(runtimes, 'node24', 'node_modules', nodePkg, 'bin', 'node'), []],
  ['bun', join(runtimes, 'bun', 'node_modules', '@oven', `bun-${process.platform}-${process.arch}`, 'bin', 'bun'), []],
  [
    'deno',
    join(runtimes, 'deno', 'node_modules', '@deno', `${abi.replace(/-gnu$/, '-glibc')}`, 'deno'),
    ['run', '--allow-ffi', '--allow-env', '--allow-net', '--allow-read', '--allow-sys'],
  ],
]
const RUNTIMES = process.env.SQLITE_S3VFS_INSTALL_RUNTIMES === 'node' ? ALL_RUNTIMES.slice(0, 1) : ALL_RUNTIMES

/** PATH for the user's project: stubs that fail in place of the toolchains, and none of the
 *  folders the toolchains live in. */
function sandboxPath(): string {
  const stubs = join(work, 'no-toolchains')
  mkdirSync(stubs, { recursive: true })
  for (const tool of ['cargo', 'rustc', 'rustup', 'go', 'python', 'python3', 'pip']) {
    writeFileSync(join(stubs, tool), `#!/bin/sh\necho "${tool}: not available in the install test" >&2\nexit 127\n`)
    chmodSync(join(stubs, tool), 0o755)
  }
  const dropped = /cargo|rustup|\/go\/|go\/bin|pyenv|\.venv|python/i
  return [stubs, ...(process.env.PATH ?? '').split(delimiter).filter((d) => !dropped.test(d))].join(delimiter)
}

const env: NodeJS.ProcessEnv = { ...process.env, PATH: sandboxPath(), npm_config_update_notifier: 'false' }
// A binary named by the environment would bypass the installed packages.
delete env.NAPI_RS_NATIVE_LIBRARY_PATH

/** npm, run by this Node (the sandbox's PATH may not have it where the system keeps it). */
function npmCommand(): string[] {
  const npmCli = join(resolve(process.execPath, '..', '..'), 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js')
  return existsSync(npmCli) ? [process.execPath, npmCli] : ['npm']
}
let packed: Packed
let bucket = ''
const figures: string[] = []

/** What both smoke programs do once they hold the package, inside an async function or an ES
 *  module's top level: create, write in a transaction, query, serialize, catch a coded error. */
const SMOKE = (dbOptions: string, report: string) => `
  const db = new S3Database(process.env.BUCKET, process.env.PREFIX, ${dbOptions})
  await db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)')
  await db.transaction(async (tx) => { for (let i = 0; i < 10; i++) await tx.run('INSERT INTO t(v) VALUES (?)', ['row ' + i]) })
  const { n } = await db.get('SELECT count(*) AS n FROM t')
  let bytes = 0, header = ''
  for await (const chunk of db.serialize()) { if (!header) header = Buffer.from(chunk).subarray(0, 15).toString(); bytes += chunk.length }
  let code = ''
  try { await db.run('INSERT INTO t(id) VALUES (1)') } catch (e) { code = e instanceof SqliteS3Error ? e.code : 'not a SqliteS3Error' }
  await db.close()
  console.log(JSON.stringify({ runtime, n, bytes, header, code, ${report} }))
`
const S3 = 's3: { endpoint: process.env.ENDPOINT, region: process.env.REGION }'

const ESM = `
import { S3Database, SqliteS3Error } from 'sqlite-s3vfs'
import { createRequire } from 'node:module'
const same = createRequire(import.meta.url)('sqlite-s3vfs').SqliteS3Error === SqliteS3Error
const runtime = typeof Bun !== 'undefined' ? 'bun ' + Bun.version : typeof Deno !== 'undefined' ? 'deno ' + Deno.version.deno : 'node ' + process.version
${SMOKE(`{ layout: 'versioned', ${S3} }`, 'same, version: db.version')}`

const CJS = `
const { S3Database, SqliteS3Error, defaults } = require('sqlite-s3vfs')
const runtime = typeof Bun !== 'undefined' ? 'bun ' + Bun.version : 'node ' + process.version
;(async () => {
${SMOKE(`{ layout: 'sqlite-s3vfs', blockSize: defaults.compatBlockSize, ${S3} }`, 'same: true, version: 0')}
})().catch((e) => { console.error(e); process.exit(1) })
`

test.before(async () => {
  bucket = await freshBucket('install')
  packed = packTarballs(join(work, 'tarballs'), abi)
  mkdirSync(app)
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }))
  writeFileSync(join(app, 'esm.mjs'), ESM)
  writeFileSync(join(app, 'cjs.cjs'), CJS)
  const npm = npmCommand()
  execFileSync(npm[0], [...npm.slice(1), 'install', '--no-audit', '--no-fund', packed.main, packed.platform], {
    cwd: app,
    env,
    stdio: 'pipe',
  })
  for (const f of [packed.main, packed.platform]) {
    const files = execFileSync('tar', ['tzf', f], { encoding: 'utf8' }).trim().split('\n')
    figures.push(
      `| ${f.split('/').pop()} | ${(statSync(f).size / 1e6).toFixed(2)} MB | ${files.length} files: ${files.map((x) => x.replace(/^package\//, '')).join(', ')} |`,
    )
  }
})

test.after.always(() => {
  if (figures.length) {
    mkdirSync(join(root, 'target'), { recursive: true })
    writeFileSync(join(root, 'target', 'install.md'), ['| what | size | contents |', '|---|---:|---|', ...figures, ''].join('\n'))
  }
  rmSync(work, { recursive: true, force: true })
})

test('the install resolves every dependency and runs no build step', (t) => {
  // The main package's optional dependency on this platform's package is what npm resolved.
  const ls = spawnSync(npmCommand()[0], [...npmCommand().slice(1), 'ls', '--all', '--json'], { cwd: app, env, encoding: 'utf8' })
  t.is(ls.status, 0, ls.stdout + ls.stderr)
  const tree = JSON.parse(ls.stdout)
  t.is(
    tree.dependencies['sqlite-s3vfs'].dependencies?.[`sqlite-s3vfs-${abi}`]?.version ?? tree.dependencies[`sqlite-s3vfs-${abi}`]?.version,
    tree.dependencies['sqlite-s3vfs'].version,
  )
  for (const dir of ['sqlite-s3vfs', `sqlite-s3vfs-${abi}`]) {
    const manifest = JSON.parse(readFileSync(join(app, 'node_modules', dir, 'package.json'), 'utf8'))
    for (const hook of ['preinstall', 'install', 'postinstall']) t.is(manifest.scripts?.[hook], undefined, `${dir} has a ${hook} script`)
    t.falsy(manifest.gypfile)
  }
  t.is(
    JSON.parse(readFileSync(join(app, 'node_modules', 'sqlite-s3vfs', 'package.json'), 'utf8')).optionalDependencies[`sqlite-s3vfs-${abi}`],
    tree.dependencies['sqlite-s3vfs'].version,
  )
})

test('the command line is installed as the package bin and runs', (t) => {
  const bin = join(app, 'node_modules', '.bin', 'sqlite-s3vfs')
  const help = spawnSync(bin, ['--help'], { cwd: app, env, encoding: 'utf8' })
  t.is(help.status, 0, help.stderr)
  t.regex(help.stdout, /Usage: sqlite-s3vfs <command>/)
  const url = `file://${work}/cli-store/bucket/db.sqlite`
  t.is(
    spawnSync(bin, ['import', '-', url], { cwd: app, env, input: readFileSync(join(root, 'README.md')), encoding: 'utf8' }).status,
    1,
    'not a database',
  )
  const q = spawnSync(bin, ['query', url, 'SELECT 41 + 1 AS answer', '--json'], { cwd: app, env, encoding: 'utf8' })
  t.deepEqual(JSON.parse(q.stdout), [{ answer: 42 }])
})

test('the toolchains are out of reach of the install', (t) => {
  for (const tool of ['cargo', 'rustc', 'go', 'python3']) {
    const r = spawnSync(tool, ['--version'], { env, encoding: 'utf8' })
    t.is(r.status, 127, `${tool} ran in the sandbox`)
    t.regex(r.stderr, /not available in the install test/)
  }
  t.true(existsSync(join(app, 'node_modules', 'sqlite-s3vfs', 'esm', 'index.mjs')))
  t.false(existsSync(join(app, 'node_modules', 'sqlite-s3vfs', 'src-rs')), 'no sources in the tarball')
})

const installedBinary = () => join(app, 'node_modules', `sqlite-s3vfs-${abi}`, `sqlite-s3vfs.${abi}.node`)

// Only a glibc Linux has a glibc need to check (musl, macOS and Windows link no glibc).
;(abi.endsWith('-gnu') ? test : test.skip)('the installed binary needs at most glibc 2.17', (t) => {
  const symbols = execFileSync('objdump', ['-T', installedBinary()], { encoding: 'utf8' })
  const versions = [
    ...new Set([...symbols.matchAll(/GLIBC_(\d+)\.(\d+)(?:\.(\d+))?/g)].map((m) => [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)])),
  ]
  const newest = versions.sort((a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2]).pop()!
  const size = statSync(installedBinary()).size
  figures.push(`| ${`sqlite-s3vfs.${abi}.node`} (installed) | ${(size / 1e6).toFixed(2)} MB | needs glibc ${newest.join('.')} |`)
  // Built against glibc 2.17 (what the README promises); Amazon Linux 2 has 2.26.
  t.true(newest[0] === 2 && newest[1] <= 17, `needs GLIBC_${newest.join('.')}`)
})

for (const [name, binary, args] of RUNTIMES) {
  for (const [kind, file, layoutVersion] of [
    ['ES module', 'esm.mjs', true],
    ['CommonJS', 'cjs.cjs', false],
  ] as const) {
    if (name === 'deno' && kind === 'CommonJS') continue
    test(`${name}: ${kind} creates, writes in a transaction, queries and serializes`, (t) => {
      t.true(existsSync(binary), `${binary} is missing: run scripts/setup.sh`)
      const prefix = `${name.replace(/\W/g, '-')}-${file}/db.sqlite`
      const r = spawnSync(binary, [...args, file], {
        cwd: app,
        env: { ...env, ENDPOINT: endpoint, REGION: region, BUCKET: bucket, PREFIX: prefix, NODE_NO_WARNINGS: '1' },
        encoding: 'utf8',
        timeout: 120_000,
      })
      t.is(r.status, 0, `${name} ${file}: ${r.stderr}`)
      const out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}')
      t.is(out.n, 10)
      t.is(out.header, 'SQLite format 3')
      t.true(out.bytes >= 8192 && out.bytes % 4096 === 0, `${out.bytes} bytes serialized`)
      t.is(out.code, 'SQLITE_CONSTRAINT_PRIMARYKEY')
      t.true(out.same, 'import and require give the same SqliteS3Error')
      if (layoutVersion) t.true(out.version >= 2)
      figures.push(`| ${kind} on ${out.runtime} | – | passed |`)
    })
  }
}
