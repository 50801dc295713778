// `encryption.keyProvider`: keys fetched by id (from a KMS) when first needed. The current key at
// open, an older one when an object sealed under it is read; each once per open database, however
// many reads need it at once; what the provider throws, gives wrongly or never answers is
// ERR_KEY_PROVIDER (not remembered), a key it does not have is ERR_KEY_MISSING (remembered), and none of these
// changes the bucket, hangs, or shows a key.
import test from 'ava'
import Database from 'better-sqlite3'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { type DatabaseOptions, type EncryptionOptions, S3Database } from '../index'
import { DeleteObjectCommand } from '@aws-sdk/client-s3'
import { client, freshBucket, freshPrefix, getObject, listObjects, options, putObject, series } from './helpers/s3'

let bucket = ''
const dir = mkdtempSync(join(tmpdir(), 's3vfs-key-provider-'))
test.before(async () => {
  bucket = await freshBucket('key-provider')
})
test.after.always(() => rmSync(dir, { recursive: true, force: true }))

const keys: Record<string, Buffer> = { '2025': randomBytes(32), '2026': randomBytes(32) }

/** A stand-in for a KMS: answers after `delayMs`, and records every key id it was asked for. */
function kms(delayMs = 20, known: Record<string, Buffer> = keys) {
  const asked: string[] = []
  const provider = async (keyId: string) => {
    asked.push(keyId)
    await new Promise((r) => setTimeout(r, delayMs))
    return known[keyId] ?? null
  }
  return { asked, provider }
}

const withProvider = (provider: EncryptionOptions['keyProvider'], keyId = '2026', extra: DatabaseOptions = {}) =>
  options({ encryption: { keyProvider: provider, keyId }, blockSize: 512, ...extra })

async function snapshotOf(prefix: string) {
  const objects = await listObjects(bucket, `${prefix}/`)
  return Promise.all(objects.map(async (o) => [o.key, (await getObject(bucket, o.key)).toString('base64')]))
}

const count = async (db: S3Database) => (await db.get<{ n: number }>('SELECT count(*) AS n FROM t'))?.n

/** 300 rows under key 2025 (given as a plain key), then 300 under 2026 (from the provider). */
async function rotated(): Promise<string> {
  const prefix = freshPrefix('kp')
  const db = new S3Database(bucket, prefix, options({ encryption: { key: keys['2025'], keyId: '2025' }, blockSize: 512 }))
  await db.exec(
    `CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t(v) SELECT 'old ' || n || hex(randomblob(30)) FROM ${series(300)}`,
  )
  await db.close()
  const { provider } = kms()
  const db2 = new S3Database(bucket, prefix, withProvider(provider))
  await db2.exec(`INSERT INTO t(v) SELECT 'new ' || n FROM ${series(300)}`)
  await db2.close()
  return prefix
}

test('the provider gives the current key at open and an older one when its objects are read, each once', async (t) => {
  const prefix = await rotated()
  const { asked, provider } = kms(50)
  const db = new S3Database(bucket, prefix, withProvider(provider, '2026', { concurrency: 8, readAhead: 0 }))
  await db.open()
  t.deepEqual(asked, ['2026'], 'the current key, at open')
  // Many reads at once, all needing the old key: it is asked for once.
  const answers = await Promise.all(
    Array.from({ length: 20 }, (_, i) => db.get<{ v: string }>('SELECT v FROM t WHERE id = ?', [1 + i * 7])),
  )
  t.true(answers.every((a) => a?.v.startsWith('old ')))
  t.is(await count(db), 600)
  t.deepEqual(await db.get('PRAGMA integrity_check'), { integrity_check: 'ok' })
  t.deepEqual(asked, ['2026', '2025'])
  await db.close()
  // A provider that gives the keys synchronously works too.
  const sync = new S3Database(
    bucket,
    prefix,
    withProvider((id) => keys[id]),
  )
  t.is(await count(sync), 600)
  await sync.close()
})

