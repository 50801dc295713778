// Test helpers: the S3 endpoint the run started (scripts/with-s3.ts), fresh buckets, raw S3
// access for assertions, and the Python library in the project's venv.
import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { resolve } from 'node:path'
import { promisify } from 'node:util'
import type { DatabaseOptions, S3Database } from '../../index'

export const endpoint = process.env.SQLITE_S3VFS_TEST_ENDPOINT ?? ''
if (!endpoint && !process.env.SQLITE_S3VFS_TEST_STORE_DIR)
  throw new Error('SQLITE_S3VFS_TEST_ENDPOINT is not set: run the tests with `npm test`')
export const region = process.env.AWS_REGION ?? 'us-east-1'

export const s3: DatabaseOptions['s3'] = { endpoint, region }

/** The local server the run started (scripts/with-s3.ts), or `external`. */
export const server = process.env.SQLITE_S3VFS_TEST_SERVER ?? 'external'
/** Whether a create-only PUT (If-None-Match: *) is atomic on this server: measured false for
 *  versitygw's posix backend (two winners in one round of 16; npm run test:servers). Tests that
 *  rely on it are expected to fail there. */
export const atomicCreates = server !== 'versitygw'
/** Whether the server verifies SigV4: a proxy that edits a signed header then breaks the
 *  signature, so tests that do that are expected to fail there. */
export const verifiesSignatures = !['gofakes3', 'moto'].includes(server)

/** Options that reach the test server; with SQLITE_S3VFS_TEST_STORE_DIR set (child processes of
 *  dirstore.spec.ts), a local-directory store there instead. */
export function options(extra: DatabaseOptions = {}): DatabaseOptions {
  const dir = process.env.SQLITE_S3VFS_TEST_STORE_DIR
  if (dir) return { ...extra, store: { dir } }
  return { ...extra, s3: { ...s3, ...extra.s3 } }
}

export const client = new S3Client({
  endpoint,
  region,
  forcePathStyle: true,
  requestChecksumCalculation: 'WHEN_REQUIRED',
  responseChecksumValidation: 'WHEN_REQUIRED',
})

/** A new bucket for one test file. */
export async function freshBucket(label: string): Promise<string> {
  const name = `t-${label}-${randomBytes(4).toString('hex')}`.toLowerCase().slice(0, 63)
  await client.send(new CreateBucketCommand({ Bucket: name }))
  return name
}

let counter = 0
/** A new prefix, unique within the run. */
export function freshPrefix(label = 'db'): string {
  return `${label}-${process.pid}-${++counter}/x.sqlite`
}

export async function listObjects(bucket: string, prefix: string): Promise<{ key: string; size: number }[]> {
  const out: { key: string; size: number }[] = []
  let token: string | undefined
  do {
    const r = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }))
    for (const o of r.Contents ?? []) out.push({ key: o.Key!, size: o.Size ?? 0 })
    token = r.IsTruncated ? r.NextContinuationToken : undefined
  } while (token)
  return out
}

export async function getObject(bucket: string, key: string): Promise<Buffer> {
  const r = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
  return Buffer.from(await r.Body!.transformToByteArray())
}

export async function putObject(bucket: string, key: string, body: Buffer): Promise<void> {
  await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }))
}

/** SQL for a subquery of the integers 1..n (one row each), for bulk inserts. */
export function series(n: number): string {
  return `(WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < ${n}) SELECT n FROM s)`
}

/** The number of bytes `db.serialize()` streams. */
export async function serializedSize(db: S3Database): Promise<number> {
  let n = 0
  for await (const chunk of db.serialize()) n += (chunk as Buffer).length
  return n
}

const root = resolve(__dirname, '..', '..')

/** Runs Python code in the project's venv (sqlite_s3vfs, apsw, boto3); returns its stdout. */
export async function python(code: string, env: Record<string, string> = {}): Promise<string> {
  const { stdout } = await promisify(execFile)(resolve(root, '.venv', 'bin', 'python'), ['-c', code], {
    env: { ...process.env, ...env, S3_ENDPOINT: endpoint, AWS_REGION: region },
    maxBuffer: 64 << 20,
  })
  return stdout
}

/** Python prelude: an S3VFS over the test bucket. Needs BUCKET and BLOCK_SIZE in the env. */
export const pyPrelude = `
import os, json, apsw, boto3, sqlite_s3vfs
from botocore.config import Config
s3 = boto3.resource('s3', endpoint_url=os.environ['S3_ENDPOINT'], region_name=os.environ['AWS_REGION'],
    config=Config(request_checksum_calculation='when_required', response_checksum_validation='when_required'))
bucket = s3.Bucket(os.environ['BUCKET'])
vfs = sqlite_s3vfs.S3VFS(bucket=bucket, block_size=int(os.environ['BLOCK_SIZE']))
`
