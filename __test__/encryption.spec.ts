// Client-side encryption of the versioned layout: nothing readable reaches the bucket, the right
// key reads everything back, a missing or wrong key fails at open and changes nothing, keys
// rotate, and every tampering a bucket writer can do — a flipped byte in a block, a root or a
// map segment, two blocks swapped, a block from another version, an older root over a newer
// version's key — is ERR_AUTHENTICATION_FAILED: never wrong rows, a crash or a hang.
import test from 'ava'
import Database from 'better-sqlite3'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { type DatabaseOptions, S3Database } from '../index'
import { freshBucket, freshPrefix, getObject, listObjects, options, putObject, series } from './helpers/s3'

let bucket = ''
const dir = mkdtempSync(join(tmpdir(), 's3vfs-encryption-'))
test.before(async () => {
  bucket = await freshBucket('encryption')
})
test.after.always(() => rmSync(dir, { recursive: true, force: true }))

const MARKER = 'TOP-SECRET-MARKER'
const keyA = randomBytes(32)
const keyB = randomBytes(32)
const withKey = (extra: DatabaseOptions = {}) => options({ encryption: { key: keyA, keyId: 'a' }, ...extra })

/** An encrypted database of `rows` rows (each with the marker), in `versions` commits; 512-byte
 *  blocks put the map in segments once it passes 1024 blocks. */
async function encrypted(rows: number, extra: DatabaseOptions = {}, versions = 1): Promise<string> {
  const prefix = freshPrefix('enc')
  const db = new S3Database(bucket, prefix, withKey({ blockSize: 512, ...extra }))
  await db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)')
  for (let v = 0; v < versions; v++) {
    await db.exec(`INSERT INTO t(v) SELECT '${MARKER} ' || (n + ${v * rows}) || ' ' || hex(randomblob(40)) FROM ${series(rows)}`)
  }
  await db.close()
  return prefix
}

async function everything(db: S3Database) {
  return db.all<{ n: number; s: number; m: number }>(`SELECT count(*) AS n, sum(length(v)) AS s, sum(v LIKE '${MARKER}%') AS m FROM t`)
}

async function snapshotOf(prefix: string) {
  const objects = await listObjects(bucket, `${prefix}/`)
  return Promise.all(objects.map(async (o) => [o.key, (await getObject(bucket, o.key)).toString('base64')]))
}

test('nothing readable in the bucket; the key reads it all back; serialize gives the plain file', async (t) => {
  const prefix = await encrypted(3000)
  const objects = await listObjects(bucket, `${prefix}/`)
  t.true(objects.length > 100)
  for (const o of objects) {
    const body = await getObject(bucket, o.key)
    t.false(body.includes(MARKER), `${o.key} holds plaintext`)
    t.false(body.includes('SQLite format 3'), `${o.key} holds the header`)
    t.false(body.includes('CREATE TABLE'), `${o.key} holds the schema`)
  }
  const db = new S3Database(bucket, prefix, withKey())
  t.deepEqual(await everything(db), [{ n: 3000, s: (await everything(db))[0].s, m: 3000 }])
  t.deepEqual(await db.get('PRAGMA integrity_check'), { integrity_check: 'ok' })
  const chunks: Buffer[] = []
  for await (const c of db.serialize()) chunks.push(c as Buffer)
  await db.close()
  const file = join(dir, 'plain.sqlite')
  require('node:fs').writeFileSync(file, Buffer.concat(chunks))
  const local = new Database(file, { readonly: true })
  t.is((local.prepare(`SELECT count(*) AS n FROM t WHERE v LIKE '${MARKER}%'`).get() as { n: number }).n, 3000)
  local.close()
})

