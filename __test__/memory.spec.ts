// Bounded memory (`memoryLimit`): a transaction far larger than the limit — a bulk insert, an
// UPDATE of every row, a VACUUM — keeps its buffered writes within it (`stats().bufferedPeak`,
// counted exactly by the native layer), commits exactly once, and reads back right. In the
// versioned layout its blocks are uploaded while the transaction still runs, invisible until the
// commit, and garbage for `gc()` when it rolls back. Peak RSS of a 2 GB insert and a 1 GB VACUUM
// is measured by `npm run bench:memory`, not here.
import test from 'ava'
import { type DatabaseOptions, S3Database } from '../index'
import { freshBucket, freshPrefix, listObjects, options, series } from './helpers/s3'

let bucket = ''
test.before(async () => {
  bucket = await freshBucket('memory')
})

const LIMIT = 256 << 10
const layouts = [
  ['versioned', 16384],
  ['sqlite-s3vfs', 4096],
] as const

function open(prefix: string, layout: string, blockSize: number, extra: DatabaseOptions = {}) {
  return new S3Database(bucket, prefix, options({ layout: layout as DatabaseOptions['layout'], blockSize, memoryLimit: LIMIT, ...extra }))
}

/** What a page write can add beyond the limit before the buffer moves blocks out (a block being
 *  written, and the page landing in the next). */
const slack = (blockSize: number) => 2 * blockSize + 65536

for (const [layout, blockSize] of layouts) {
  test(`${layout}: a 6 MB transaction stays within memoryLimit and commits once`, async (t) => {
    const prefix = freshPrefix(`big-${layout}`)
    const db = open(prefix, layout, blockSize)
    await db.exec('PRAGMA page_size=4096; CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)')
    const before = db.stats()
    const reader = open(prefix, layout, blockSize)
    t.deepEqual(await reader.get('SELECT count(*) AS n FROM t'), { n: 0 })
    const version = reader.version
    await db.transaction(async (tx) => {
      // SQLite's own page cache spills to the file past 50 pages: the VFS sees every page.
      await tx.exec('PRAGMA cache_size=50')
      for (let k = 0; k < 15; k++) await tx.run(`INSERT INTO t(v) SELECT randomblob(4000) FROM ${series(100)}`)
      if (layout === 'versioned') {
        // Uploaded already, and invisible: another connection still sees an empty table.
        t.true(db.stats().put - before.put > 100, `${db.stats().put - before.put} PUTs before the commit`)
        t.is((await reader.get<{ n: number }>('SELECT count(*) AS n FROM t'))!.n, 0)
        t.is(reader.version, version)
      }
    })
    const peak = db.stats().bufferedPeak
    t.true(peak > 0 && peak <= LIMIT + slack(blockSize), `bufferedPeak ${peak} with memoryLimit ${LIMIT}`)
    t.is(db.stats().buffered, 0, 'nothing stays buffered after the commit')
    t.deepEqual(await reader.get('SELECT count(*) AS n, sum(length(v)) AS bytes FROM t'), { n: 1500, bytes: 1500 * 4000 })
    t.deepEqual(await reader.get('PRAGMA integrity_check'), { integrity_check: 'ok' })
    if (layout === 'versioned') t.is(reader.version, version! + 1, 'one commit, one version')
    await Promise.all([db.close(), reader.close()])
  })

  test(`${layout}: UPDATE of every row and VACUUM stay within memoryLimit and keep every row`, async (t) => {
    const prefix = freshPrefix(`vacuum-${layout}`)
    const db = open(prefix, layout, blockSize, { memoryLimit: 64 << 20 })
    await db.exec(`PRAGMA page_size=4096; CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT, v BLOB);
                   INSERT INTO t SELECT n, 'k' || n, randomblob(3000) FROM ${series(1200)};
                   DELETE FROM t WHERE id % 3 = 0`)
    const want = await db.all('SELECT id, k, hex(substr(v, 1, 8)) AS h, length(v) AS n FROM t ORDER BY id')
    await db.close()
    const small = open(prefix, layout, blockSize)
    await small.exec('PRAGMA cache_size=20')
    // Every page changes: the journal (the old pages) and the buffer both pass the limit.
    await small.run("UPDATE t SET k = k || '!'")
    await small.exec('VACUUM')
    const peak = small.stats().bufferedPeak
    t.true(peak <= LIMIT + slack(blockSize), `bufferedPeak ${peak} with memoryLimit ${LIMIT}`)
    const fresh = open(prefix, layout, blockSize)
    t.deepEqual(await fresh.get('PRAGMA integrity_check'), { integrity_check: 'ok' })
    const got = await fresh.all("SELECT id, rtrim(k, '!') AS k, hex(substr(v, 1, 8)) AS h, length(v) AS n FROM t ORDER BY id")
    t.deepEqual(got, want)
    t.deepEqual(await fresh.get('SELECT freelist_count AS n FROM pragma_freelist_count()'), { n: 0 })
    await Promise.all([small.close(), fresh.close()])
  })

  test(`${layout}: a rolled-back transaction past memoryLimit leaves no trace`, async (t) => {
    const prefix = freshPrefix(`rollback-${layout}`)
    const db = open(prefix, layout, blockSize)
    await db.exec('PRAGMA page_size=4096; CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB); INSERT INTO t(v) VALUES (1)')
    const e = await t.throwsAsync(
      db.transaction(async (tx) => {
        await tx.exec('PRAGMA cache_size=20')
        await tx.run(`INSERT INTO t(v) SELECT randomblob(4000) FROM ${series(600)}`)
        throw new Error('changed my mind')
      }),
    )
    t.is(e!.message, 'changed my mind')
    t.is(db.stats().buffered, 0)
    const fresh = open(prefix, layout, blockSize)
    t.deepEqual(await fresh.get('SELECT count(*) AS n FROM t'), { n: 1 })
    t.deepEqual(await fresh.get('PRAGMA integrity_check'), { integrity_check: 'ok' })
    // The same connection writes again.
    await db.run('INSERT INTO t(v) VALUES (2)')
    t.deepEqual(await fresh.get('SELECT count(*) AS n FROM t'), { n: 2 })
    if (layout === 'versioned') {
      // What was uploaded early is garbage: GC collects it (past its grace period).
      const stored = (await listObjects(bucket, `${prefix}/.b/`)).length
      // LastModified has a resolution of one second.
      await new Promise((r) => setTimeout(r, 1100))
      const report = await S3Database.gc(bucket, prefix, { ...options(), gracePeriodMs: 0, unsafeShortGracePeriod: true })
      t.true(report.objectsDeleted > 100, `${report.objectsDeleted} of ${stored} block objects deleted`)
      t.deepEqual(await fresh.get('SELECT count(*) AS n FROM t'), { n: 2 })
    }
    await Promise.all([db.close(), fresh.close()])
  })
}

test('memoryLimit must be a non-negative integer', (t) => {
  for (const bad of [-1, 1.5, Number.NaN]) {
    const e = t.throws(() => new S3Database(bucket, 'x', options({ memoryLimit: bad })))
    t.is(e!.code, 'ERR_INVALID_ARGUMENT')
  }
})
