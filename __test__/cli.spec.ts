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
    t.like(info, { layout: 'versioned', pageSize: 4096, pageCount: 2, databaseSize: 8192, oldestVersion: 1, blockSize: 262144 })
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
    const dry = cli('gc', url, '--keep', '1', '--grace', '0', '--unsafe-short-grace', '--dry-run', ...s3)
    t.is(dry.code, 0, dry.err)
    if (label === 'local directory') {
      const { existsSync } = await import('node:fs')
      t.false(existsSync(join(dir, 'store', 'bucket', 'db%2Esqlite', '%2Eclock')), 'a dry run writes nothing, not even the clock probe')
    }
    const planned = JSON.parse(dry.out)
    t.like(planned, { versionsKept: 1, versionsPruned: 1 })
    t.deepEqual(JSON.parse(cli('info', url, '--json', ...s3).out), before)
    const gc = cli('gc', url, '--keep', '1', '--grace', '0', '--unsafe-short-grace', ...s3)
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
  const stray = cli('export', `file://${dir}/store/bucket/x.sqlite`, backup, '--json')
  t.is(stray.code, 2)
  t.regex(stray.err, /export does not take --json/)
  t.regex(cli('gc', `file://${dir}/store/bucket/x.sqlite`, '--grace', 'soon').err, /--grace must be a duration/)
  t.is(cli('gc', `file://${dir}/store/bucket/x.sqlite`, '--grace', 'soon').code, 2)
  t.is(cli('query', `file://${dir}/store/bucket/x.sqlite`, 'SELECT 1', '--dir', dir).code, 2, '--dir goes with s3:// only')
  // Flags that would do the wrong thing are usage errors, found before any request: an empty
  // --dir (an unset variable) must not fall back to S3; S3 flags beside --dir; a horizon that
  // would wrap; a keep or version of 0; a short grace without its opt-in.
  const usage = (...args: string[]) => {
    const r = cli(...args)
    t.is(r.code, 2, `${args.join(' ')}: ${r.err}`)
    return r.err
  }
  t.regex(usage('query', 's3://b/p', 'SELECT 1', '--dir', ''), /--dir needs a path/)
  t.regex(usage('query', 's3://b/p', 'SELECT 1', '--dir', dir, '--endpoint', 'http://127.0.0.1:1'), /--endpoint does not apply/)
  t.regex(usage('gc', 's3://b/p', '--dir', dir, '--grace', '99999999999999999999'), /--grace must be a duration/)
  t.regex(usage('gc', 's3://b/p', '--dir', dir, '--grace', '300000000y'), /--grace must be a duration/)
  t.regex(usage('gc', 's3://b/p', '--dir', dir, '--keep', '0'), /--keep must be an integer >= 1/)
  t.regex(usage('gc', 's3://b/p', '--dir', dir, '--grace', '10m'), /needs --unsafe-short-grace/)
  t.regex(usage('query', 's3://b/p', 'SELECT 1', '--dir', dir, '--version', '0'), /--version must be an integer >= 1/)
  t.regex(cli('--quiet', '--version').out, /^\d+\.\d+\.\d+\n$/)
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