test('a missing key, a wrong key, or a key for a plain database: a coded error at open, and the bucket unchanged', async (t) => {
  const prefix = await encrypted(200)
  const before = await snapshotOf(prefix)
  const lines: string[] = []
  const logger = { debug: (f: unknown, m: string) => lines.push(JSON.stringify(f) + m), warn: (f: unknown, m: string) => lines.push(m) }
  for (const [o, code] of [
    [options({ logger }), 'ERR_KEY_MISSING'],
    [options({ logger, encryption: { key: keyB, keyId: 'a' } }), 'ERR_AUTHENTICATION_FAILED'],
    [options({ logger, encryption: { key: keyA, keyId: 'other' } }), 'ERR_KEY_MISSING'],
  ] as const) {
    const db = new S3Database(bucket, prefix, o)
    const e = await t.throwsAsync(db.open(), { code })
    // A write is refused too, and writes nothing.
    await t.throwsAsync(db.exec("INSERT INTO t(v) VALUES ('x')"))
    await db.close()
    for (const k of [keyA, keyB]) {
      for (const form of [k.toString('hex'), k.toString('base64')]) {
        t.false(`${e?.message}${e?.stack}`.includes(form), 'no key in the error')
        t.false(lines.join('\n').includes(form), 'no key in the log')
      }
    }
  }
  t.deepEqual(await snapshotOf(prefix), before, 'nothing in the bucket changed')
  const plain = freshPrefix('plain')
  const p = new S3Database(bucket, plain, options())
  await p.exec('CREATE TABLE t(x)')
  await p.close()
  await t.throwsAsync(new S3Database(bucket, plain, withKey()).open(), { code: 'ERR_NOT_ENCRYPTED' })
})

/** Runs a full read on a fresh connection: it must fail with the code, never return rows. */
async function mustNotRead(t: import('ava').ExecutionContext, prefix: string, what: string) {
  const db = new S3Database(bucket, prefix, withKey())
  const e = await t.throwsAsync(
    (async () => {
      await everything(db)
      await db.get('PRAGMA integrity_check')
    })(),
    undefined,
    what,
  )
  t.is(e?.code, 'ERR_AUTHENTICATION_FAILED', `${what}: ${e?.code} ${e?.message}`)
  await db.close()
}

const blocksOf = async (prefix: string) => (await listObjects(bucket, `${prefix}/.b/`)).map((o) => o.key)
const flip = (b: Buffer, at: number) => {
  const c = Buffer.from(b)
  c[at % c.length] ^= 0x01
  return c
}

test('tampering is an authentication error: flipped bytes in a block, a root and a map segment', async (t) => {
  for (const kind of ['block', 'root', 'segment'] as const) {
    // Over 1024 blocks of 512 bytes: the map is in segments.
    const prefix = await encrypted(6000)
    const keys = (await listObjects(bucket, `${prefix}/`)).map((o) => o.key)
    const dirOf = { block: '/.b/', root: '/!r/', segment: '/.m/' }[kind]
    // An object the newest version reads: its root (listed first), or one it uploaded.
    const head = (await listObjects(bucket, `${prefix}/!r/`)).map((o) => o.key).sort()[0]
    const headVersion = (BigInt(2) ** BigInt(64) - BigInt(1) - BigInt('0x' + head.split('/!r/')[1])).toString(16).padStart(16, '0')
    const victims = keys.filter((k) => k.includes(dirOf) && (kind === 'root' ? k === head : k.split('/').pop()!.startsWith(headVersion)))
    t.true(victims.length > 0, `a ${kind} to damage`)
    const victim = victims[Math.floor(victims.length / 2)]
    const body = await getObject(bucket, victim)
    // Past the key id (header bytes of a root are covered too: the flip lands in its seal).
    await putObject(bucket, victim, flip(body, body.length - 20))
    await mustNotRead(t, prefix, `flipped ${kind}`)
  }
})

