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
import { freshBucket, freshPrefix, getObject, listObjects, options, series } from './helpers/s3'

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
  const slow = new S3Database(
    bucket,
    prefix,
    options({ encryption: { keyProvider: () => new Promise<Uint8Array>(() => undefined), keyId: '2026', keyProviderTimeoutMs: 300 } }),
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
