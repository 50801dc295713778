// The `sqlite-s3vfs` layout against the real Python library (PyPI sqlite-s3vfs + apsw + boto3),
// and the request counts of open, point query, insert and freshness checks.
import { DeleteObjectCommand } from '@aws-sdk/client-s3'
import test from 'ava'
import { S3Database } from '../index'
import { client, freshBucket, freshPrefix, listObjects, options, putObject, pyPrelude, python, series } from './helpers/s3'

let bucket = ''
test.before(async () => {
  bucket = await freshBucket('compat')
})

// Not the defaults (4096/4096), and not equal to each other.
const PAGE_SIZE = 8192
const BLOCK_SIZE = 3000

/** The Python library creates foo(x, y) holding rows 1..n ('row ' || x), after `pragma` if any. */
function pythonCreatesFoo(prefix: string, blockSize: number, n: number, pragma = 'PRAGMA user_version = 0') {
  return python(
    `${pyPrelude}
with apsw.Connection('${prefix}', vfs=vfs.name) as db:
    db.execute('${pragma}')
    db.execute('CREATE TABLE foo(x INTEGER, y TEXT)')
    db.execute("WITH RECURSIVE s(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM s WHERE value < ${n}) INSERT INTO foo SELECT value, 'row ' || value FROM s")
`,
    { BUCKET: bucket, BLOCK_SIZE: String(blockSize) },
  )
}

test('a database written by the Python library opens and queries here', async (t) => {
  const prefix = freshPrefix('from-python')
  await pythonCreatesFoo(prefix, BLOCK_SIZE, 2000, `PRAGMA page_size = ${PAGE_SIZE}`)
  const db = new S3Database(bucket, prefix, options({ layout: 'sqlite-s3vfs', blockSize: BLOCK_SIZE }))
  t.deepEqual(await db.get('PRAGMA integrity_check'), { integrity_check: 'ok' })
  t.deepEqual(await db.get('PRAGMA page_size'), { page_size: PAGE_SIZE })
  t.deepEqual(await db.get('SELECT count(*) AS n, sum(x) AS s FROM foo'), { n: 2000, s: 2001000 })
  t.deepEqual(await db.get('SELECT y FROM foo WHERE x = 1234'), { y: 'row 1234' })
  // And we can write to it, keeping the format.
  await db.run('INSERT INTO foo VALUES (?, ?)', [5000, 'from node'])
  await db.close()
  const out = await python(
    `${pyPrelude}
with apsw.Connection('${prefix}', vfs=vfs.name) as db:
    print(json.dumps([db.execute('PRAGMA integrity_check').fetchall()[0][0], db.execute('SELECT count(*) FROM foo').fetchall()[0][0], db.execute('SELECT y FROM foo WHERE x = 5000').fetchall()[0][0]]))
`,
    { BUCKET: bucket, BLOCK_SIZE: String(BLOCK_SIZE) },
  )
  t.deepEqual(JSON.parse(out), ['ok', 2001, 'from node'])
})

test('a database written here opens and queries in the Python library, byte for byte the same layout', async (t) => {
  const prefix = freshPrefix('to-python')
  const db = new S3Database(bucket, prefix, options({ layout: 'sqlite-s3vfs', blockSize: BLOCK_SIZE }))
  await db.exec(`PRAGMA page_size = ${PAGE_SIZE}`)
  await db.exec('CREATE TABLE bar(id INTEGER PRIMARY KEY, v BLOB)')
  await db.transaction(async (tx) => {
    for (let i = 0; i < 500; i++) await tx.run('INSERT INTO bar(v) VALUES (randomblob(?))', [100 + (i % 50)])
  })
  await db.run('DELETE FROM bar WHERE id % 3 = 0')
  const expected = await db.get<{ n: number; s: number }>('SELECT count(*) AS n, sum(length(v)) AS s FROM bar')
  await db.close()

  // Every object but the last is exactly blockSize bytes: the Python library's size is their sum.
  const objects = await listObjects(bucket, `${prefix}/`)
  t.true(objects.length > 2)
  t.true(objects.slice(0, -1).every((o) => o.size === BLOCK_SIZE))
  t.deepEqual(
    objects.map((o) => o.key),
    objects.map((_, i) => `${prefix}/${String(i).padStart(10, '0')}`),
  )
  t.deepEqual(await listObjects(bucket, `${prefix}-journal/`), [], 'no journal left behind')

  const out = await python(
    `${pyPrelude}
with apsw.Connection('${prefix}', vfs=vfs.name) as db:
    print(json.dumps([db.execute('PRAGMA integrity_check').fetchall()[0][0], db.execute('PRAGMA page_size').fetchall()[0][0], list(db.execute('SELECT count(*), sum(length(v)) FROM bar').fetchall()[0])]))
`,
    { BUCKET: bucket, BLOCK_SIZE: String(BLOCK_SIZE) },
  )
  t.deepEqual(JSON.parse(out), ['ok', PAGE_SIZE, [expected!.n, expected!.s]])
})