test('tampering is an authentication error: two blocks swapped, a block from another version, an older root over a newer one', async (t) => {
  // Two blocks of the newest version, at different indexes, swapped.
  {
    const prefix = await encrypted(3000)
    const index = (k: string) => k.split('/.b/')[1].split('/')[0]
    const versionOf = (k: string) => k.split('/').pop()!.split('-')[0]
    const all = await blocksOf(prefix)
    const newest = all.map(versionOf).sort().pop()!
    const [a, b] = all.filter((k) => versionOf(k) === newest).slice(10, 12)
    t.not(index(a), index(b))
    const [ba, bb] = [await getObject(bucket, a), await getObject(bucket, b)]
    await putObject(bucket, a, bb)
    await putObject(bucket, b, ba)
    await mustNotRead(t, prefix, 'swapped blocks')
  }
  // A block of version 1 copied over the same block of version 2.
  {
    const prefix = freshPrefix('enc-versions')
    const db = new S3Database(bucket, prefix, withKey({ blockSize: 512 }))
    await db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)')
    await db.exec(`INSERT INTO t(v) SELECT '${MARKER} ' || n FROM ${series(500)}`)
    const v1 = new Set(await blocksOf(prefix))
    await db.exec(`UPDATE t SET v = '${MARKER} updated ' || id`)
    await db.close()
    const v2 = (await blocksOf(prefix)).filter((k) => !v1.has(k))
    // The same block index in both versions: `P/.b/{index}/...`.
    const index = (k: string) => k.split('/.b/')[1].split('/')[0]
    const newer = v2.find((k) => [...v1].some((o) => index(o) === index(k)))!
    const older = [...v1].find((o) => index(o) === index(newer))!
    await putObject(bucket, newer, await getObject(bucket, older))
    await mustNotRead(t, prefix, 'a block from another version')
  }
  // Root of version 2 replaced by root 1 (a rollback by replay).
  {
    const prefix = await encrypted(300, {}, 2)
    const roots = (await listObjects(bucket, `${prefix}/!r/`)).map((o) => o.key).sort()
    // Newest first (the key holds ~v).
    const [newest, older] = [roots[0], roots[roots.length - 1]]
    t.not(newest, older)
    await putObject(bucket, newest, await getObject(bucket, older))
    const db = new S3Database(bucket, prefix, withKey())
    const e = await t.throwsAsync(db.open())
    t.is(e?.code, 'ERR_AUTHENTICATION_FAILED', e?.message)
    await db.close()
  }
})

test('encrypting an existing database by an import with overwrite: GC then collects the plain versions; a keyless import cannot cover an encrypted one', async (t) => {
  const prefix = freshPrefix('enc-overwrite')
  const plain = new S3Database(bucket, prefix, options({ blockSize: 4096 }))
  await plain.exec(`CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t(v) SELECT '${MARKER} ' || n FROM ${series(2000)}`)
  const chunks: Buffer[] = []
  for await (const c of plain.serialize()) chunks.push(c as Buffer)
  await plain.close()
  const file = Buffer.concat(chunks)
  await S3Database.deserialize(bucket, prefix, Readable.from([file]), withKey({ overwrite: true, blockSize: 4096 } as DatabaseOptions))
  const reader = new S3Database(bucket, prefix, withKey())
  t.is((await everything(reader))[0].n, 2000)
  await reader.close()
  await new Promise((r) => setTimeout(r, 1100))
  const report = await S3Database.gc(bucket, prefix, { ...withKey(), gracePeriodMs: 0, unsafeShortGracePeriod: true })
  t.true(report.versionsPruned >= 2 && report.objectsDeleted > 0, JSON.stringify(report))
  for (const o of await listObjects(bucket, `${prefix}/`))
    t.false((await getObject(bucket, o.key)).includes(MARKER), `${o.key} still plain`)
  // Without the key, an import with overwrite is refused, and the database stays as it was.
  const before = await snapshotOf(prefix)
  await t.throwsAsync(S3Database.deserialize(bucket, prefix, Readable.from([file]), options({ overwrite: true } as DatabaseOptions)), {
    code: 'ERR_KEY_MISSING',
  })
  t.deepEqual(await snapshotOf(prefix), before)
})

test('a plain tombstone planted over the newest root is refused, never read', async (t) => {
  // A real tombstone (GC of a plain database), copied over an encrypted database's newest root.
  const plainPrefix = freshPrefix('tomb')
  const p = new S3Database(bucket, plainPrefix, options())
  await p.exec('CREATE TABLE t(x)')
  await p.exec('INSERT INTO t VALUES (1)')
  await p.close()
  await new Promise((r) => setTimeout(r, 1100))
  await S3Database.gc(bucket, plainPrefix, { ...options(), gracePeriodMs: 0, unsafeShortGracePeriod: true })
  const tombstone = (await listObjects(bucket, `${plainPrefix}/!r/`)).find((o) => o.size === 92)!
  t.truthy(tombstone, 'a tombstone to plant')
  const prefix = await encrypted(100)
  const newest = (await listObjects(bucket, `${prefix}/!r/`)).map((o) => o.key).sort()[0]
  await putObject(bucket, newest, await getObject(bucket, tombstone.key))
  const db = new S3Database(bucket, prefix, withKey())
  const e = await t.throwsAsync(everything(db))
  t.is(e?.code, 'ERR_AUTHENTICATION_FAILED', e?.message)
  await db.close()
})

