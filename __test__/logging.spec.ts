// The request log (`options.logger`, `DEBUG=sqlite-s3vfs`, the CLI's --debug): every request at
// debug with method, key, status, bytes, ms and attempt; retries and give-ups at warn; never a
// credential or a signature, checked against a server that verifies SigV4 with a known secret.
import test from 'ava'
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3'
import { spawnSync } from 'node:child_process'
import { resolve } from 'node:path'
import { type Logger, type RequestLogFields, S3Database } from '../index'
import { FaultProxy } from './helpers/fault-proxy'
import { freshBucket, freshPrefix, options } from './helpers/s3'

const sigv4 = process.env.SQLITE_S3VFS_TEST_SIGV4_ENDPOINT ?? ''
const key = process.env.SQLITE_S3VFS_TEST_SIGV4_KEY ?? ''
const secret = process.env.SQLITE_S3VFS_TEST_SIGV4_SECRET ?? ''

interface Line {
  level: 'debug' | 'warn'
  fields: RequestLogFields
  message: string
}

function collector(): { logger: Logger; lines: Line[] } {
  const lines: Line[] = []
  return {
    lines,
    logger: {
      debug: (fields, message) => lines.push({ level: 'debug', fields, message }),
      warn: (fields, message) => lines.push({ level: 'warn', fields, message }),
    },
  }
}

/** Lets the thread-safe calls of the last requests reach JS. */
const settle = () => new Promise((r) => setTimeout(r, 50))

test('every request is logged at debug, and neither the secret nor a signature ever is', async (t) => {
  t.truthy(sigv4 && secret, 'npm test starts the SigV4-checking server')
  const bucket = `t-log-${process.pid}`
  const s3 = { endpoint: sigv4, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: key, secretAccessKey: secret } }
  await new S3Client(s3).send(new CreateBucketCommand({ Bucket: bucket }))
  const { logger, lines } = collector()
  const db = new S3Database(bucket, 'logged/db.sqlite', { s3, logger, blockSize: 4096 })
  await db.exec('CREATE TABLE t(x); INSERT INTO t VALUES (1)')
  t.deepEqual(await db.get('SELECT x FROM t'), { x: 1 })
  await db.close()
  await settle()
  const methods = new Set(lines.map((l) => l.fields.method))
  for (const m of ['LIST', 'PUT', 'GET']) t.true(methods.has(m as RequestLogFields['method']), `a ${m} was logged`)
  const put = lines.find((l) => l.fields.method === 'PUT' && l.fields.key.includes('/!r/'))!
  t.like(put, { level: 'debug', fields: { status: '200', attempt: 1 } })
  t.true(put.fields.bytes > 0 && put.fields.ms >= 0)
  t.regex(put.message, /^sqlite-s3vfs debug PUT logged\/db\.sqlite\/!r\/\S+ 200 \d+ B \d+ ms attempt 1$/)
  const all = JSON.stringify(lines)
  t.false(all.includes(secret), 'the secret key')
  t.false(/signature|authorization|x-amz-/i.test(all), 'a signature or a signed header')
})

test('retries and give-ups are logged at warn, with the error code', async (t) => {
  const proxy = await FaultProxy.start()
  t.teardown(() => proxy.stop())
  const bucket = await freshBucket('log-retry')
  const prefix = freshPrefix('retry')
  const { logger, lines } = collector()
  const db = new S3Database(bucket, prefix, options({ logger, s3: { endpoint: proxy.url, retry: { baseDelayMs: 1, throttleDelayMs: 1 } } }))
  await db.exec('CREATE TABLE t(x)')
  proxy.add({ kind: 'PUT_INM', nth: 1, count: 2, action: 'status', status: 503 })
  proxy.add({ kind: 'GET', nth: 1, count: 1, action: 'status', status: 500 })
  await db.run('INSERT INTO t VALUES (1)')
  await settle()
  const warnings = lines.filter((l) => l.level === 'warn')
  t.true(
    warnings.some((l) => l.fields.status === 'InternalError' && /retrying in \d+ ms/.test(l.message)),
    JSON.stringify(warnings),
  )
  t.true(lines.some((l) => l.level === 'debug' && l.fields.status === 'InternalError' && l.fields.attempt === 1))
  proxy.clear()
  // An outage: the give-up is logged too.
  proxy.add({ kind: 'GET', action: 'status', status: 500 })
  const down = new S3Database(bucket, prefix, options({ logger, s3: { endpoint: proxy.url, retry: { maxAttempts: 2, baseDelayMs: 1 } } }))
  await t.throwsAsync(down.get('SELECT count(*) FROM t'))
  await settle()
  t.true(lines.some((l) => l.level === 'warn' && /^sqlite-s3vfs warn GET .* InternalError .*gave up/.test(l.message)))
  await Promise.all([db.close(), down.close().catch(() => undefined)])
})

test('a logger that throws breaks nothing; a logger without debug and warn is refused', async (t) => {
  const bucket = await freshBucket('log-throws')
  const angry: Logger = {
    debug: () => {
      throw new Error('logger down')
    },
    warn: () => {
      throw new Error('logger down')
    },
  }
  const db = new S3Database(bucket, freshPrefix('throws'), options({ logger: angry }))
  await db.exec('CREATE TABLE t(x); INSERT INTO t VALUES (7)')
  t.deepEqual(await db.get('SELECT x FROM t'), { x: 7 })
  await db.close()
  const e = t.throws(() => new S3Database(bucket, 'x', options({ logger: { info: () => undefined } as unknown as Logger })))
  t.is(e!.code, 'ERR_INVALID_ARGUMENT')
})

test('DEBUG=sqlite-s3vfs and the CLI --debug log to stderr; without them nothing is', async (t) => {
  const dir = `file://${resolve(__dirname, '..', 'target')}/log-store/bucket/db.sqlite`
  const cli = resolve(__dirname, '..', 'bin', 'cli.js')
  const run = (env: Record<string, string | undefined>, ...args: string[]) =>
    spawnSync(process.execPath, [cli, 'query', dir, 'SELECT 1 AS one', '--json', ...args], {
      encoding: 'utf8',
      env: { ...process.env, NODE_NO_WARNINGS: '1', ...env },
    })
  const quiet = run({ DEBUG: undefined })
  t.is(quiet.stderr, '')
  t.deepEqual(JSON.parse(quiet.stdout), [{ one: 1 }])
  const debug = run({ DEBUG: 'sqlite-s3vfs' })
  t.regex(debug.stderr, /^sqlite-s3vfs debug LIST /m)
  t.deepEqual(JSON.parse(debug.stdout), [{ one: 1 }], 'the log never reaches stdout')
  t.regex(run({ DEBUG: undefined }, '--debug').stderr, /^sqlite-s3vfs debug /m)
})
