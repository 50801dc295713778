// The `sqlite-s3vfs` command line, run as users run it (a child process of bin/cli.js), on the
// local directory store (no server) and on the test S3 server: import, query in every format,
// info, export back to a byte-identical file, gc; usage errors exit 2, runtime errors exit 1 with
// one coded line on stderr and no stack trace; nothing but results on stdout.
import test from 'ava'
import Database from 'better-sqlite3'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { endpoint, freshBucket, region } from './helpers/s3'

const CLI = resolve(__dirname, '..', 'bin', 'cli.js')
const dir = mkdtempSync(join(tmpdir(), 's3vfs-cli-'))
test.after.always(() => rmSync(dir, { recursive: true, force: true }))

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, NODE_NO_WARNINGS: '1' } })
  return { code: r.status, out: r.stdout, err: r.stderr }
}

const source = join(dir, 'source.sqlite')
test.before(() => {
  const db = new Database(source)
  db.exec(
    "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, n REAL, b BLOB); INSERT INTO t(name, n, b) VALUES ('a,b', 1.5, x'01'), ('q\"x', NULL, NULL)",
  )
  db.close()
})

for (const [label, address] of [
  ['local directory', () => `file://${dir}/store/bucket/db.sqlite`],
  ['S3', () => `s3://${bucket}/cli/db.sqlite`],
] as const) {
  test.serial(`${label}: import, query (table, --json, --nl, --csv, params), info, export, gc`, async (t) => {
    const url = address()
    const s3 = label === 'S3' ? ['--endpoint', endpoint, '--region', region] : []
    const imported = cli('import', source, url, '--layout', 'versioned', ...s3)
    t.is(imported.code, 0, imported.err)
    t.is(imported.out, '', 'nothing on stdout')
    t.regex(imported.err, /imported 8192 bytes/)
    t.is(cli('import', source, url, ...s3).code, 1, 'an existing database is not replaced without --overwrite')
    t.is(cli('import', source, url, '--overwrite', '--quiet', ...s3).err, '')

    const json = cli('query', url, 'SELECT * FROM t ORDER BY id', '--json', ...s3)
    t.deepEqual(JSON.parse(json.out), [
      { id: 1, name: 'a,b', n: 1.5, b: 'AQ==' },
      { id: 2, name: 'q"x', n: null, b: null },
    ])
    const nl = cli('query', url, 'SELECT id, name FROM t WHERE id = ?', '2', '--nl', ...s3)
    t.deepEqual(
      nl.out
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l)),
      [{ id: 2, name: 'q"x' }],
    )
    t.is(cli('query', url, 'SELECT id, name, b FROM t ORDER BY id', '--csv', ...s3).out, 'id,name,b\n1,"a,b",x\'01\'\n2,"q""x",\n')
    const table = cli('query', url, 'SELECT id, name FROM t ORDER BY id', ...s3)
    t.regex(table.out, /│ id │ name │/)
    t.regex(table.out, /│ 2  │ q"x  │/)

    const info = JSON.parse(cli('info', url, '--json', ...s3).out)
    t.like(info, { layout: 'versioned', pageSize: 4096, pageCount: 2, databaseSize: 8192, oldestVersion: 1 })
    t.true(info.version >= 1 && info.objects >= 2 && info.bytesStored >= 8192, JSON.stringify(info))
    // Two imports (the second with --overwrite): versions 1 and 2, each with its creation time.
    const versions = JSON.parse(cli('versions', url, '--json', ...s3).out)
    t.deepEqual(
      versions.map((v: { version: number; pruned: boolean }) => [v.version, v.pruned]),
      [
        [1, false],
        [2, false],
      ],
    )
    t.true(versions.every((v: { created: string }) => !Number.isNaN(Date.parse(v.created))))
    t.regex(cli('versions', url, ...s3).out, /│ version │ created/)

    const out = join(dir, `${label.replace(/\W/g, '')}.sqlite`)
    const exported = cli('export', url, out, ...s3)
    t.is(exported.code, 0, exported.err)
    t.true(readFileSync(out).equals(readFileSync(source)), 'the export is byte-identical to the imported file')
    const stdout = spawnSync(process.execPath, [CLI, 'export', url, '-', ...s3], { env: { ...process.env, NODE_NO_WARNINGS: '1' } })
    t.true(stdout.stdout.equals(readFileSync(source)), 'export to stdout')

    // A dry run reports what a run would do, and changes nothing.
    const before = JSON.parse(cli('info', url, '--json', ...s3).out)
    const dry = cli('gc', url, '--keep', '1', '--grace-ms', '0', '--unsafe-short-grace', '--dry-run', ...s3)
    t.is(dry.code, 0, dry.err)
    if (label === 'local directory') {
      const { existsSync } = await import('node:fs')
      t.false(existsSync(join(dir, 'store', 'bucket', 'db%2Esqlite', '%2Eclock')), 'a dry run writes nothing, not even the clock probe')
    }
    const planned = JSON.parse(dry.out)
    t.like(planned, { versionsKept: 1, versionsPruned: 1 })
    t.deepEqual(JSON.parse(cli('info', url, '--json', ...s3).out), before)
    const gc = cli('gc', url, '--keep', '1', '--grace-ms', '0', '--unsafe-short-grace', ...s3)
    t.is(gc.code, 0, gc.err)
    t.deepEqual(JSON.parse(gc.out), planned, 'the run did what the dry run said')
    const after = JSON.parse(cli('versions', url, '--json', ...s3).out)
    t.deepEqual(
      after.map((v: { version: number; pruned: boolean }) => [v.version, v.pruned]),
      [
        [1, true],
        [2, false],
      ],
    )
  })
}