test('a key the provider does not have: ERR_KEY_MISSING (at open for the current key, at the read for an old one); the bucket unchanged', async (t) => {
  const prefix = await rotated()
  const before = await snapshotOf(prefix)
  const onlyNew = kms(5, { '2026': keys['2026'] })
  const db = new S3Database(bucket, prefix, withProvider(onlyNew.provider))
  const newest = await db.get<{ v: string }>('SELECT v FROM t ORDER BY id DESC LIMIT 1')
  t.is(newest?.v, 'new 300')
  await t.throwsAsync(count(db), { code: 'ERR_KEY_MISSING', message: /key '2025'/ })
  // Its answer is kept: a second scan (every block under the old key) does not ask again.
  await t.throwsAsync(count(db), { code: 'ERR_KEY_MISSING' })
  t.is(onlyNew.asked.filter((id) => id === '2025').length, 1)
  await db.close()
  const none = kms(5, {})
  const db2 = new S3Database(bucket, prefix, withProvider(none.provider))
  await t.throwsAsync(db2.open(), { code: 'ERR_KEY_MISSING', message: /key '2026'/ })
  await db2.close()
  // The right id with other bytes: the object does not authenticate.
  const wrong = new S3Database(
    bucket,
    prefix,
    withProvider(() => randomBytes(32)),
  )
  await t.throwsAsync(wrong.open(), { code: 'ERR_AUTHENTICATION_FAILED' })
  await wrong.close()
  t.deepEqual(await snapshotOf(prefix), before, 'nothing in the bucket changed')
})

test('a provider that throws, gives a bad key, or never answers: ERR_KEY_PROVIDER, no hang, no key shown; a later try succeeds', async (t) => {
  const prefix = await rotated()
  const before = await snapshotOf(prefix)
  let failures = 1
  const flaky = async (id: string) => {
    if (failures-- > 0) throw new Error('KMS throttled: try later')
    return keys[id]
  }
  const db = new S3Database(bucket, prefix, withProvider(flaky))
  await t.throwsAsync(db.open(), { code: 'ERR_KEY_PROVIDER', message: /keyProvider\('2026'\) failed: .*KMS throttled/ })
  // The failure is not remembered: the next call asks again, and works.
  t.is(await count(db), 600)
  await db.close()

  const secret = keys['2026']
  for (const [provider, message] of [
    [() => secret.subarray(0, 31), /gave 31 bytes, not 32/],
    [() => secret.toString('hex') as unknown as Uint8Array, /gave string, not a Uint8Array/],
    [() => Promise.reject(new TypeError('no access to key')), /failed: .*no access to key/],
  ] as const) {
    const bad = new S3Database(bucket, prefix, withProvider(provider))
    const e = await t.throwsAsync(bad.open(), { code: 'ERR_KEY_PROVIDER', message })
    for (const form of [secret.toString('hex'), secret.toString('base64'), secret.subarray(0, 31).toString('hex')]) {
      t.false(`${e?.message}${e?.stack}`.includes(form), 'no key in the error')
    }
    await bad.close()
  }

  const started = Date.now()
  // Held (as a stalled request is), so it is the timeout that ends the wait, not a collection.
  const stalled = new Promise<Uint8Array>(() => undefined)
  const slow = new S3Database(
    bucket,
    prefix,
    options({ encryption: { keyProvider: () => stalled, keyId: '2026', keyProviderTimeoutMs: 300 } }),
  )
  await t.throwsAsync(slow.open(), { code: 'ERR_KEY_PROVIDER', message: /did not answer within 300 ms/ })
  t.true(Date.now() - started < 10_000)
  await slow.close()
  t.deepEqual(await snapshotOf(prefix), before, 'nothing in the bucket changed')
})