test('request counts: open, point query, new read transaction, 10,000-row insert', async (t) => {
  const prefix = freshPrefix('counts')
  const writer = new S3Database(bucket, prefix, options({ layout: 'sqlite-s3vfs' }))
  await writer.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)')
  const before = writer.stats()
  await writer.transaction(async (tx) => {
    const insert = await tx.prepare('INSERT INTO t(v) VALUES (?)')
    for (let i = 0; i < 10_000; i++) await insert.run([`value ${i}`])
  })
  const after = writer.stats()
  const insertCost = {
    get: after.get - before.get,
    put: after.put - before.put,
    list: after.list - before.list,
    delete: after.delete - before.delete,
  }
  t.log('10,000-row insert transaction:', insertCost)
  t.is(insertCost.list, 0)
  await writer.close()

  const db = new S3Database(bucket, prefix, options({ layout: 'sqlite-s3vfs' }))
  await db.open()
  const open = db.stats()
  t.log('open:', { get: open.get, list: open.list })
  // One LIST max-keys=1 tells the layout; GET block 0 (size from the header) + GET of the
  // journal's first bytes.
  t.is(open.get, 2)
  t.is(open.list, 1)
  t.is(open.put, 0)

  t.deepEqual(await db.get('SELECT v FROM t WHERE id = ?', [5000]), { v: 'value 4999' })
  const q = db.stats()
  t.log('point query after open:', { get: q.get - open.get, list: q.list - open.list })
  t.is(q.list, open.list)

  // A new read transaction when nothing changed: one conditional GET (304).
  await db.get('SELECT v FROM t WHERE id = ?', [5000])
  const again = db.stats()
  t.is(again.get - q.get, 1)
  t.is(again.list, open.list)
  t.is(again.bytesDown, q.bytesDown, 'a 304 carries no body and the blocks come from the cache')
  await db.close()
})

test('one process never reads stale blocks after another process commits', async (t) => {
  const prefix = freshPrefix('fresh')
  const a = new S3Database(bucket, prefix, options({ layout: 'sqlite-s3vfs', blockSize: 4096 }))
  const b = new S3Database(bucket, prefix, options({ layout: 'sqlite-s3vfs', blockSize: 4096 }))
  await a.exec('CREATE TABLE kv(k TEXT PRIMARY KEY, v TEXT)')
  await a.run("INSERT INTO kv VALUES ('x', 'one')")
  t.deepEqual(await b.get("SELECT v FROM kv WHERE k = 'x'"), { v: 'one' })
  // A commit by another process (the Python library) changes blocks b has cached.
  await python(
    `${pyPrelude}
with apsw.Connection('${prefix}', vfs=vfs.name) as db:
    db.execute("UPDATE kv SET v = 'two' WHERE k = 'x'")
    db.execute("WITH RECURSIVE s(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM s WHERE value < 300) INSERT INTO kv SELECT 'k' || value, hex(randomblob(200)) FROM s")
`,
    { BUCKET: bucket, BLOCK_SIZE: '4096' },
  )
  t.deepEqual(await b.get("SELECT v FROM kv WHERE k = 'x'"), { v: 'two' })
  t.deepEqual(await b.get('SELECT count(*) AS n FROM kv'), { n: 301 })
  t.deepEqual(await b.get('PRAGMA integrity_check'), { integrity_check: 'ok' })
  // And a's commits reach b too.
  await a.run("UPDATE kv SET v = 'three' WHERE k = 'x'")
  t.deepEqual(await b.get("SELECT v FROM kv WHERE k = 'x'"), { v: 'three' })
  await a.close()
  await b.close()
})

