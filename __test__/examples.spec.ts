// The examples in examples/, run as a user runs them (node, or bash for the CLI script) against
// the test S3 server: each must exit 0 and print what its comment promises. They import the
// package by its name ('sqlite-s3vfs'), which resolves to this package (self-reference), and reach
// the server through AWS_ENDPOINT_URL_S3 like any AWS SDK program.
import test from 'ava'
import Database from 'better-sqlite3'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { endpoint, freshBucket, region } from './helpers/s3'

const root = resolve(__dirname, '..')
const work = mkdtempSync(join(tmpdir(), 's3vfs-examples-'))
test.after.always(() => rmSync(work, { recursive: true, force: true }))

let bucket = ''
test.before(async () => {
  bucket = await freshBucket('examples')
})

function run(command: string, args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(command, args, {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, NODE_NO_WARNINGS: '1', AWS_ENDPOINT_URL_S3: endpoint, AWS_REGION: region, BUCKET: bucket, ...env },
  })
  return { code: r.status, out: r.stdout, err: r.stderr }
}
const example = (name: string, env?: Record<string, string>) => run(process.execPath, [join('examples', name)], env)

test.serial('lambda-handler.mjs: a module-level database reused across invocations, cacheDir, maxStaleness', (t) => {
  const env = { CACHE_DIR: join(work, 'lambda-cache') }
  const first = example('lambda-handler.mjs', env)
  t.is(first.code, 0, first.err)
  t.regex(first.out, /add {2}-> 201 \{"id":1\}/)
  // A warm invocation within maxStaleness answers from memory: no GET at all.
  t.regex(first.out, /warm list: 0 GET requests, the same answer: true/)
  // A second cold start (a new process) finds the first one's note and adds its own.
  const second = example('lambda-handler.mjs', env)
  t.is(second.code, 0, second.err)
  t.regex(second.out, /add {2}-> 201 \{"id":2\}/)
  const list = JSON.parse(/list -> 200 (.*)/.exec(second.out)![1])
  t.deepEqual(
    list.map((n: { id: number }) => n.id),
    [2, 1],
  )
})

test.serial('export-upload.mjs, then import-getobject.mjs: a database through an Upload and back from a GetObject body', (t) => {
  const exported = example('export-upload.mjs')
  t.is(exported.code, 0, exported.err)
  t.regex(exported.out, /exported 1000 orders as s3:\/\/.*\/exports\/orders\.sqlite \(\d+ bytes\)/)
  const imported = example('import-getobject.mjs')
  t.is(imported.code, 0, imported.err)
  // sum(i / 10) for i < 1000 = 49950.
  t.regex(imported.out, /imported \d+ bytes from .*: 1000 orders, 49950 in total/)
})

test('concurrent-writers.mjs: every increment lands exactly once', (t) => {
  const r = example('concurrent-writers.mjs')
  t.is(r.code, 0, r.err)
  t.regex(r.out, /4 writers x 10 increments: counter = 40, version 42/)
})

test('old-version.mjs: reads the version before an update, and lists the versions', (t) => {
  const r = example('old-version.mjs')
  t.is(r.code, 0, r.err)
  t.regex(r.out, /now, version 2: \{ price: 4 \}/)
  t.regex(r.out, /version 1: \{ price: 3\.5 \}/)
  t.regex(r.out, /version 1 created \d{4}-\d\d-\d\dT.*\nversion 2 created/)
})

test('cli.sh: import, query --json read by node, export byte-identical', (t) => {
  const file = join(work, 'cli.sqlite')
  const db = new Database(file)
  db.exec("CREATE TABLE a(x); CREATE TABLE b(y); INSERT INTO a VALUES ('one'), ('two')")
  db.close()
  const r = run('bash', [join('examples', 'cli.sh'), file, `s3://${bucket}/examples/cli.sqlite`], {
    SQLITE_S3VFS: `${process.execPath} ${join(root, 'bin', 'cli.js')}`,
  })
  t.is(r.code, 0, r.err)
  t.is(r.err, '', 'nothing on stderr with --quiet')
  t.is(r.out, `tables: a, b\n{"n":2}\nthe export is byte-identical to ${file}\n`)
})