test('keys rotate: new objects under the new key, old ones open while their key is offered', async (t) => {
  const prefix = await encrypted(300)
  const rotated = options({ encryption: { key: keyB, keyId: 'b', previousKeys: { a: keyA } }, blockSize: 512 })
  const db = new S3Database(bucket, prefix, rotated)
  await db.exec(`INSERT INTO t(v) SELECT '${MARKER} late ' || n FROM ${series(300)}`)
  t.deepEqual((await everything(db))[0].n, 600)
  await db.close()
  const roots = (await listObjects(bucket, `${prefix}/!r/`)).map((o) => o.key).sort()
  const newestRoot = await getObject(bucket, roots[0])
  // The sealed part starts after the 60-byte header: key id length, then the id.
  t.is(newestRoot.subarray(60, 62).toString('latin1'), '\u0001b', 'the new root is sealed with key b')
  // Only the new key: the old blocks need key a.
  const onlyB = new S3Database(bucket, prefix, options({ encryption: { key: keyB, keyId: 'b' } }))
  const e = await t.throwsAsync(everything(onlyB))
  t.is(e?.code, 'ERR_KEY_MISSING', e?.message)
  t.regex(e?.message ?? '', /key 'a'/)
  await onlyB.close()
  // Only the old key: the newest root needs b.
  await t.throwsAsync(new S3Database(bucket, prefix, withKey()).open(), { code: 'ERR_KEY_MISSING', message: /key 'b'/ })
})

test('encrypted and compressed together; deserialize encrypts on the way in; time travel and GC need the key', async (t) => {
  const file = join(dir, 'import.sqlite')
  const local = new Database(file)
  local.exec(
    `CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t(v) SELECT '${MARKER} ' || n || ' the quick brown fox' FROM ${series(5000)}`,
  )
  local.close()
  const bytes = readFileSync(file)
  const prefix = freshPrefix('enc-import')
  await S3Database.deserialize(bucket, prefix, Readable.from([bytes]), withKey({ compression: 'zstd', blockSize: 4096 }))
  const stored = (await listObjects(bucket, `${prefix}/`)).reduce((s, o) => s + o.size, 0)
  t.true(stored * 2 < bytes.length, `compressed before sealing: ${stored} of ${bytes.length}`)
  for (const o of await listObjects(bucket, `${prefix}/`)) t.false((await getObject(bucket, o.key)).includes(MARKER))
  const db = new S3Database(bucket, prefix, withKey())
  const chunks: Buffer[] = []
  for await (const c of db.serialize()) chunks.push(c as Buffer)
  t.true(Buffer.concat(chunks).equals(bytes), 'the export is the imported file')
  const v1 = db.version
  await db.exec(`DELETE FROM t WHERE id > 10`)
  await db.close()
  const old = new S3Database(bucket, prefix, withKey({ version: v1 }))
  t.is((await everything(old))[0].n, 5000)
  await old.close()
  await t.throwsAsync(S3Database.gc(bucket, prefix, { ...options(), gracePeriodMs: 0, unsafeShortGracePeriod: true }), {
    code: 'ERR_KEY_MISSING',
  })
  await new Promise((r) => setTimeout(r, 1100))
  const report = await S3Database.gc(bucket, prefix, { ...withKey(), gracePeriodMs: 0, unsafeShortGracePeriod: true })
  t.true(report.versionsPruned >= 1)
  const after = new S3Database(bucket, prefix, withKey())
  t.is((await everything(after))[0].n, 10)
  t.deepEqual(await after.get('PRAGMA integrity_check'), { integrity_check: 'ok' })
  await after.close()
})

test('bad encryption options are ERR_INVALID_ARGUMENT, and never echo a key', (t) => {
  const short = randomBytes(31)
  for (const encryption of [
    { key: short },
    { key: 'a string' },
    { key: keyA, keyId: '' },
    { key: keyA, keyId: 'x'.repeat(65) },
    { key: keyA, previousKeys: { old: short } },
  ]) {
    const e = t.throws(() => new S3Database(bucket, 'x', options({ encryption } as never)), { code: 'ERR_INVALID_ARGUMENT' })
    t.false(e?.message.includes(short.toString('hex')))
  }
  t.throws(() => new S3Database(bucket, 'x', options({ encryption: { key: keyA }, layout: 'sqlite-s3vfs' })), {
    code: 'ERR_INVALID_ARGUMENT',
  })
})

