// The package as npm ships it: one list of targets (package.json's `napi.targets`, the npm/
// platform packages, `optionalDependencies`, the release workflow's build matrix and the
// generated loader agree), an `exports` map whose ES module and CommonJS entry points are one
// implementation, and tarballs that hold what a user needs and nothing else. The install test
// (`install.spec.ts`) installs the packed tarballs and runs them.
import test from 'ava'
import { parseTriple } from '@napi-rs/cli'
import { execFileSync, spawnSync } from 'node:child_process'
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { publishedManifest } from '../scripts/pack'

const root = resolve(__dirname, '..')
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
const targets: string[] = pkg.napi.targets
const abi = (t: string) => parseTriple(t).platformArchABI
const sorted = (a: Iterable<string>) => [...a].sort()

test('the targets are one list: napi.targets, npm/, optionalDependencies, the workflow, the loader', (t) => {
  const wanted = sorted(targets.map(abi))
  t.is(targets.length, 7)
  t.deepEqual(sorted(readdirSync(join(root, 'npm'))), wanted, 'npm/ folders')
  for (const target of targets) {
    const p = JSON.parse(readFileSync(join(root, 'npm', abi(target), 'package.json'), 'utf8'))
    const parsed = parseTriple(target)
    t.is(p.name, `${pkg.name}-${abi(target)}`)
    t.is(p.version, pkg.version, `${p.name}: the version of the main package`)
    t.is(p.main, `${pkg.napi.binaryName}.${abi(target)}.node`)
    t.deepEqual(p.os, [parsed.platform])
    t.deepEqual(p.cpu, [parsed.arch])
    if (parsed.platform === 'linux') t.deepEqual(p.libc, [parsed.abi === 'musl' ? 'musl' : 'glibc'])
  }
  // Added at publish (napi prepublish; scripts/pack.ts does the same): every platform package.
  t.is(pkg.optionalDependencies, undefined, 'unpublished names are not asked of the registry by every install')
  t.deepEqual(publishedManifest().optionalDependencies, Object.fromEntries(targets.map((x) => [`${pkg.name}-${abi(x)}`, pkg.version])))
  const workflow = readFileSync(join(root, '.github', 'workflows', 'release.yml'), 'utf8')
  const build = workflow.slice(workflow.indexOf('  build:'), workflow.indexOf('  test:'))
  const matrix = [...build.matchAll(/- target: (\S+)/g)].map((m) => m[1])
  t.deepEqual(sorted(matrix), sorted(targets), 'the release workflow builds every target and only those')
  const loader = readFileSync(join(root, 'binding.js'), 'utf8')
  for (const target of targets) t.true(loader.includes(`'${pkg.name}-${abi(target)}'`), `the loader knows ${abi(target)}`)
  const expected = new Set([...loader.matchAll(/expected ([^ ]+) but/g)].map((m) => m[1]))
  t.deepEqual([...expected], [pkg.version], "the loader's version check names this version (scripts/version.mjs)")
})

test('import and require give the same implementation (no dual-package hazard)', async (t) => {
  const cjs = require('sqlite-s3vfs')
  const esm = await import('sqlite-s3vfs')
  t.is(esm.SqliteS3Error, cjs.SqliteS3Error)
  t.is(esm.S3Database, cjs.S3Database)
  t.deepEqual(
    Object.keys(esm)
      .filter((k) => k !== 'default' && k !== 'module.exports')
      .sort(),
    Object.keys(cjs).sort(),
  )
  t.is(pkg.exports['.'].import.default, './esm/index.mjs')
  t.is(pkg.exports['.'].require.default, './index.js')
})

test('the main tarball holds what a user needs and nothing else', (t) => {
  const [packed] = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8' }))
  const files = sorted(packed.files.map((f: { path: string }) => f.path))
  t.deepEqual(files, [
    'LICENSE',
    'README.md',
    'bin/cli.js',
    'binding.d.ts',
    'binding.js',
    'esm/index.d.mts',
    'esm/index.mjs',
    'index.d.ts',
    'index.js',
    'package.json',
  ])
  t.true(packed.unpackedSize < 300_000, `${packed.unpackedSize} bytes unpacked`)
})

test('with no binary for the platform, the error names platform, arch and libc and what to do', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 's3vfs-nobinary-'))
  try {
    for (const f of ['index.js', 'binding.js']) copyFileSync(join(root, f), join(dir, f))
    const r = spawnSync(
      process.execPath,
      ['-e', "try { require('./index.js') } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })) }"],
      {
        cwd: dir,
        encoding: 'utf8',
      },
    )
    const e = JSON.parse(r.stdout)
    t.is(e.code, 'ERR_NATIVE_BINDING')
    t.true(e.message.includes(`${process.platform}-${process.arch}`), e.message)
    if (process.platform === 'linux') t.regex(e.message, /\((glibc [\d.]+|musl)\)/)
    t.regex(e.message, /npm install/)
    t.regex(e.message, /Cannot find/, 'the loader’s own reasons are kept')
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})
