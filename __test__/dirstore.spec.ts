// The local-directory store (`options.store = { dir }`): every operation of both layouts with no
// S3 server at all, and the guarantees across processes — 4 processes × 50 increments of one
// counter end at exactly 200 (create-only writes are atomic: `link`, never check-then-write), and
// a writer killed at any moment of its commits leaves a whole database.
import test from 'ava'
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { type DatabaseOptions, S3Database } from '../index'

const dir = mkdtempSync(join(tmpdir(), 's3vfs-dirstore-'))
test.after.always(() => rmSync(dir, { recursive: true, force: true }))
const store = { dir }
const CHILD = resolve(__dirname, 'helpers', 'child.ts')
let counter = 0
const prefix = (label: string) => `${label}-${++counter}/db.sqlite`

async function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const c of stream) chunks.push(Buffer.from(c as Buffer))
  return Buffer.concat(chunks)
}

for (const layout of ['versioned', 'sqlite-s3vfs'] as const) {
  test(`${layout}: create, transaction, query, serialize, deserialize, reopen — no server`, async (t) => {
    const p = prefix(layout)
    const o: DatabaseOptions = { store, layout, blockSize: 4096 }
    const db = new S3Database('bucket', p, o)
    await db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)')
    await db.transaction(async (tx) => {
      for (let i = 0; i < 100; i++) await tx.run('INSERT INTO t(v) VALUES (?)', [`row ${i}`])
    })
    t.deepEqual(await db.get('SELECT count(*) AS n FROM t'), { n: 100 })
    const file = await collect(db.serialize())
    t.is(file.subarray(0, 15).toString(), 'SQLite format 3')
    await db.close()
    // The objects are files under the bucket's folder.
    t.true(existsSync(join(dir, 'bucket')))
    const stored = await S3Database.inspect('bucket', p, { store })
    t.is(stored.layout, layout)
    t.true(stored.bytes >= file.length && stored.objects >= 2, JSON.stringify(stored))
    t.deepEqual(
      stored.versions.map((v) => v.version),
      layout === 'versioned' ? [1, 2] : [],
      'one version for the CREATE, one for the transaction',
    )
    t.deepEqual(await S3Database.inspect('bucket', `${p}-none`, { store }), { objects: 0, bytes: 0, versions: [] })
    const copy = `${p}-copy`
    await S3Database.deserialize('bucket', copy, [file], { store, layout })
    const reopened = new S3Database('bucket', copy, { store })
    t.is(reopened.layout, undefined)
    t.deepEqual(await reopened.get('SELECT count(*) AS n, max(v) AS v FROM t'), { n: 100, v: 'row 99' })
    t.is(reopened.layout, layout)
    t.deepEqual(await reopened.get('PRAGMA integrity_check'), { integrity_check: 'ok' })
    await reopened.close()
    if (layout === 'versioned') {
      const report = await S3Database.gc('bucket', p, { store, keepVersions: 1, gracePeriodMs: 0, unsafeShortGracePeriod: true })
      t.true(report.head >= 2)
      const again = new S3Database('bucket', p, { store })
      t.deepEqual(await again.get('SELECT count(*) AS n FROM t'), { n: 100 })
      await again.close()
    }
  })
}

function child(mode: string, p: string, n: number) {
  const proc = spawn(process.execPath, ['--import', 'tsx', CHILD, mode, 'bucket', p, String(n)], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, SQLITE_S3VFS_TEST_STORE_DIR: dir },
  })
  let out = ''
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()))
  return new Promise<{ code: number | null; lines: Record<string, unknown>[] }>((res) =>
    proc.on('exit', (code) =>
      res({
        code,
        lines: out
          .trim()
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l)),
      }),
    ),
  )
}

test('versioned: 4 processes x 50 increments with retries end at exactly 200', async (t) => {
  const p = prefix('counter')
  const db = new S3Database('bucket', p, { store, blockSize: 4096 })
  await db.exec('CREATE TABLE counter(n INTEGER); INSERT INTO counter VALUES (0)')
  await db.close()
  const kids = await Promise.all([0, 1, 2, 3].map(() => child('increment', p, 50)))
  t.deepEqual(
    kids.map((k) => k.code),
    [0, 0, 0, 0],
  )
  t.log(
    'attempts per process (50 commits each):',
    kids.map((k) => k.lines.at(-1)?.attempts),
  )
  const check = new S3Database('bucket', p, { store })
  t.deepEqual(await check.get('SELECT n FROM counter'), { n: 200 })
  t.deepEqual(await check.get('PRAGMA integrity_check'), { integrity_check: 'ok' })
  t.is(check.version, 2 + 200, 'one version per increment: no lost and no doubled commit')
  await check.close()
})

test('versioned: a writer killed at random moments of its commits leaves a whole database', async (t) => {
  const p = prefix('killed')
  const db = new S3Database('bucket', p, { store, blockSize: 4096 })
  await db.exec('CREATE TABLE counter(n INTEGER); INSERT INTO counter VALUES (0)')
  await db.close()
  let last = 0
  let progressed = 0
  for (let round = 0; round < 6; round++) {
    const proc = spawn(process.execPath, ['--import', 'tsx', CHILD, 'increment', 'bucket', p, '1000000'], {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: { ...process.env, SQLITE_S3VFS_TEST_STORE_DIR: dir },
    })
    const exited = new Promise<string | null>((r) => proc.on('exit', (_code, signal) => r(signal)))
    await new Promise((r) => setTimeout(r, 1200 + round * 150))
    proc.kill('SIGKILL')
    t.is(await exited, 'SIGKILL', `round ${round}: the writer was still running when killed`)
    const check = new S3Database('bucket', p, { store })
    const { n } = (await check.get<{ n: number }>('SELECT n FROM counter'))!
    t.is(check.version, 2 + n, `round ${round}: every committed increment is one version, none lost or doubled`)
    t.deepEqual(await check.get('PRAGMA integrity_check'), { integrity_check: 'ok' })
    await check.close()
    if (n > last) progressed++
    last = n
  }
  t.log(`${last} increments committed across the kills`)
  t.true(progressed >= 3, `the writer committed in only ${progressed} of 6 rounds: the kills tested little`)
  // A writer killed mid-write may leave a temp file in the bucket's .tmp/ (never listed; swept
  // when a store opens the bucket ten minutes later).
  t.log(`${readdirSync(join(dir, 'bucket', '.tmp')).length} temp files left by the kills`)
})

test('sqlite-s3vfs: a reader sees every commit of another connection (block 0 is cached by ETag)', async (t) => {
  const p = prefix('etag')
  const o: DatabaseOptions = { store, layout: 'sqlite-s3vfs', blockSize: 4096 }
  const writer = new S3Database('bucket', p, o)
  await writer.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER); INSERT INTO t VALUES (1, 0)')
  const reader = new S3Database('bucket', p, o)
  for (let i = 1; i <= 100; i++) {
    await writer.run('UPDATE t SET v = ? WHERE id = 1', [i])
    t.deepEqual(await reader.get('SELECT v FROM t WHERE id = 1'), { v: i }, `commit ${i}`)
  }
  t.deepEqual(await reader.get('PRAGMA integrity_check'), { integrity_check: 'ok' })
  await Promise.all([writer.close(), reader.close()])
})

test('store must name a directory', (t) => {
  const e = t.throws(() => new S3Database('bucket', 'x', { store: { dir: '' } }))
  t.is(e!.code, 'ERR_INVALID_ARGUMENT')
})