test('streams and GC take the provider: deserialize seals under its key, serialize and GC open with it', async (t) => {
  const file = join(dir, 'import.sqlite')
  const local = new Database(file)
  local.exec(`CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t(v) SELECT 'row ' || n FROM ${series(2000)}`)
  local.close()
  const bytes = readFileSync(file)
  const prefix = freshPrefix('kp-import')
  const importer = kms()
  await S3Database.deserialize(bucket, prefix, Readable.from([bytes]), withProvider(importer.provider, '2026', { blockSize: 4096 }))
  t.deepEqual(importer.asked, ['2026'])
  for (const o of await listObjects(bucket, `${prefix}/`)) t.false((await getObject(bucket, o.key)).includes('row 1'))
  const reader = kms()
  const db = new S3Database(bucket, prefix, withProvider(reader.provider))
  const chunks: Buffer[] = []
  for await (const c of db.serialize()) chunks.push(c as Buffer)
  t.true(Buffer.concat(chunks).equals(bytes), 'the export is the imported file')
  await db.exec('DELETE FROM t WHERE id > 10')
  await db.close()
  t.deepEqual(reader.asked, ['2026'])
  await new Promise((r) => setTimeout(r, 1100))
  const collector = kms()
  const report = await S3Database.gc(bucket, prefix, {
    ...withProvider(collector.provider),
    gracePeriodMs: 0,
    unsafeShortGracePeriod: true,
  })
  t.true(report.versionsPruned >= 1)
  t.true(collector.asked.length >= 1 && collector.asked.every((id) => id === '2026'))
  const after = new S3Database(bucket, prefix, withProvider(kms().provider))
  t.is(await count(after), 10)
  await after.close()
})

test('bad keyProvider options are ERR_INVALID_ARGUMENT', (t) => {
  for (const encryption of [
    { keyProvider: 'not a function' },
    { keyProvider: () => keys['2026'], key: keys['2026'] },
    { keyProvider: () => keys['2026'], keyProviderTimeoutMs: 0 },
    {},
  ]) {
    t.throws(() => new S3Database(bucket, 'x', options({ encryption: encryption as EncryptionOptions })), {
      code: 'ERR_INVALID_ARGUMENT',
    })
  }
})

// Red team of the provider (findings 1 and 4): every block of a scan or an export waits for the
// same key. The waits must not take the runtime's threads (the timeout would never fire, and
// every database of the process would stall), and one failure is paid once, not once per block.
test('a provider that never answers, under a parallel scan and an export: one question, the timeout fires, other databases go on', async (t) => {
  const prefix = await rotated()
  const plain = freshPrefix('kp-plain')
  const other = new S3Database(bucket, plain, options())
  await other.exec(`CREATE TABLE t(x); INSERT INTO t SELECT n FROM ${series(100)}`)
  for (const mode of ['scan', 'serialize'] as const) {
    const asked: string[] = []
    // Held, as a real stalled request is (by its socket), so only the timeout can end the wait.
    const stalled: Promise<Uint8Array>[] = []
    const db = new S3Database(
      bucket,
      prefix,
      options({
        blockSize: 512,
        encryption: {
          keyId: '2026',
          keyProviderTimeoutMs: 1500,
          keyProvider: (id) => {
            asked.push(id)
            if (id === '2026') return keys[id]
            stalled.push(new Promise<Uint8Array>(() => undefined))
            return stalled[stalled.length - 1]
          },
        },
      }),
    )
    await db.open()
    const started = Date.now()
    const work =
      mode === 'scan'
        ? Promise.all(Array.from({ length: 8 }, () => count(db)))
        : (async () => {
            for await (const _ of db.serialize()) void _
          })()
    // Meanwhile, a database that needs no key answers at once.
    const during = Date.now()
    t.is((await other.get<{ n: number }>('SELECT count(*) AS n FROM t'))?.n, 100)
    t.true(Date.now() - during < 1000, `${mode}: another database waited ${Date.now() - during} ms`)
    await t.throwsAsync(work, { code: 'ERR_KEY_PROVIDER', message: /did not answer within 1500 ms/ })
    const took = Date.now() - started
    t.true(took < 6000, `${mode}: the timeout fired after ${took} ms`)
    t.deepEqual(asked, ['2026', '2025'], `${mode}: the old key was asked for once`)
    await db.close()
  }
  await other.close()
})

