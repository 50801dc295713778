// zstd compression of the versioned layout's blocks: what is stored shrinks, what SQLite reads
// does not change; the choice is recorded in the database (readers and later writers need no
// option); a database of plain and compressed blocks (compression turned on later, and off
// again) reads correctly; imports, exports, the disk cache, early uploads and GC work on it.
import test from 'ava'
import Database from 'better-sqlite3'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { S3Database } from '../index'
import { freshBucket, freshPrefix, listObjects, options } from './helpers/s3'

let bucket = ''
const dir = mkdtempSync(join(tmpdir(), 's3vfs-compression-'))
test.before(async () => {
  bucket = await freshBucket('compression')
})
test.after.always(() => rmSync(dir, { recursive: true, force: true }))

/** Text-heavy rows (SQLite pages of them compress well). */
const ROWS = (n: number, from = 0) =>
  `INSERT INTO notes(id, body) WITH RECURSIVE s(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM s WHERE value < ${n})
   SELECT ${from} + value, printf('note %d: the quick brown fox jumps over the lazy dog, again and again', ${from} + value) FROM s`

async function stored(prefix: string): Promise<number> {
  return (await listObjects(bucket, `${prefix}/`)).reduce((s, o) => s + o.size, 0)
}

async function fingerprint(db: S3Database) {
  return db.get<{ n: number; h: string }>("SELECT count(*) AS n, sum(length(body)) || ':' || max(body) AS h FROM notes")
}

test('zstd: each block object stored compressed, read back the same; readers and writers need no option', async (t) => {
  const plainPrefix = freshPrefix('plain')
  const zstdPrefix = freshPrefix('zstd')
  for (const [prefix, compression] of [
    [plainPrefix, undefined],
    [zstdPrefix, 'zstd'],
  ] as const) {
    const db = new S3Database(bucket, prefix, options({ compression, blockSize: 65536 }))
    await db.exec('CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT)')
    await db.exec(ROWS(20000))
    await db.close()
  }
  const [plainBytes, zstdBytes] = [await stored(plainPrefix), await stored(zstdPrefix)]
  t.log(`stored: ${plainBytes} bytes plain, ${zstdBytes} bytes with zstd (${(plainBytes / zstdBytes).toFixed(1)}×)`)
  t.true(zstdBytes * 3 < plainBytes, `${zstdBytes} vs ${plainBytes}`)

  // A reader with no option reads the recorded format; so does one that asks for none.
  for (const compression of [undefined, 'none'] as const) {
    const reader = new S3Database(bucket, zstdPrefix, options({ compression }))
    t.deepEqual(await fingerprint(reader), await fingerprint(new S3Database(bucket, plainPrefix, options())))
    t.deepEqual(await reader.get('PRAGMA integrity_check'), { integrity_check: 'ok' })
    await reader.close()
  }
  // A writer with no option keeps compressing: 20,000 more rows add about as little again.
  const before = await stored(zstdPrefix)
  const writer = new S3Database(bucket, zstdPrefix, options())
  await writer.exec(ROWS(20000, 20000))
  await writer.close()
  t.true((await stored(zstdPrefix)) - before < (plainBytes * 2) / 3, 'new blocks are compressed too')
})

test('compression turned on later, then off: plain and compressed blocks side by side, all read right', async (t) => {
  const prefix = freshPrefix('mixed')
  const oracle = new Database(':memory:')
  const step = async (compression: 'none' | 'zstd' | undefined, sql: string) => {
    // 512-byte blocks: over 1024 of them, so the block map is in segments (old plain ones and
    // new ones with codecs side by side).
    const db = new S3Database(bucket, prefix, options({ compression, blockSize: 512 }))
    await db.exec(sql)
    oracle.exec(sql)
    await db.close()
    // A fresh reader with no option, every time.
    const reader = new S3Database(bucket, prefix, options())
    const want = oracle.prepare('SELECT id, body FROM notes ORDER BY id').all()
    t.deepEqual(await reader.all('SELECT id, body FROM notes ORDER BY id'), want, `after ${compression}: ${sql.slice(0, 40)}`)
    t.deepEqual(await reader.get('PRAGMA integrity_check'), { integrity_check: 'ok' })
    await reader.close()
  }
  await step(undefined, 'CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT)')
  await step(undefined, ROWS(8000))
  await step('zstd', 'UPDATE notes SET body = upper(body) WHERE id % 3 = 0')
  await step(undefined, ROWS(1000, 8000))
  await step('none', "UPDATE notes SET body = 'plain again ' || id WHERE id % 5 = 0")
  await step(undefined, 'DELETE FROM notes WHERE id % 7 = 0')
  await step('zstd', 'VACUUM')
  // The export is the same file a local SQLite holds, byte for byte in content.
  const db = new S3Database(bucket, prefix, options())
  const chunks: Buffer[] = []
  for await (const c of db.serialize()) chunks.push(c as Buffer)
  await db.close()
  const file = join(dir, 'mixed.sqlite')
  writeFileSync(file, Buffer.concat(chunks))
  const exported = new Database(file, { readonly: true })
  t.deepEqual(
    exported.prepare('SELECT id, body FROM notes ORDER BY id').all(),
    oracle.prepare('SELECT id, body FROM notes ORDER BY id').all(),
  )
  exported.close()
})

