// The Python library's own test matrix (test_sqlite_s3vfs.py upstream), ported: page sizes x
// block sizes x journal modes, serialized size against a native file, rollback — on both layouts.
import test from 'ava'
import Database from 'better-sqlite3'
import { mkdtempSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { S3Database } from '../index'
import { freshBucket, freshPrefix, listObjects, options, serializedSize, series } from './helpers/s3'

let bucket = ''
const dir = mkdtempSync(join(tmpdir(), 's3vfs-matrix-'))
test.before(async () => {
  bucket = await freshBucket('matrix')
})

const PAGE_SIZES = [512, 1024, 2048, 4096, 8192, 16384, 32768, 65536]
const BLOCK_SIZES = [4095, 4096, 4097]
const JOURNAL_MODES = ['DELETE', 'TRUNCATE', 'PERSIST', 'MEMORY', 'OFF']

const statements = (pageSize: number, journalMode: string) => [
  `PRAGMA page_size = ${pageSize}`,
  `PRAGMA journal_mode = ${journalMode}`,
  'CREATE TABLE foo(x, y)',
  "INSERT INTO foo VALUES (1, 'a'), (2, zeroblob(3000)), (3, 'c')",
  'CREATE TABLE bar(z)',
  'INSERT INTO bar SELECT zeroblob(700) FROM foo, foo AS f2',
]

let nativeFiles = 0
function nativeSize(pageSize: number, journalMode: string): number {
  const path = join(dir, `native-${pageSize}-${journalMode}-${++nativeFiles}.sqlite`)
  const db = new Database(path)
  for (const s of statements(pageSize, journalMode)) db.exec(s)
  db.close()
  return statSync(path).size
}

const LAYOUTS = ['versioned', 'sqlite-s3vfs'] as const

for (const layout of LAYOUTS) {
  for (const pageSize of PAGE_SIZES) {
    for (const blockSize of BLOCK_SIZES) {
      test(`${layout}: page size ${pageSize}, block size ${blockSize}, every journal mode`, async (t) => {
        for (const journalMode of JOURNAL_MODES) {
          const label = `${layout}/${pageSize}/${blockSize}/${journalMode}`
          const prefix = freshPrefix(`m${pageSize}-${blockSize}-${journalMode}`)
          const db = new S3Database(bucket, prefix, options({ blockSize, layout }))
          for (const s of statements(pageSize, journalMode)) await db.exec(s)
          await db.close()

          const reopened = new S3Database(bucket, prefix, options({ blockSize }))
          t.deepEqual(await reopened.get('PRAGMA integrity_check'), { integrity_check: 'ok' }, label)
          t.deepEqual(await reopened.get('PRAGMA page_size'), { page_size: pageSize }, label)
          t.deepEqual(await reopened.all('SELECT x FROM foo ORDER BY x'), [{ x: 1 }, { x: 2 }, { x: 3 }], label)
          t.deepEqual(await reopened.get('SELECT count(*) AS n FROM bar'), { n: 9 }, label)
          const size = await serializedSize(reopened)
          t.is(size, nativeSize(pageSize, journalMode), `${label}: serialized size equals a native file's`)
          t.is(reopened.layout, layout, `${label}: opened in the layout it was created in`)
          if (layout === 'versioned') {
            // One version per committed statement (the pragmas commit nothing).
            t.is(reopened.version, 4, `${label}: one version per commit`)
            await reopened.close()
            continue
          }
          const objects = await listObjects(bucket, `${prefix}/`)
          t.is(
            objects.reduce((a, o) => a + o.size, 0),
            size,
            `${label}: objects sum to the file size`,
          )
          t.true(
            objects.slice(0, -1).every((o) => o.size === blockSize),
            `${label}: no short block but the last`,
          )
          await reopened.close()
        }
      })
    }
  }
}

for (const layout of LAYOUTS) {
  for (const journalMode of ['DELETE', 'TRUNCATE', 'PERSIST', 'MEMORY']) {
    test(`${layout}: rollback restores the previous rows (${journalMode}), also after a cache spill`, async (t) => {
      const db = new S3Database(bucket, freshPrefix(`rb-${journalMode}`), options({ blockSize: 4097, layout }))
      await db.exec(`PRAGMA journal_mode = ${journalMode}`)
      await db.exec('CREATE TABLE r(id INTEGER PRIMARY KEY, v BLOB)')
      await db.exec(`INSERT INTO r(v) SELECT randomblob(1000) FROM ${series(200)}`)
      const before = await db.all('SELECT id, hex(v) AS h FROM r ORDER BY id')
      await db.exec(
        'BEGIN; DELETE FROM r WHERE id % 2 = 0; UPDATE r SET v = randomblob(10); INSERT INTO r(v) VALUES (zeroblob(5000)); ROLLBACK',
      )
      t.deepEqual(await db.all('SELECT id, hex(v) AS h FROM r ORDER BY id'), before)
      const version = db.version
      // A tiny page cache makes SQLite spill dirty pages to the file mid-transaction.
      await db.exec('PRAGMA cache_size = 2')
      await db.exec('BEGIN; UPDATE r SET v = randomblob(1500); ROLLBACK')
      t.deepEqual(await db.all('SELECT id, hex(v) AS h FROM r ORDER BY id'), before)
      t.deepEqual(await db.get('PRAGMA integrity_check'), { integrity_check: 'ok' })
      t.is(db.version, version, 'a rollback publishes nothing')
      await db.close()
      const again = new S3Database(bucket, db.prefix, options({ blockSize: 4097 }))
      t.deepEqual(await again.all('SELECT id, hex(v) AS h FROM r ORDER BY id'), before)
      t.is(again.version, version)
      await again.close()
    })
  }
}
