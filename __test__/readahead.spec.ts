// Read-ahead: a scan prefetches the blocks ahead of it, random lookups prefetch nothing, and
// neither ever reads a block twice. Counted with db.stats(), in both layouts.
import test from 'ava'
import Database from 'better-sqlite3'
import { createReadStream, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { S3Database, type Stats } from '../index'
import { freshBucket, freshPrefix, options, series } from './helpers/s3'

const ROWS = 20_000
let bucket = ''
let file = ''
test.before(async () => {
  bucket = await freshBucket('readahead')
  file = join(mkdtempSync(join(tmpdir(), 's3vfs-readahead-')), 'db.sqlite')
  const native = new Database(file)
  native.exec('PRAGMA page_size = 4096; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)')
  native.exec(`INSERT INTO t SELECT n, printf('%.200c', 'x') FROM ${series(ROWS)}`)
  native.close()
})

const delta = (a: Stats, b: Stats) => ({ get: b.get - a.get, prefetched: b.prefetched - a.prefetched })

for (const layout of ['versioned', 'sqlite-s3vfs'] as const) {
  async function imported(): Promise<string> {
    const prefix = freshPrefix(`ra-${layout}`)
    await S3Database.deserialize(bucket, prefix, createReadStream(file), options({ layout, blockSize: 4096 }))
    return prefix
  }

  test(`${layout}: a full scan reads every block once, most of them ahead of SQLite`, async (t) => {
    const prefix = await imported()
    const measure = async (readAhead: number) => {
      const db = new S3Database(bucket, prefix, options({ blockSize: 4096, readAhead, maxStaleness: 60_000 }))
      await db.open()
      const before = db.stats()
      const row = await db.get<{ n: number; s: number }>('SELECT count(*) AS n, sum(length(v)) AS s FROM t')
      const d = delta(before, db.stats())
      await db.close()
      t.deepEqual(row, { n: ROWS, s: ROWS * 200 })
      return d
    }
    const off = await measure(0)
    const on = await measure(32)
    t.log(layout, 'scan without read-ahead:', off, 'with:', on)
    t.is(off.prefetched, 0)
    t.is(on.get, off.get, 'read-ahead fetches exactly the blocks the scan needs, none twice')
    t.true(on.prefetched >= off.get * 0.9, `most blocks prefetched (${on.prefetched} of ${off.get})`)
  })

  test(`${layout}: random point lookups prefetch nothing`, async (t) => {
    const prefix = await imported()
    const ids = Array.from({ length: 60 }, (_, i) => 1 + ((i * 7919 + 13) % ROWS))
    const measure = async (readAhead: number) => {
      const db = new S3Database(bucket, prefix, options({ blockSize: 4096, readAhead, maxStaleness: 60_000 }))
      await db.open()
      const before = db.stats()
      for (const id of ids) t.is((await db.get<{ id: number }>('SELECT id FROM t WHERE id = ?', [id]))?.id, id)
      const d = delta(before, db.stats())
      await db.close()
      return d
    }
    const off = await measure(0)
    const on = await measure(32)
    t.log(layout, 'lookups without read-ahead:', off, 'with:', on)
    t.is(on.prefetched, 0)
    t.is(on.get, off.get)
  })
}