// Found in CI: a promise nothing holds and nothing can settle is garbage-collected, and napi's
// side of it is dropped with it. That is a provider that will never answer, said as such at once,
// with the provider's code, not the timeout's message 20 s later, nor napi's "oneshot canceled".
test('a provider whose promise is garbage-collected unsettled: ERR_KEY_PROVIDER at once, saying it never answered', async (t) => {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc === undefined) throw new Error('run ava with --expose-gc (package.json ava.nodeArguments)')
  const prefix = await rotated()
  const db = new S3Database(
    bucket,
    prefix,
    options({
      blockSize: 512,
      encryption: { keyId: '2026', keyProviderTimeoutMs: 20_000, keyProvider: () => new Promise<Uint8Array>(() => undefined) },
    }),
  )
  const started = Date.now()
  const outcome = db.open().then(
    () => 'opened',
    (e: { code?: string; message?: string }) => e,
  )
  let settled = false
  void outcome.then(() => (settled = true))
  while (!settled && Date.now() - started < 15_000) {
    gc()
    await new Promise((r) => setTimeout(r, 50))
  }
  const e = await outcome
  t.like(e, { code: 'ERR_KEY_PROVIDER' })
  t.regex((e as Error).message, /encryption\.keyProvider\('2026'\) never answered: its promise was dropped unsettled \(garbage-collected/)
  t.true(Date.now() - started < 15_000, `it took ${Date.now() - started} ms`)
  // Nothing changed: a provider that answers opens every row.
  await db.close()
  const again = new S3Database(bucket, prefix, withProvider(kms().provider))
  t.is(await count(again), 600)
  await again.close()
})

test('the provider gets the database it is asked for, and is its allowlist: a tenant copied over another is refused', async (t) => {
  const tenantKeys: Record<string, Buffer> = { 'tenant-a': randomBytes(32), 'tenant-b': randomBytes(32) }
  const owner: Record<string, string> = {}
  const seen: { bucket: string; prefix: string }[] = []
  // Gives a tenant's key only for that tenant's own prefix.
  const provider = async (id: string, database: { bucket: string; prefix: string }) => {
    seen.push(database)
    return owner[database.prefix] === id ? tenantKeys[id] : null
  }
  const [pa, pb] = [freshPrefix('tenant-a'), freshPrefix('tenant-b')]
  owner[pa] = 'tenant-a'
  owner[pb] = 'tenant-b'
  for (const [prefix, id, row] of [
    [pa, 'tenant-a', 'A row'],
    [pb, 'tenant-b', 'B secret'],
  ]) {
    const db = new S3Database(bucket, prefix, options({ encryption: { keyProvider: provider, keyId: id } }))
    await db.exec(`CREATE TABLE t(v TEXT); INSERT INTO t VALUES ('${row}')`)
    await db.close()
  }
  t.deepEqual(seen[0], { bucket, prefix: pa })
  // The bucket's owner replaces A's objects with B's.
  for (const o of await listObjects(bucket, `${pa}/`)) {
    await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: o.key }))
  }
  for (const o of await listObjects(bucket, `${pb}/`)) {
    await putObject(bucket, pa + o.key.slice(pb.length), await getObject(bucket, o.key))
  }
  const a = new S3Database(bucket, pa, options({ encryption: { keyProvider: provider, keyId: 'tenant-a' } }))
  await t.throwsAsync(a.all('SELECT v FROM t'), { code: 'ERR_KEY_MISSING', message: /'tenant-b'/ })
  await a.close()
})