test('progress bars: on a terminal (a pseudo-terminal by script(1)) for import, export and gc; none when piped', (t) => {
  const big = join(dir, 'big.sqlite')
  const db = new Database(big)
  db.exec(
    'CREATE TABLE t(x); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) INSERT INTO t SELECT randomblob(1000) FROM n',
  )
  db.close()
  const url = `file://${dir}/store/bucket/progress.sqlite`
  const copy = join(dir, 'progress-copy.sqlite')
  // script(1) runs the command on a pseudo-terminal and copies what it shows to stdout.
  const tty = (...args: string[]) => {
    const r = spawnSync('script', ['-qec', [process.execPath, CLI, ...args].join(' '), '/dev/null'], {
      encoding: 'utf8',
      env: { ...process.env, NODE_NO_WARNINGS: '1' },
    })
    return { code: r.status, shown: r.stdout }
  }
  const bytes = readFileSync(big).length
  const imported = tty('import', big, url)
  t.is(imported.code, 0, imported.shown)
  t.true(imported.shown.includes(`100% | ${bytes}/${bytes} bytes | `), imported.shown)
  t.regex(imported.shown, /MB\/s \| ETA \d+s/)
  t.regex(imported.shown, /imported \d+ bytes into/)
  t.true(imported.shown.includes('█'), 'a bar')
  const exported = tty('export', url, copy)
  t.is(exported.code, 0, exported.shown)
  t.true(exported.shown.includes(`100% | ${bytes}/${bytes} bytes | `), exported.shown)
  t.true(readFileSync(copy).equals(readFileSync(big)))
  t.is(tty('import', big, url, '--overwrite').code, 0)
  const gc = tty('gc', url, '--grace', '0', '--unsafe-short-grace')
  t.is(gc.code, 0, gc.shown)
  const bar = /100% \| (\d+)\/\1 objects \| \d+ objects\/s/.exec(gc.shown)
  t.truthy(bar, gc.shown)
  const report = JSON.parse(/\{.*\}/.exec(gc.shown)![0])
  t.true(report.objectsDeleted > 0 && report.objectsDeleted === Number(bar?.[1]), JSON.stringify(report))
  // --quiet on a terminal: no bar.
  t.notRegex(tty('export', url, copy, '--quiet').shown, /%|ETA|█/)
  // Piped (stderr not a terminal): no bar, only the closing line.
  const piped = cli('import', big, url, '--overwrite')
  t.is(piped.code, 0)
  t.is(piped.err, `imported ${bytes} bytes into ${url}\n`)
  const pipedExport = cli('export', url, copy)
  t.is(pipedExport.err, '')
})

test('query --json and --nl give what better-sqlite3 gives on the same file (seeded random rows)', (t) => {
  const seed = Number(process.env.CLI_SEED ?? Date.now() % 100000)
  let state = seed
  const random = () => (state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31
  const pick = (): unknown => {
    const r = random()
    if (r < 0.15) return null
    if (r < 0.35) return Math.floor(random() * 2 ** 40) - 2 ** 39
    if (r < 0.55) return (random() - 0.5) * 1e6
    if (r < 0.85)
      return Array.from({ length: Math.floor(random() * 12) }, () => String.fromCodePoint(32 + Math.floor(random() * 400))).join('')
    return Buffer.from(Array.from({ length: Math.floor(random() * 9) }, () => Math.floor(random() * 256)))
  }
  const file = join(dir, `random-${seed}.sqlite`)
  const local = new Database(file)
  local.exec('CREATE TABLE r(a, b, c, "d e")')
  const insert = local.prepare('INSERT INTO r VALUES (?, ?, ?, ?)')
  for (let i = 0; i < 200; i++) insert.run(pick(), pick(), pick(), pick())
  const sql = 'SELECT rowid, * FROM r ORDER BY rowid'
  const expected = local
    .prepare(sql)
    .all()
    .map((row) => Object.fromEntries(Object.entries(row as object).map(([k, v]) => [k, Buffer.isBuffer(v) ? v.toString('base64') : v])))
  local.close()
  const url = `file://${dir}/store/bucket/random-${seed}.sqlite`
  t.is(cli('import', file, url).code, 0)
  const json = cli('query', url, sql, '--json')
  t.is(json.code, 0, json.err)
  t.deepEqual(JSON.parse(json.out), expected, `seed ${seed} (replay with CLI_SEED=${seed})`)
  const nl = cli('query', url, sql, '--nl')
  t.deepEqual(
    nl.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l)),
    expected,
    `seed ${seed}`,
  )
})

