// S3 errors reach JS with a code and a message that says where, never the credentials.
import test from 'ava'
import { type DatabaseOptions, S3Database, SqliteS3Error } from '../index'
import { listObjects, freshBucket, freshPrefix, options as baseOptions, putObject, series } from './helpers/s3'

// 4 KiB blocks, so that a small database has blocks outside block 0 to damage.
const options = (extra: DatabaseOptions = {}) => baseOptions({ blockSize: 4096, ...extra })

const sigv4 = process.env.SQLITE_S3VFS_TEST_SIGV4_ENDPOINT
const key = process.env.SQLITE_S3VFS_TEST_SIGV4_KEY ?? ''
const secret = process.env.SQLITE_S3VFS_TEST_SIGV4_SECRET ?? ''

let bucket = ''
test.before(async () => {
  bucket = await freshBucket('errors')
})

// The SigV4-checking server (versitygw) is started by `npm test`; against an external endpoint
// (SQLITE_S3VFS_TEST_ENDPOINT) these tests need it too and fail clearly without it.
function sigv4Options(creds: { accessKeyId: string; secretAccessKey: string }) {
  if (!sigv4) throw new Error('SQLITE_S3VFS_TEST_SIGV4_ENDPOINT is not set')
  return { s3: { endpoint: sigv4, region: 'us-east-1', credentials: creds, maxAttempts: 1 } }
}

test('wrong credentials: InvalidAccessKeyId / SignatureDoesNotMatch, never echoing the secret', async (t) => {
  const wrongKey = new S3Database('anything', 'db', sigv4Options({ accessKeyId: 'nobody', secretAccessKey: 'super-secret-value-1' }))
  const e1 = await t.throwsAsync(wrongKey.open(), { instanceOf: SqliteS3Error })
  // AWS answers InvalidAccessKeyId; versitygw answers XAdminUserNotFound (HTTP 404).
  t.regex(e1!.code, /^(InvalidAccessKeyId|AccessDenied|XAdminUserNotFound)$/)
  t.false(e1!.message.includes('super-secret-value-1'))
  t.regex(e1!.message, /s3:\/\/anything\/db/)
  const wrongSecret = new S3Database('anything', 'db', sigv4Options({ accessKeyId: key, secretAccessKey: 'super-secret-value-2' }))
  const e2 = await t.throwsAsync(wrongSecret.open(), { instanceOf: SqliteS3Error })
  t.is(e2!.code, 'SignatureDoesNotMatch')
  t.false(e2!.message.includes('super-secret-value-2'))
  t.false(e2!.message.includes(secret))
})

test('a missing bucket: NoSuchBucket, naming the bucket', async (t) => {
  const db = new S3Database('no-such-bucket-here', 'db', sigv4Options({ accessKeyId: key, secretAccessKey: secret }))
  const e = await t.throwsAsync(db.open(), { instanceOf: SqliteS3Error, code: 'NoSuchBucket' })
  t.regex(e!.message, /no-such-bucket-here/)
  const e2 = await t.throwsAsync(db.get('SELECT 1'), { code: 'NoSuchBucket' })
  t.regex(e2!.message, /no-such-bucket-here/)
})

test('an unreachable endpoint: ECONNREFUSED', async (t) => {
  const db = new S3Database(bucket, 'db', { s3: { endpoint: 'http://127.0.0.1:9', region: 'us-east-1', maxAttempts: 2 } })
  await t.throwsAsync(db.open(), { instanceOf: SqliteS3Error, code: 'ECONNREFUSED' })
})

for (const layout of ['versioned', 'sqlite-s3vfs'] as const) {
  test(`${layout}: a corrupt block is SQLITE_CORRUPT, not a crash`, async (t) => {
    const prefix = freshPrefix('corrupt')
    const db = new S3Database(bucket, prefix, options({ layout }))
    await db.exec(`CREATE TABLE c(x); INSERT INTO c SELECT randomblob(500) FROM ${series(100)}`)
    await db.close()
    if (layout === 'versioned') {
      // Damage every block object: their checksums (in the block map) no longer match.
      for (const o of await listObjects(bucket, `${prefix}/.b/`)) await putObject(bucket, o.key, Buffer.alloc(o.size, 0xa5))
    } else {
      await putObject(bucket, `${prefix}/0000000001`, Buffer.alloc(4096, 0xa5))
    }
    const reopened = new S3Database(bucket, prefix, options())
    const e = await t.throwsAsync(reopened.all('SELECT count(*) FROM c'), { instanceOf: SqliteS3Error })
    t.regex(e!.code, /^SQLITE_CORRUPT/)
    if (layout === 'versioned') t.regex(e!.message, /checksum mismatch/)
    await reopened.close()
  })
}

test('objects that are not a database: SQLITE_NOTADB at open', async (t) => {
  const prefix = freshPrefix('notadb')
  await putObject(bucket, `${prefix}/0000000000`, Buffer.from('hello, this is not SQLite at all'.repeat(200)))
  const db = new S3Database(bucket, prefix, options())
  await t.throwsAsync(db.open(), { instanceOf: SqliteS3Error, code: 'SQLITE_NOTADB' })
})