// Found by the key provider's red team: a key's bytes are found through the typed array's own
// getters, so a subclass that overrides `length` is refused, and one that overrides `byteOffset`
// still seals under the bytes it holds, not under neighbouring bytes of its buffer.
test('a key object that lies about its length or offset: refused, or sealed under the bytes it really holds', async (t) => {
  class Longer extends Uint8Array {
    get length() {
      return 32
    }
  }
  // Refused here, by its real length (native code would refuse 16 bytes too, with another message).
  t.throws(() => new S3Database(bucket, 'x', options({ encryption: { key: new Longer(16) } })), {
    code: 'ERR_INVALID_ARGUMENT',
    message: /^encryption\.key must be 32 bytes \(a Buffer/,
  })
  t.throws(() => new S3Database(bucket, 'x', options({ s3: { sseCustomerKey: new Longer(16) } })), {
    code: 'ERR_INVALID_ARGUMENT',
    message: /^s3\.sseCustomerKey must be 32 bytes/,
  })
  // 32 doubles dressed as a Uint8Array: not bytes a key can be.
  const doubles = Object.setPrototypeOf(new Float64Array(32), Uint8Array.prototype) as Uint8Array
  t.throws(() => new S3Database(bucket, 'x', options({ encryption: { key: doubles } })), {
    code: 'ERR_INVALID_ARGUMENT',
    message: /^encryption\.key must be 32 bytes/,
  })
  // keyA in the first 32 bytes of a 64-byte buffer, with an offset that points past it.
  class Shifted extends Uint8Array {
    get byteOffset() {
      return 32
    }
  }
  const backing = new ArrayBuffer(64)
  new Uint8Array(backing).set(keyA)
  const prefix = freshPrefix('enc-shifted')
  const db = new S3Database(bucket, prefix, options({ encryption: { key: new Shifted(backing, 0, 32), keyId: 'a' } }))
  await db.exec(`CREATE TABLE t(v); INSERT INTO t VALUES ('${MARKER}')`)
  await db.close()
  const check = new S3Database(bucket, prefix, withKey())
  t.deepEqual(await check.all('SELECT v FROM t'), [{ v: MARKER }])
  await check.close()
})

// Found by a red team: a key is read once, and copied before the call returns, so a getter that
// changes its answer, or a caller that shrinks or wipes its buffer at once (while inspect() or
// gc() works on other threads), changes nothing.
test('a key is read once and copied at the call: a changing getter, a shrunk or wiped buffer change nothing', async (t) => {
  const prefix = freshPrefix('enc-once')
  let reads = 0
  const encryption = {
    keyId: 'a',
    get key() {
      reads++
      return reads === 1 ? keyA : new Proxy(new Uint8Array(32), {})
    },
  }
  const db = new S3Database(bucket, prefix, options({ encryption }))
  await db.exec(`CREATE TABLE t(v); INSERT INTO t VALUES ('${MARKER}')`)
  await db.close()
  t.is(reads, 1)
  // gc() with a key in a buffer wiped as soon as the call returns.
  const wiped = Buffer.from(keyA)
  const collected = S3Database.gc(bucket, prefix, {
    ...options({ encryption: { key: wiped, keyId: 'a' } }),
    gracePeriodMs: 0,
    unsafeShortGracePeriod: true,
  })
  wiped.fill(0)
  await t.notThrowsAsync(collected)
  const check = new S3Database(bucket, prefix, withKey())
  t.deepEqual(await check.all('SELECT v FROM t'), [{ v: MARKER }])
  await check.close()
  // inspect() with an SSE-C key in a resizable buffer shrunk to nothing at once.
  for (let i = 0; i < 50; i++) {
    const backing = new ArrayBuffer(8192, { maxByteLength: 8192 })
    const view = new Uint8Array(backing, 4096, 32)
    view.set(keyB)
    const inspected = S3Database.inspect(bucket, prefix, options({ s3: { sseCustomerKey: view } }))
    backing.resize(0)
    t.like(await inspected, { layout: 'versioned' })
  }
})