test('deserialize can compress on the way in; serialize gives the plain file back byte for byte', async (t) => {
  const file = join(dir, 'import.sqlite')
  const local = new Database(file)
  local.exec('CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT)')
  local.exec(ROWS(30000))
  local.close()
  const bytes = readFileSync(file)
  const prefix = freshPrefix('import')
  const { size } = await S3Database.deserialize(
    bucket,
    prefix,
    Readable.from([bytes]),
    options({ compression: 'zstd', compressionLevel: 9 }),
  )
  t.is(size, bytes.length)
  const kept = await stored(prefix)
  t.log(`imported ${bytes.length} bytes as ${kept} stored`)
  t.true(kept * 3 < bytes.length)
  const db = new S3Database(bucket, prefix, options())
  const chunks: Buffer[] = []
  for await (const c of db.serialize()) chunks.push(c as Buffer)
  t.true(Buffer.concat(chunks).equals(bytes), 'the export is the imported file')
  await db.close()
})

test('the disk cache keeps blocks as stored and decodes them on every hit; early uploads and GC work compressed', async (t) => {
  const prefix = freshPrefix('cache')
  const cacheDir = join(dir, 'cache')
  const writer = new S3Database(bucket, prefix, options({ compression: 'zstd', blockSize: 4096, memoryLimit: 16384 }))
  await writer.exec('CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT)')
  // One transaction far past memoryLimit: its blocks are uploaded early, compressed.
  await writer.transaction((tx) => tx.exec(ROWS(5000)))
  t.true(writer.stats().bufferedPeak <= 16384 + 2 * 4096)
  const want = await fingerprint(writer)
  await writer.exec("UPDATE notes SET body = 'x' WHERE id % 2 = 0")
  const after = await fingerprint(writer)
  await writer.close()
  const gets: number[] = []
  for (let run = 0; run < 2; run++) {
    const reader = new S3Database(bucket, prefix, options({ cacheDir }))
    t.deepEqual(await fingerprint(reader), after)
    gets.push(reader.stats().get)
    await reader.close()
  }
  // The second reader GETs only the root: its blocks come from the disk cache, decoded.
  t.log('GETs of a cold and a disk-cached reader:', gets)
  t.true(gets[0] > 10 && gets[1] <= 2, JSON.stringify(gets))
  const old = new S3Database(bucket, prefix, options({ version: 2 }))
  t.deepEqual(await fingerprint(old), want)
  await old.close()
  // Past the store's one-second clock resolution, so that the replaced versions are old enough.
  await new Promise((r) => setTimeout(r, 1100))
  const report = await S3Database.gc(bucket, prefix, { ...options(), gracePeriodMs: 0, unsafeShortGracePeriod: true })
  t.true(report.objectsDeleted > 0)
  const reader = new S3Database(bucket, prefix, options())
  t.deepEqual(await fingerprint(reader), after)
  t.deepEqual(await reader.get('PRAGMA integrity_check'), { integrity_check: 'ok' })
  await reader.close()
})

test('bad compression options are refused with ERR_INVALID_ARGUMENT', (t) => {
  for (const o of [{ compression: 'gzip' }, { compressionLevel: 0 }, { compressionLevel: 23 }, { compressionLevel: 2.5 }]) {
    t.throws(() => new S3Database(bucket, 'x', options(o as never)), { code: 'ERR_INVALID_ARGUMENT' }, JSON.stringify(o))
  }
})