test('a wrong bucket, a missing database and a bad statement each exit 1 with one coded line', (t) => {
  const sigv4 = process.env.SQLITE_S3VFS_TEST_SIGV4_ENDPOINT
  if (!sigv4) throw new Error('SQLITE_S3VFS_TEST_SIGV4_ENDPOINT is not set: run with npm test')
  // A server that does not create buckets on first use (the main test server may).
  const env = {
    ...process.env,
    NODE_NO_WARNINGS: '1',
    AWS_ACCESS_KEY_ID: process.env.SQLITE_S3VFS_TEST_SIGV4_KEY ?? '',
    AWS_SECRET_ACCESS_KEY: process.env.SQLITE_S3VFS_TEST_SIGV4_SECRET ?? '',
  }
  const run = (...args: string[]) => {
    const r = spawnSync(process.execPath, [CLI, ...args, '--endpoint', sigv4, '--region', 'us-east-1'], { encoding: 'utf8', env })
    return { code: r.status, err: r.stderr, out: r.stdout }
  }
  for (const command of [
    ['query', 's3://no-such-bucket-here/db.sqlite', 'SELECT 1'],
    ['info', 's3://no-such-bucket-here/db.sqlite'],
    ['import', source, 's3://no-such-bucket-here/db.sqlite'],
  ]) {
    const r = run(...command)
    t.is(r.code, 1, `${command[0]}: ${r.err}`)
    t.regex(r.err, /^sqlite-s3vfs: \[NoSuchBucket\] [^\n]*\n$/, command[0])
    t.is(r.out, '')
  }
  const missing = cli('info', `file://${dir}/store/bucket/missing.sqlite`)
  t.is(missing.code, 1)
  t.regex(missing.err, /^sqlite-s3vfs: \[ERR_NOT_FOUND\] [^\n]*\n$/)
  const bad = cli('query', `file://${dir}/store/bucket/missing.sqlite`, 'SELEC 1')
  t.is(bad.code, 1)
  t.regex(bad.err, /^sqlite-s3vfs: \[SQLITE_ERROR\] near "SELEC": syntax error[^\n]*\n$/)
})

test('--dir with a prefix of several segments, query --version N, export --version N, --version, rows changed', (t) => {
  const url = `s3://bucket/a/b/c.sqlite`
  const store = ['--dir', join(dir, 'deep')]
  t.is(cli('query', url, 'CREATE TABLE t(x)', ...store).err, '0 rows changed\n')
  t.is(cli('query', url, 'INSERT INTO t VALUES (1), (2)', ...store).err, '2 rows changed\n')
  t.is(cli('query', url, 'DELETE FROM t WHERE x = 1', ...store).err, '1 row changed\n')
  t.deepEqual(JSON.parse(cli('query', url, 'SELECT x FROM t ORDER BY x', '--json', ...store).out), [{ x: 2 }])
  t.deepEqual(JSON.parse(cli('query', url, 'SELECT x FROM t ORDER BY x', '--json', '--version', '2', ...store).out), [{ x: 1 }, { x: 2 }])
  const old = join(dir, 'v2.sqlite')
  t.is(cli('export', url, old, '--version', '2', ...store).code, 0)
  const v2 = new Database(old, { readonly: true })
  t.deepEqual(v2.prepare('SELECT x FROM t ORDER BY x').all(), [{ x: 1 }, { x: 2 }])
  v2.close()
  // The objects live under <dir>/<bucket>/<the prefix's segments>.
  const { existsSync } = require('node:fs') as typeof import('node:fs')
  t.true(existsSync(join(dir, 'deep', 'bucket', 'a', 'b')))
  t.regex(cli('--version').out, /^\d+\.\d+\.\d+\n$/)
  t.is(cli('query', url, 'SELECT 1', '--version', 'x', ...store).code, 2)
})

