// S3 server-side encryption options: every PUT of every object the package writes carries the
// SSE headers (SSE-S3/KMS), and with SSE-C every PUT, GET and HEAD carries the customer key and
// its MD5 — checked on the wire by a request-capturing proxy, over a database's whole life in
// both layouts: create, write, commit, early uploads, import, export, GC and its clock probe,
// the conditional-write probe. The SSE-C key never reaches a log line or an error message.
import test from 'ava'
import { createHash, randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { type DatabaseOptions, S3Database } from '../index'
import { FaultProxy } from './helpers/fault-proxy'
import { freshBucket, freshPrefix, options } from './helpers/s3'

let bucket = ''
test.before(async () => {
  bucket = await freshBucket('sse')
})

/** A database's life: writes (one past memoryLimit, so blocks go up early), an import, an
 *  export, a GC (versioned layout), reads by a second connection. */
async function life(o: DatabaseOptions, layout: 'versioned' | 'sqlite-s3vfs') {
  const prefix = freshPrefix(`sse-${layout}`)
  const db = new S3Database(bucket, prefix, { ...o, layout, blockSize: 4096, memoryLimit: 16384 })
  await db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)')
  await db.transaction((tx) =>
    tx.exec(
      "INSERT INTO t(v) WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) SELECT printf('row %d %s', i, hex(randomblob(20))) FROM n",
    ),
  )
  const chunks: Buffer[] = []
  for await (const c of db.serialize()) chunks.push(c as Buffer)
  await db.close()
  const copy = freshPrefix(`sse-${layout}-copy`)
  await S3Database.deserialize(bucket, copy, Readable.from([Buffer.concat(chunks)]), { ...o, layout })
  const reader = new S3Database(bucket, copy, { ...o, layout })
  const { n } = (await reader.get<{ n: number }>('SELECT count(*) AS n FROM t'))!
  await reader.close()
  if (layout === 'versioned') await S3Database.gc(bucket, prefix, { ...o, gracePeriodMs: 0, unsafeShortGracePeriod: true })
  return n
}

for (const layout of ['versioned', 'sqlite-s3vfs'] as const) {
  test.serial(`${layout}: every PUT carries SSE-KMS headers (key id, bucket key)`, async (t) => {
    const proxy = await FaultProxy.start()
    try {
      const o = options({
        s3: { endpoint: proxy.url, serverSideEncryption: 'aws:kms', sseKmsKeyId: 'alias/my-key', bucketKeyEnabled: true },
      })
      t.is(await life(o, layout), 2000)
      const puts = proxy.requests.filter((r) => r.kind === 'PUT' || r.kind === 'PUT_INM')
      t.true(puts.length > 10, `${puts.length} PUTs`)
      for (const r of puts) {
        t.like(
          r.headers,
          {
            'x-amz-server-side-encryption': 'aws:kms',
            'x-amz-server-side-encryption-aws-kms-key-id': 'alias/my-key',
            'x-amz-server-side-encryption-bucket-key-enabled': 'true',
          },
          `${r.kind} ${r.key}`,
        )
      }
      // Other requests carry none (S3 refuses SSE headers on a GET).
      for (const r of proxy.requests.filter((r) => r.kind === 'GET' || r.kind === 'HEAD' || r.kind === 'LIST')) {
        t.is(r.headers['x-amz-server-side-encryption'], undefined, `${r.kind} ${r.key}`)
      }
    } finally {
      await proxy.stop()
    }
  })

  test.serial(`${layout}: SSE-C sends the customer key and its MD5 on every PUT, GET and HEAD, and never logs it`, async (t) => {
    const proxy = await FaultProxy.start()
    const key = randomBytes(32)
    const lines: string[] = []
    const logger = {
      debug: (f: unknown, m: string) => lines.push(JSON.stringify(f) + m),
      warn: (f: unknown, m: string) => lines.push(JSON.stringify(f) + m),
    }
    try {
      const o = options({ s3: { endpoint: proxy.url, sseCustomerKey: key }, logger })
      t.is(await life(o, layout), 2000)
      const keyed = proxy.requests.filter((r) => ['PUT', 'PUT_INM', 'GET', 'HEAD'].includes(r.kind))
      t.true(keyed.some((r) => r.kind === 'GET'))
      for (const r of keyed) {
        t.like(
          r.headers,
          {
            'x-amz-server-side-encryption-customer-algorithm': 'AES256',
            'x-amz-server-side-encryption-customer-key': key.toString('base64'),
            'x-amz-server-side-encryption-customer-key-md5': createHash('md5').update(key).digest('base64'),
          },
          `${r.kind} ${r.key}`,
        )
      }
      // An error on the way: its message does not hold the key either.
      const db = new S3Database(bucket, freshPrefix('sse-error'), o)
      const e = await t.throwsAsync(db.exec('SELECT * FROM missing'))
      await db.close()
      const secret = [key.toString('base64'), key.toString('hex'), createHash('md5').update(key).digest('base64')]
      for (const s of secret) {
        t.false(lines.join('\n').includes(s), 'the log never holds the key or its MD5')
        t.false(`${e?.message} ${e?.stack}`.includes(s))
      }
      t.true(lines.length > 10, 'the log was on')
    } finally {
      await proxy.stop()
    }
  })
}