let bucket = ''
test.before(async () => {
  bucket = await freshBucket('cli')
})

test('usage errors exit 2, runtime errors exit 1 with a coded line and no stack', (t) => {
  t.is(cli().code, 2)
  t.is(cli('--help').code, 0)
  t.is(cli('query', '--help').code, 0)
  const unknown = cli('frobnicate')
  t.is(unknown.code, 2)
  t.regex(unknown.err, /unknown command: frobnicate/)
  t.is(cli('query', 'not-an-address', 'SELECT 1').code, 2)
  t.is(cli('query', `file://${dir}/store/bucket/x.sqlite`, 'SELECT 1', '--no-such-flag').code, 2)
  const failed = cli('query', `file://${dir}/store/bucket/x.sqlite`, 'SELECT * FROM missing')
  t.is(failed.code, 1)
  t.is(failed.err, 'sqlite-s3vfs: [SQLITE_ERROR] no such table: missing\n')
  t.notRegex(failed.err, /at .*\.js/, 'no stack trace without --debug')
  const debug = cli('query', `file://${dir}/store/bucket/x.sqlite`, 'SELECT * FROM missing', '--debug')
  t.regex(debug.err, /at /)
  const none = cli('info', `file://${dir}/store/bucket/never.sqlite`)
  t.is(none.code, 1)
  t.regex(none.err, /\[ERR_NOT_FOUND\] no database at/)
  // An export of nothing fails, and never replaces an earlier export.
  const { writeFileSync, readFileSync: read } = require('node:fs') as typeof import('node:fs')
  const backup = join(dir, 'backup.sqlite')
  writeFileSync(backup, 'earlier backup')
  const nothing = cli('export', `file://${dir}/store/bucket/typo.sqlite`, backup)
  t.is(nothing.code, 1)
  t.regex(nothing.err, /\[ERR_NOT_FOUND\] no database at/)
  t.is(read(backup, 'utf8'), 'earlier backup')
  t.is(cli('gc', `file://${dir}/store/bucket/typo.sqlite`).code, 1)
  // A flag another command takes is a usage error here, never silently ignored.
  const stray = cli('export', `file://${dir}/store/bucket/x.sqlite`, backup, '--at-version', '1')
  t.is(stray.code, 2)
  t.regex(stray.err, /export does not take --at-version/)
  // An input that cannot be read is one coded line.
  const folder = cli('import', dir, `file://${dir}/store/bucket/z.sqlite`)
  t.is(folder.code, 1)
  t.regex(folder.err, /^sqlite-s3vfs: \[EISDIR\]/)
  t.notRegex(folder.err, /\n\s+at /)
  // JSON cell by cell (a row that looks like a serialized Buffer stays itself); parameters that
  // are not plain decimals stay text.
  const odd = cli(
    'query',
    `file://${dir}/store/bucket/x.sqlite`,
    "SELECT 'Buffer' AS type, 'abc' AS data, ? AS p, ? AS q, ? AS r",
    '007',
    '12345678901234567890',
    '1.5',
    '--json',
  )
  t.deepEqual(JSON.parse(odd.out), [{ type: 'Buffer', data: 'abc', p: '007', q: '12345678901234567890', r: 1.5 }])
  const missing = cli('import', join(dir, 'nope.sqlite'), `file://${dir}/store/bucket/y.sqlite`)
  t.is(missing.code, 1)
  t.regex(missing.err, /^sqlite-s3vfs: \[ENOENT\]/)
})

test('shell: statements over several lines, dot commands, errors that keep the shell, .quit', (t) => {
  const url = `file://${dir}/store/bucket/shell.sqlite`
  const input = [
    'CREATE TABLE t(x);',
    'INSERT INTO t VALUES (1),',
    '(2);',
    'SELECT count(*) AS n',
    '  FROM t;',
    'SELECT * FROM nope;',
    '.tables',
    '.schema t',
    '.stats',
    '.bogus',
    '.quit',
    'SELECT 99 AS after_quit;',
  ].join('\n')
  const r = spawnSync(process.execPath, [CLI, 'shell', url], {
    input,
    encoding: 'utf8',
    env: { ...process.env, NODE_NO_WARNINGS: '1', HOME: dir },
  })
  t.is(r.status, 0, r.stderr)
  t.regex(r.stdout, /2 rows changed/)
  t.regex(r.stdout, /│ n │\n├───┤\n│ 2 │/)
  t.regex(r.stdout, /error: \[SQLITE_ERROR\] no such table: nope/)
  t.regex(r.stdout, /^t$/m)
  t.regex(r.stdout, /^CREATE TABLE t\(x\);$/m)
  t.regex(r.stdout, /│ get/)
  t.regex(r.stdout, /unknown command \.bogus/)
  t.notRegex(r.stdout, /after_quit/, 'nothing runs after .quit')
})