test('shell on a terminal: Ctrl-C interrupts a running statement and drops a half-typed one; the shell goes on', async (t) => {
  const { spawn } = await import('node:child_process')
  const url = `file://${dir}/store/bucket/ctrl-c.sqlite`
  const shell = spawn('script', ['-qec', `${process.execPath} ${CLI} shell ${url}`, '/dev/null'], {
    env: { ...process.env, NODE_NO_WARNINGS: '1', HOME: dir },
  })
  let shown = ''
  const waiters: { re: RegExp; from: number; done: () => void }[] = []
  shell.stdout.on('data', (d: Buffer) => {
    shown += d.toString('utf8')
    for (const w of waiters.splice(0)) {
      if (w.re.test(shown.slice(w.from))) w.done()
      else waiters.push(w)
    }
  })
  const exited = new Promise<number | null>((ok) => shell.on('exit', ok))
  // Types `keys`, then waits until the terminal shows `re` (a deadline fails the test, not hangs it).
  const type = (keys: string, re: RegExp) =>
    new Promise<void>((ok, fail) => {
      const from = shown.length
      const timer = setTimeout(() => fail(new Error(`no ${re} after ${JSON.stringify(keys)}; shown: ${JSON.stringify(shown)}`)), 20_000)
      waiters.push({ re, from, done: () => (clearTimeout(timer), ok()) })
      shell.stdin.write(keys)
    })
  try {
    await type('', /sqlite-s3vfs> /)
    // An endless statement: only an interrupt ends it.
    await type('WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n;\r', /FROM n;\r\r\n/)
    await new Promise((r) => setTimeout(r, 300))
    await type('\x03', /\^C[\s\S]*sqlite-s3vfs> /)
    await type('SELECT 40 +\r', /\.\.\.> /)
    await type('\x03', /\^C[\s\S]*sqlite-s3vfs> /)
    // Had `SELECT 40 +` been kept, this would be a syntax error.
    await type('SELECT 42 AS answer;\r', /│ 42 +│[\s\S]*sqlite-s3vfs> /)
    await type('.quit\r', /\.quit/)
    t.is(await exited, 0)
    t.notRegex(shown, /error:/)
  } finally {
    shell.kill('SIGKILL')
  }
})

test('the sqlite-s3vfs layout with another block size: --block-size reads it right, and info reports it', (t) => {
  const url = `file://${dir}/store/bucket/compat64k.sqlite`
  const big = join(dir, 'compat-source.sqlite')
  const db = new Database(big)
  db.exec(
    "CREATE TABLE t(x); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500) INSERT INTO t SELECT printf('row %d', i) || randomblob(300) FROM n",
  )
  db.close()
  t.is(cli('import', big, url, '--layout', 'sqlite-s3vfs', '--block-size', '65536').code, 0)
  const info = JSON.parse(cli('info', url, '--json', '--block-size', '65536').out)
  t.like(info, { layout: 'sqlite-s3vfs', blockSize: 65536 })
  const n = JSON.parse(cli('query', url, 'SELECT count(*) AS n FROM t', '--json', '--block-size', '65536').out)
  t.deepEqual(n, [{ n: 500 }])
  // Without it, an error that names the block size, never wrong rows.
  for (const args of [
    ['query', url, 'SELECT count(*) AS n FROM t'],
    ['export', url, join(dir, 'never.sqlite')],
    ['info', url],
  ]) {
    const wrong = cli(...args)
    t.is(wrong.code, 1, wrong.out)
    t.regex(wrong.err, /\[ERR_BLOCK_SIZE_MISMATCH\] .* was written with blockSize 65536, not 4096/, args[0])
  }
  const copy = join(dir, 'compat-copy.sqlite')
  t.is(cli('export', url, copy, '--block-size', '65536').code, 0)
  t.true(readFileSync(copy).equals(readFileSync(big)))
})