test('bad SSE options are refused with ERR_INVALID_ARGUMENT, and never echo the key', (t) => {
  const key = randomBytes(31)
  for (const s3 of [
    { serverSideEncryption: 'aws:foo' },
    { sseKmsKeyId: 'k' },
    { sseKmsKeyId: 'k', serverSideEncryption: 'AES256' },
    { sseCustomerKey: key },
    { sseCustomerKey: 'a string' },
    { sseCustomerKey: randomBytes(32), serverSideEncryption: 'AES256' },
    // The key would cross the network in the clear.
    { sseCustomerKey: randomBytes(32), endpoint: 'http://s3.example.com' },
    { bucketKeyEnabled: true, serverSideEncryption: 'aws:kms:dsse' },
    { bucketKeyEnabled: true },
  ]) {
    const e = t.throws(() => new S3Database(bucket, 'x', options({ s3: s3 as never })), { code: 'ERR_INVALID_ARGUMENT' })
    t.false(e?.message.includes(key.toString('base64')))
  }
})

test('the CLI: --sse and --sse-kms-key-id on every PUT; the SSE-C key from SQLITE_S3VFS_SSE_C_KEY or a file, on every request', async (t) => {
  const { spawn } = await import('node:child_process')
  const { mkdtempSync, writeFileSync } = await import('node:fs')
  const { tmpdir } = await import('node:os')
  const { join, resolve } = await import('node:path')
  const Database = (await import('better-sqlite3')).default
  const dir = mkdtempSync(join(tmpdir(), 's3vfs-sse-cli-'))
  const file = join(dir, 'in.sqlite')
  const local = new Database(file)
  local.exec("CREATE TABLE t(x); INSERT INTO t VALUES ('a'), ('b')")
  local.close()
  const proxy = await FaultProxy.start()
  const cli = resolve(__dirname, '..', 'bin', 'cli.js')
  // Asynchronous: the proxy answers from this process.
  const run = (env: Record<string, string>, ...args: string[]) =>
    new Promise<{ code: number | null; out: string; err: string }>((ok) => {
      const p = spawn(process.execPath, [cli, ...args, '--endpoint', proxy.url], { env: { ...process.env, NODE_NO_WARNINGS: '1', ...env } })
      let out = ''
      let err = ''
      p.stdout.on('data', (d) => (out += d))
      p.stderr.on('data', (d) => (err += d))
      p.on('exit', (code) => ok({ code, out, err }))
    })
  try {
    const url = `s3://${bucket}/${freshPrefix('sse-cli')}`
    const kms = await run({}, 'import', file, url, '--sse', 'aws:kms', '--sse-kms-key-id', 'alias/k', '--quiet')
    t.is(kms.code, 0, kms.err)
    const puts = proxy.requests.filter((r) => r.kind === 'PUT' || r.kind === 'PUT_INM')
    t.true(puts.length > 0)
    for (const r of puts)
      t.like(r.headers, { 'x-amz-server-side-encryption': 'aws:kms', 'x-amz-server-side-encryption-aws-kms-key-id': 'alias/k' })
    const key = randomBytes(32)
    proxy.requests.length = 0
    const url2 = `s3://${bucket}/${freshPrefix('sse-c-cli')}`
    const keyFile = join(dir, 'ssec.key')
    writeFileSync(keyFile, key.toString('base64'))
    t.is((await run({}, 'import', file, url2, '--sse-c-key-file', keyFile, '--quiet')).code, 0)
    const q = await run({ SQLITE_S3VFS_SSE_C_KEY: key.toString('hex') }, 'query', url2, 'SELECT count(*) AS n FROM t', '--json')
    t.is(q.code, 0, q.err)
    t.deepEqual(JSON.parse(q.out), [{ n: 2 }])
    const keyed = proxy.requests.filter((r) => ['PUT', 'PUT_INM', 'GET', 'HEAD'].includes(r.kind))
    t.true(keyed.length > 0)
    for (const r of keyed) t.is(r.headers['x-amz-server-side-encryption-customer-key'], key.toString('base64'), `${r.kind} ${r.key}`)
    const bad = await run({ SQLITE_S3VFS_SSE_C_KEY: 'nope' }, 'query', url2, 'SELECT 1')
    t.is(bad.code, 2)
    t.regex(bad.err, /SQLITE_S3VFS_SSE_C_KEY must hold a 32-byte key/)
  } finally {
    await proxy.stop()
  }
})

test('SSE-C and cacheDir: blocks cached under one customer key are not served to a process with another', async (t) => {
  const { mkdtempSync } = await import('node:fs')
  const { tmpdir } = await import('node:os')
  const { join } = await import('node:path')
  const cacheDir = mkdtempSync(join(tmpdir(), 's3vfs-sse-cache-'))
  const keyA = randomBytes(32)
  const prefix = freshPrefix('sse-c-cache')
  const writer = new S3Database(bucket, prefix, options({ s3: { sseCustomerKey: keyA }, blockSize: 4096 }))
  await writer.exec(
    `CREATE TABLE t(v); INSERT INTO t SELECT randomblob(500) FROM ${'(WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 400) SELECT n FROM s)'}`,
  )
  await writer.close()
  const gets = async (key: Buffer) => {
    const db = new S3Database(bucket, prefix, options({ s3: { sseCustomerKey: key }, cacheDir }))
    await db.get('SELECT count(*), sum(length(v)) FROM t')
    const n = db.stats().get
    await db.close()
    return n
  }
  const cold = await gets(keyA)
  const warm = await gets(keyA)
  const other = await gets(randomBytes(32))
  t.log({ cold, warm, other })
  t.true(cold > 10 && warm <= 2, 'the same key reads the disk cache')
  // Another key: every block is fetched from S3 (which would refuse it), none served from disk.
  t.true(other >= cold - 2, `another key fetched ${other} objects, against ${cold} cold`)
})