test('PRAGMA temp_store_directory works (xAccess on a local path)', async (t) => {
  const db = new S3Database(bucket, freshPrefix('tmpdir'), options({ layout: 'sqlite-s3vfs' }))
  await db.exec(`PRAGMA temp_store_directory = '${require('node:os').tmpdir()}'`)
  await db.exec('CREATE TABLE z(a); INSERT INTO z VALUES (3), (1), (2)')
  await db.exec('PRAGMA temp_store = FILE')
  t.deepEqual(await db.all('SELECT a FROM z ORDER BY a'), [{ a: 1 }, { a: 2 }, { a: 3 }])
  await db.close()
})

test("while another writer's journal is in S3 reads bypass the cache, and caching resumes when it is gone", async (t) => {
  const prefix = freshPrefix('inflight')
  const writer = new S3Database(bucket, prefix, options({ layout: 'sqlite-s3vfs' }))
  await writer.exec(`CREATE TABLE j(id INTEGER PRIMARY KEY, v BLOB); INSERT INTO j(v) SELECT randomblob(900) FROM ${series(40)}`)
  const reader = new S3Database(bucket, prefix, options({ layout: 'sqlite-s3vfs' }))
  const query = 'SELECT count(*) AS n, sum(length(v)) AS s FROM j'
  t.deepEqual(await reader.get(query), { n: 40, s: 36000 })
  await writer.run('UPDATE j SET v = randomblob(10) WHERE id = 1')
  // Another writer's commit in flight: its journal (non-zero header) is in the store.
  const journalKey = `${prefix}-journal/0000000000`
  await putObject(bucket, journalKey, Buffer.concat([Buffer.from('d9d505f920a163d7', 'hex'), Buffer.alloc(504, 1)]))
  t.deepEqual(await reader.get(query), { n: 40, s: 35110 })
  const s1 = reader.stats()
  t.deepEqual(await reader.get(query), { n: 40, s: 35110 })
  const s2 = reader.stats()
  t.is(s2.cacheHits - s1.cacheHits, 0, 'nothing is served from the cache while a commit is in flight')
  t.true(s2.get - s1.get > 2, 'blocks are fetched again')
  await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: journalKey }))
  t.deepEqual(await reader.get(query), { n: 40, s: 35110 })
  const s3 = reader.stats()
  t.deepEqual(await reader.get(query), { n: 40, s: 35110 })
  const s4 = reader.stats()
  t.is(s4.get - s3.get, 1, 'back to one conditional GET per read transaction')
  t.true(s4.cacheHits > s3.cacheHits)
  await writer.close()
  await reader.close()
})

test('without options, a database of the Python library (its default 4096-byte blocks) opens here and stays readable there', async (t) => {
  const prefix = freshPrefix('py-defaults')
  await pythonCreatesFoo(prefix, 4096, 3000)
  const db = new S3Database(bucket, prefix, options())
  t.deepEqual(await db.get('SELECT count(*) AS n, sum(x) AS s FROM foo'), { n: 3000, s: 4501500 })
  await db.run('INSERT INTO foo VALUES (?, ?)', [9999, 'from node'])
  t.is(db.layout, 'sqlite-s3vfs')
  await db.close()
  const out = await python(
    `${pyPrelude}
with apsw.Connection('${prefix}', vfs=vfs.name) as db:
    print(json.dumps([db.execute('PRAGMA integrity_check').fetchall()[0][0], db.execute('SELECT y FROM foo WHERE x = 9999').fetchall()[0][0]]))
`,
    { BUCKET: bucket, BLOCK_SIZE: '4096' },
  )
  t.deepEqual(JSON.parse(out), ['ok', 'from node'])
})
