import { Upload } from '@aws-sdk/lib-storage'
import test from 'ava'
import Database from 'better-sqlite3'
import { createReadStream, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { S3Database, SqliteS3Error } from '../index'
import { client, freshBucket, freshPrefix, getObject, listObjects, options, series, serializedSize } from './helpers/s3'

let bucket = ''
const dir = mkdtempSync(join(tmpdir(), 's3vfs-streams-'))
test.before(async () => {
  bucket = await freshBucket('streams')
})

const STATEMENTS = [
  'PRAGMA page_size = 4096',
  'CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, data BLOB)',
  'CREATE INDEX t_name ON t(name)',
]

/** A local SQLite file built natively with better-sqlite3. */
function nativeFile(name: string, rows: number): string {
  const path = join(dir, name)
  const db = new Database(path)
  for (const s of STATEMENTS) db.exec(s)
  const insert = db.prepare('INSERT INTO t(name, data) VALUES (?, zeroblob(?))')
  db.transaction(() => {
    for (let i = 0; i < rows; i++) insert.run(`name ${i}`, 50 + (i % 300))
  })()
  db.close()
  return path
}

test('serialize streams into an Upload; the object is the same file as a native build', async (t) => {
  const prefix = freshPrefix('ser')
  const db = new S3Database(bucket, prefix, options({ blockSize: 4097 }))
  for (const s of STATEMENTS) await db.exec(s)
  await db.transaction(async (tx) => {
    const insert = await tx.prepare('INSERT INTO t(name, data) VALUES (?, zeroblob(?))')
    for (let i = 0; i < 3000; i++) await insert.run([`name ${i}`, 50 + (i % 300)])
  })
  await new Upload({ client, params: { Bucket: bucket, Key: 'exported.sqlite', Body: db.serialize() } }).done()
  await db.close()

  const exported = join(dir, 'exported.sqlite')
  writeFileSync(exported, await getObject(bucket, 'exported.sqlite'))
  const native = nativeFile('native.sqlite', 3000)
  t.is(statSync(exported).size, statSync(native).size)
  const copy = new Database(exported, { readonly: true })
  t.is(copy.pragma('integrity_check', { simple: true }), 'ok')
  t.deepEqual(copy.prepare('SELECT count(*) AS n, sum(length(data)) AS s FROM t').get(), {
    n: 3000,
    s: 3000 * 50 + [...Array(3000).keys()].reduce((a, i) => a + (i % 300), 0),
  })
  copy.close()
})

test('serialize after DROP + VACUUM has the native size', async (t) => {
  const prefix = freshPrefix('vacuum')
  const db = new S3Database(bucket, prefix, options())
  for (const s of STATEMENTS) await db.exec(s)
  await db.exec(`CREATE TABLE big(x); INSERT INTO big SELECT zeroblob(5000) FROM ${series(200)}`)
  await db.exec('DROP TABLE big')
  await db.exec('VACUUM')
  const chunks: Buffer[] = []
  for await (const c of db.serialize()) chunks.push(c as Buffer)
  const bytes = Buffer.concat(chunks)
  await db.close()
  const native = nativeFile('native-vacuum.sqlite', 0)
  t.is(bytes.length, statSync(native).size)
  t.true(bytes.length < 200 * 5000)
  const path = join(dir, 'vacuumed.sqlite')
  writeFileSync(path, bytes)
  const copy = new Database(path, { readonly: true })
  t.is(copy.pragma('integrity_check', { simple: true }), 'ok')
  copy.close()
})

test('deserialize from a file stream, then query', async (t) => {
  const native = nativeFile('import.sqlite', 2000)
  const prefix = freshPrefix('deser')
  const { size } = await S3Database.deserialize(bucket, prefix, createReadStream(native), options({ blockSize: 4095 }))
  t.is(size, statSync(native).size)
  const db = new S3Database(bucket, prefix, options({ blockSize: 4095 }))
  t.deepEqual(await db.get('PRAGMA integrity_check'), { integrity_check: 'ok' })
  t.deepEqual(await db.get('SELECT count(*) AS n FROM t'), { n: 2000 })
  t.deepEqual(await db.get("SELECT id FROM t WHERE name = 'name 1999'"), { id: 2000 })
  await db.close()
})

test('deserialize accepts 1-byte chunks, 10 MB chunks, generators and web streams', async (t) => {
  const bytes = readFileSync(nativeFile('chunks.sqlite', 500))
  async function check(label: string, source: Parameters<typeof S3Database.deserialize>[2]) {
    const prefix = freshPrefix(label)
    await S3Database.deserialize(bucket, prefix, source, options())
    const db = new S3Database(bucket, prefix, options())
    t.deepEqual(await db.get('SELECT count(*) AS n FROM t'), { n: 500 }, label)
    await db.close()
  }
  await check(
    'one-byte',
    (function* () {
      for (let i = 0; i < bytes.length; i++) yield bytes.subarray(i, i + 1)
    })(),
  )
  await check('web-stream', Readable.toWeb(Readable.from([bytes])) as ReadableStream<Uint8Array>)
  // One 10 MB chunk: a database of 10 MB.
  const tenMb = join(dir, 'ten.sqlite')
  const db10 = new Database(tenMb)
  db10.exec(`CREATE TABLE b(x); INSERT INTO b SELECT zeroblob(10000) FROM ${series(1000)}`)
  db10.close()
  const ten = readFileSync(tenMb)
  t.true(ten.length >= 10_000_000)
  const prefix = freshPrefix('ten')
  await S3Database.deserialize(bucket, prefix, [ten], options({ blockSize: 65536 }))
  const db = new S3Database(bucket, prefix, options({ blockSize: 65536 }))
  t.deepEqual(await db.get('SELECT count(*) AS n, sum(length(x)) AS s FROM b'), { n: 1000, s: 10_000_000 })
  await db.close()
})

test('createDeserializeStream works with pipeline()', async (t) => {
  const native = nativeFile('piped.sqlite', 100)
  const prefix = freshPrefix('piped')
  await pipeline(createReadStream(native, { highWaterMark: 777 }), S3Database.createDeserializeStream(bucket, prefix, options()))
  const db = new S3Database(bucket, prefix, options())
  t.deepEqual(await db.get('SELECT count(*) AS n FROM t'), { n: 100 })
  await db.close()
})

test('bytes that are not a database are refused and nothing is left behind', async (t) => {
  const good = readFileSync(nativeFile('good.sqlite', 300))
  const cases: [string, Buffer][] = [
    ['empty', Buffer.alloc(0)],
    ['bad header', Buffer.concat([Buffer.from('definitely not sqlite'), Buffer.alloc(8192)])],
    ['truncated', good.subarray(0, good.length - 4096)],
    ['not a multiple of the page size', good.subarray(0, good.length - 100)],
    ['too short for a header', good.subarray(0, 50)],
  ]
  for (const [label, bytes] of cases) {
    const prefix = freshPrefix('bad')
    const err = await t.throwsAsync(
      S3Database.deserialize(bucket, prefix, [bytes], options({ blockSize: 1024 })),
      { instanceOf: SqliteS3Error },
      label,
    )
    t.is(err?.code, 'ERR_NOT_A_DATABASE', label)
    t.deepEqual(await listObjects(bucket, prefix), [], `${label}: nothing under the prefix`)
  }
  // Through the Writable too.
  const prefix = freshPrefix('bad-stream')
  await t.throwsAsync(
    pipeline(Readable.from([good.subarray(0, good.length - 4096)]), S3Database.createDeserializeStream(bucket, prefix, options())),
    { code: 'ERR_NOT_A_DATABASE' },
  )
  t.deepEqual(await listObjects(bucket, prefix), [])
})

for (const layout of ['versioned', 'sqlite-s3vfs'] as const) {
  test(`${layout}: an existing database is refused unless overwrite is set; bad input never damages it`, async (t) => {
    const first = readFileSync(nativeFile(`first-${layout}.sqlite`, 100))
    const second = readFileSync(nativeFile(`second-${layout}.sqlite`, 5))
    const prefix = freshPrefix('exists')
    await S3Database.deserialize(bucket, prefix, [first], options({ layout }))
    await t.throwsAsync(S3Database.deserialize(bucket, prefix, [second], options()), { code: 'ERR_DATABASE_EXISTS' })
    await t.throwsAsync(S3Database.deserialize(bucket, prefix, [second.subarray(0, 5000)], { ...options(), overwrite: true }), {
      code: 'ERR_NOT_A_DATABASE',
    })
    let db = new S3Database(bucket, prefix, options())
    t.deepEqual(await db.get('SELECT count(*) AS n FROM t'), { n: 100 }, 'the old database is intact')
    await db.close()
    await S3Database.deserialize(bucket, prefix, [second], { ...options(), overwrite: true })
    db = new S3Database(bucket, prefix, options())
    t.deepEqual(await db.get('SELECT count(*) AS n FROM t'), { n: 5 })
    t.deepEqual(await db.get('PRAGMA integrity_check'), { integrity_check: 'ok' })
    t.is(db.layout, layout, 'the import kept the layout')
    t.is(await serializedSize(db), second.length)
    await db.close()
    if (layout === 'sqlite-s3vfs') {
      const objects = await listObjects(bucket, `${prefix}/`)
      t.is(
        objects.reduce((a, o) => a + o.size, 0),
        second.length,
        'no stale blocks past the new end',
      )
    }
  })
}

test('serialize never blocks other calls on the same database while its consumer is slow', async (t) => {
  const native = nativeFile('slow.sqlite', 20000)
  const prefix = freshPrefix('slow')
  await S3Database.deserialize(bucket, prefix, createReadStream(native), options())
  const db = new S3Database(bucket, prefix, options({ concurrency: 4 }))
  const stream = db.serialize()
  const it = stream[Symbol.asyncIterator]()
  await it.next() // started, then paused: the consumer reads nothing more for now
  t.true(statSync(native).size > 2 * stream.readableHighWaterMark, 'the export cannot fit in the stream buffer')
  t.deepEqual(await db.get('SELECT count(*) AS n FROM t'), { n: 20000 })
  await db.run("INSERT INTO t(name) VALUES ('meanwhile')")
  stream.destroy()
  await db.close()
})