test('a failed open forgets what the provider lacked; an old version needs no sealing key; odd rejections still say why', async (t) => {
  const prefix = await rotated()
  // Rotating to 2027 before the KMS has it: the open fails, then works once it has.
  let ready = false
  const late = new S3Database(
    bucket,
    prefix,
    withProvider(async (id) => (id === '2027' ? (ready ? keys['2026'] : null) : keys[id]), '2027'),
  )
  await t.throwsAsync(late.open(), {
    code: 'ERR_KEY_MISSING',
    message: /the key '2027' that seals new objects \(encryption\.keyId\) was not given/,
  })
  ready = true
  await late.open()
  t.is(await count(late), 600)
  await late.close()

  // Version 2 (the first 300 rows, all under 2025) with a provider that has only 2025.
  const old = new S3Database(
    bucket,
    prefix,
    withProvider(async (id) => (id === '2025' ? keys[id] : null), '2026', { version: 2 }),
  )
  t.is(await count(old), 300)
  await old.close()

  for (const [thrown, message] of [
    ['a string', /failed: a string/],
    ['', /failed: threw without a message/],
    [undefined, /failed: undefined/],
    [{ code: 42 }, /failed: \[object Object\]/],
    [
      {
        toString() {
          throw new Error('no')
        },
      },
      /failed: threw a value that cannot be shown as text/,
    ],
    // The provider's own failure, whatever its text: not taken for napi's dropped promise.
    ['oneshot canceled', /failed: oneshot canceled/],
    // A key thrown by mistake: its size, never its bytes (red team of the GC fix, finding 3).
    [keys['2026'], /failed: threw 32 bytes \(not shown\)/],
    [new Uint8Array(keys['2026']), /failed: threw 32 bytes \(not shown\)/],
    [Object.assign(new Error(), { message: keys['2026'] }), /failed: threw 32 bytes \(not shown\)/],
    [[...keys['2026']], /failed: threw an array of 32 items \(not shown\)/],
  ] as const) {
    const db = new S3Database(
      bucket,
      prefix,
      withProvider(() => Promise.reject(thrown)),
    )
    const e = await t.throwsAsync(db.open(), { code: 'ERR_KEY_PROVIDER', message })
    const key = keys['2026']
    for (const shown of [key.toString('hex'), key.toString('base64'), key.join(','), key.toString('latin1'), String(key)]) {
      t.false(e!.message.includes(shown), 'a key thrown by the provider is in the message')
    }
    await db.close()
  }
})

// Red team of the GC fix (finding 1): the key's length and bytes are read from the typed array
// itself, so an object that overrides `length` is not a key, nor is a Proxy, and neither seals
// anything; a `valueOf` does not replace the bytes used.
test('a forged key (a length getter over 16 bytes, a Proxy) is ERR_KEY_PROVIDER and seals nothing; a valueOf is ignored', async (t) => {
  const prefix = await rotated()
  const before = await snapshotOf(prefix)
  class Longer extends Uint8Array {
    get length() {
      return 32
    }
  }
  for (const [forged, message] of [
    [new Longer(16), /gave 16 bytes, not 32/],
    [new Proxy(new Uint8Array(32), {}), /gave object, not a Uint8Array of 32 bytes/],
  ] as const) {
    const db = new S3Database(
      bucket,
      prefix,
      withProvider(async () => forged),
    )
    await t.throwsAsync(db.exec('INSERT INTO t(v) VALUES (1)'), { code: 'ERR_KEY_PROVIDER', message })
    await db.close()
  }
  t.deepEqual(await snapshotOf(prefix), before)
  // The real key's bytes, with a valueOf that Buffer.from would have taken instead.
  const valued = async (id: string) => Object.assign(new Uint8Array(keys[id]), { valueOf: () => 'x'.repeat(32) })
  const db = new S3Database(bucket, prefix, withProvider(valued))
  await db.exec(`INSERT INTO t(v) VALUES ('sealed under the real key')`)
  await db.close()
  const real = new S3Database(
    bucket,
    prefix,
    options({ encryption: { key: keys['2026'], keyId: '2026', previousKeys: { '2025': keys['2025'] } } }),
  )
  t.is(await count(real), 601)
  t.deepEqual(await real.get('PRAGMA integrity_check'), { integrity_check: 'ok' })
  await real.close()
})

test('a provider that wipes its key as soon as it returns: what was sealed opens with the real key', async (t) => {
  const prefix = freshPrefix('kp-wipe')
  const wiping = async (id: string) => {
    const k = Buffer.from(keys[id])
    setImmediate(() => k.fill(0))
    return k
  }
  const db = new S3Database(bucket, prefix, withProvider(wiping))
  await db.exec(`CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t(v) SELECT 'w ' || n FROM ${series(200)}`)
  await db.close()
  const check = new S3Database(bucket, prefix, options({ encryption: { key: keys['2026'], keyId: '2026' } }))
  t.is(await count(check), 200)
  t.deepEqual(await check.get('PRAGMA integrity_check'), { integrity_check: 'ok' })
  await check.close()
  const zeros = new S3Database(bucket, prefix, options({ encryption: { key: Buffer.alloc(32), keyId: '2026' } }))
  await t.throwsAsync(zeros.open(), { code: 'ERR_AUTHENTICATION_FAILED' })
  await zeros.close()
})
