// A database that crosses the lock-byte page at 1 GiB (SQLite never writes that page): the
// blocks before it are padded so the file has no hole, as the Python library does.
import test from 'ava'
import { S3Database } from '../index'
import { freshBucket, freshPrefix, listObjects, options, serializedSize, series } from './helpers/s3'

const ROWS = 300_000
// Not a divisor of 1 GiB, so the lock-byte page falls inside a block.
const BLOCK_SIZE = 1024 * 1024 + 1
const insertRows = `INSERT INTO foo SELECT randomblob(4050) FROM ${series(ROWS)}`

for (const layout of ['versioned', 'sqlite-s3vfs'] as const) {
  test(`${layout}: insert, delete all, insert again across the 1 GiB lock-byte page`, async (t) => {
    const bucket = await freshBucket('lockbyte')
    const prefix = freshPrefix('lockbyte')
    const db = new S3Database(bucket, prefix, options({ blockSize: BLOCK_SIZE, cacheSize: 256 << 20, layout }))
    await db.exec('PRAGMA page_size = 65536')
    await db.exec('CREATE TABLE foo(x)')
    await db.exec(insertRows)
    await db.exec('DELETE FROM foo')
    await db.exec(insertRows)
    t.deepEqual(await db.get('SELECT count(*) AS n, sum(length(x)) AS s FROM foo'), { n: ROWS, s: ROWS * 4050 })
    const { page_count: pages } = (await db.get<{ page_count: number }>('PRAGMA page_count'))!
    t.true(pages * 65536 > 1024 ** 3, 'the file crosses 1 GiB')
    await db.close()

    if (layout === 'sqlite-s3vfs') {
      const objects = await listObjects(bucket, `${prefix}/`)
      t.is(
        objects.reduce((a, o) => a + o.size, 0),
        pages * 65536,
        'no hole: the objects add up to the file size',
      )
      t.true(objects.slice(0, -1).every((o) => o.size === BLOCK_SIZE))
    }

    const reopened = new S3Database(bucket, prefix, options({ blockSize: BLOCK_SIZE }))
    t.deepEqual(await reopened.get('SELECT count(*) AS n FROM foo'), { n: ROWS })
    t.deepEqual(await reopened.get('PRAGMA quick_check'), { quick_check: 'ok' })
    t.is(await serializedSize(reopened), pages * 65536)
    await reopened.close()
  })
}