test('an encrypted database: the key from SQLITE_S3VFS_KEY or --key-file, never a flag value; without it, one coded line', (t) => {
  const { randomBytes } = require('node:crypto') as typeof import('node:crypto')
  const { writeFileSync } = require('node:fs') as typeof import('node:fs')
  const key = randomBytes(32)
  const url = `file://${dir}/store/bucket/secret.sqlite`
  const withEnv = (env: Record<string, string>, ...args: string[]) => {
    const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, NODE_NO_WARNINGS: '1', ...env } })
    return { code: r.status, out: r.stdout, err: r.stderr }
  }
  const hex = { SQLITE_S3VFS_KEY: key.toString('hex') }
  t.is(withEnv(hex, 'import', source, url, '--key-id', 'k1').code, 0)
  t.deepEqual(JSON.parse(withEnv(hex, 'query', url, 'SELECT count(*) AS n FROM t', '--json', '--key-id', 'k1').out), [{ n: 2 }])
  // The same key as base64, and from a file (raw bytes, or text).
  t.is(withEnv({ SQLITE_S3VFS_KEY: key.toString('base64') }, 'query', url, 'SELECT 1', '--key-id', 'k1').code, 0)
  const raw = join(dir, 'key.bin')
  writeFileSync(raw, key)
  t.is(cli('query', url, 'SELECT 1', '--key-file', raw, '--key-id', 'k1').code, 0)
  const exported = join(dir, 'secret-export.sqlite')
  t.is(cli('export', url, exported, '--key-file', raw, '--key-id', 'k1').code, 0)
  t.true(readFileSync(exported).equals(readFileSync(source)))
  // Without the key: one coded line, exit 1.
  const none = cli('query', url, 'SELECT count(*) FROM t')
  t.is(none.code, 1)
  t.regex(none.err, /^sqlite-s3vfs: \[ERR_KEY_MISSING\] .*key 'k1'[^\n]*\n$/)
  // A malformed key: a usage error that does not echo it.
  const bad = withEnv({ SQLITE_S3VFS_KEY: 'abcd' + key.toString('hex').slice(4, 40) }, 'query', url, 'SELECT 1')
  t.is(bad.code, 2)
  t.regex(bad.err, /SQLITE_S3VFS_KEY must hold a 32-byte key/)
  t.false(bad.err.includes(key.toString('hex').slice(4, 40)))
  t.is(withEnv(hex, 'query', url, 'SELECT 1', '--key-file', raw).code, 2, 'not both')
  // After a rotation (a write under key k2), the old key is offered with --previous-key-file.
  // Many 4 KiB blocks: the write re-seals only the ones it changes, the rest stay under k1.
  const many = join(dir, 'many.sqlite')
  const m = new Database(many)
  m.exec(
    'CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300) INSERT INTO t(name) SELECT hex(randomblob(100)) FROM n',
  )
  m.close()
  const rotated = `file://${dir}/store/bucket/rotated.sqlite`
  t.is(cli('import', many, rotated, '--block-size', '4096', '--key-file', raw, '--key-id', 'k1').code, 0)
  const key2 = randomBytes(32)
  const raw2 = join(dir, 'key2.bin')
  writeFileSync(raw2, key2)
  const rotate = ['--key-file', raw2, '--key-id', 'k2', '--previous-key-file', `k1=${raw}`]
  t.is(cli('query', rotated, "INSERT INTO t(name) VALUES ('rotated')", ...rotate).code, 0)
  t.deepEqual(JSON.parse(cli('query', rotated, 'SELECT count(*) AS n FROM t', '--json', ...rotate).out), [{ n: 301 }])
  const onlyNew = cli('query', rotated, 'SELECT count(*) AS n, sum(length(name)) AS s FROM t', '--key-file', raw2, '--key-id', 'k2')
  t.is(onlyNew.code, 1)
  t.regex(onlyNew.err, /\[ERR_KEY_MISSING\] .*key 'k1'/)
  t.is(cli('query', url, 'SELECT 1', '--key-file', raw2, '--previous-key-file', 'nopath').code, 2)
})
