// One measurement in a fresh process (cold caches, its own peak RSS): a workload run by one of the
// Node-side systems. Prints one JSON line: { ms, rssMb, result, stats? }.
//   node --import tsx bench/job.ts '<json Job>'
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { Upload } from '@aws-sdk/lib-storage'
import Database from 'better-sqlite3'
import { randomBytes } from 'node:crypto'
import { createReadStream, createWriteStream, copyFileSync, mkdtempSync, rmSync, statSync } from 'node:fs'
import { Agent } from 'node:https'
import { Agent as HttpAgent } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { S3Database, type DatabaseOptions } from '../index'
import { BIG_ID, BULK_ROWS, COMMITS, SQL, warmIds } from './workloads'

export type System = 'versioned' | 'sqlite-s3vfs' | 'naive' | 'local' | 'raw'
export type Workload =
  'bulk' | 'commits' | 'scan' | 'warm' | 'warm-txn' | 'warm-stale' | 'serialize' | 'deserialize' | 'pk' | 'index' | 'import' | 'point'

export interface Job {
  system: System
  workload: Workload
  endpoint: string
  bucket: string
  /** The database's prefix (or the naive system's object key, the raw system's key prefix). */
  prefix: string
  /** A local SQLite file: the input of deserialize/import, the local system's database. */
  file?: string
  /** The secondary-index key looked up by the `index` workload. */
  key?: string
  blockSize: number
  /** Bytes moved by the raw system's PUT workloads. */
  bytes?: number
  options?: DatabaseOptions
}

// An encryption key crosses as JSON { type: 'Buffer', data }.
const job: Job = JSON.parse(process.argv[2], (_k, v) => (v?.type === 'Buffer' && Array.isArray(v.data) ? Buffer.from(v.data) : v))
const region = 'us-east-1'
const credentials = {
  accessKeyId: process.env.AWS_ACCESS_KEY_ID ?? '',
  secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY ?? '',
}
const concurrency = job.options?.concurrency ?? 32
const client = new S3Client({
  endpoint: job.endpoint,
  region,
  credentials,
  forcePathStyle: true,
  requestChecksumCalculation: 'WHEN_REQUIRED',
  responseChecksumValidation: 'WHEN_REQUIRED',
  requestHandler: {
    httpAgent: new HttpAgent({ keepAlive: true, maxSockets: concurrency }),
    httpsAgent: new Agent({ keepAlive: true, maxSockets: concurrency }),
  },
})
const scratch = mkdtempSync(join(tmpdir(), 's3vfs-bench-'))

/** Our options for this job: its layout and block size, through the proxy. */
const oursOptions = (): DatabaseOptions => ({
  layout: job.system as 'versioned' | 'sqlite-s3vfs',
  blockSize: job.blockSize,
  ...job.options,
  s3: { endpoint: job.endpoint, region, credentials },
})

const ours = () => new S3Database(job.bucket, job.prefix, oursOptions())

const commitRow = (i: number) => [`commit-${i}`, randomBytes(50).toString('hex')]

/** Runs `n` tasks, `concurrency` at a time. */
async function parallel(n: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0
  const worker = async () => {
    while (next < n) await task(next++)
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker))
}

async function download(key: string, path: string): Promise<void> {
  const r = await client.send(new GetObjectCommand({ Bucket: job.bucket, Key: key }))
  await pipeline(r.Body as Readable, createWriteStream(path))
}

async function upload(key: string, path: string): Promise<void> {
  await new Upload({
    client,
    params: { Bucket: job.bucket, Key: key, Body: createReadStream(path) },
    partSize: 8 << 20,
    queueSize: concurrency,
  }).done()
}

async function drain(stream: AsyncIterable<Buffer | Uint8Array>): Promise<number> {
  let n = 0
  for await (const chunk of stream) n += chunk.length
  return n
}

const oursWorkloads: Record<Workload, () => Promise<unknown>> = {
  async bulk() {
    const db = ours()
    await db.exec(SQL.schema)
    await db.exec(`BEGIN; ${SQL.bulk}; COMMIT`)
    await db.close()
    return 'ok'
  },
  async commits() {
    const db = ours()
    for (let i = 0; i < COMMITS; i++) await db.run(SQL.commit, commitRow(i))
    await db.close()
    return COMMITS
  },
  async scan() {
    const db = ours()
    return db.get(SQL.scan)
  },
  warm: () => warmOurs('default'),
  'warm-txn': () => warmOurs('txn'),
  'warm-stale': () => warmOurs('stale'),
  async serialize() {
    return drain(ours().serialize())
  },
  async deserialize() {
    const { size } = await S3Database.deserialize(job.bucket, job.prefix, createReadStream(job.file!), oursOptions())
    return size
  },
  import: () => oursWorkloads.deserialize(),
  async pk() {
    return ours().get(SQL.bigByPk, [BIG_ID])
  },
  async index() {
    return ours().get(SQL.bigByIndex, [job.key!])
  },
  async point() {
    return ours().get(SQL.point, [BULK_ROWS / 2])
  },
}

/** The warm point queries: timed after a scan has filled the cache. */
async function warmOurs(mode: 'default' | 'txn' | 'stale'): Promise<unknown> {
  const db = ours()
  await db.get(SQL.scan)
  const ids = warmIds()
  const t0 = performance.now()
  let found = 0
  if (mode === 'txn') {
    await db.transaction(async (tx) => {
      for (const id of ids) if (await tx.get(SQL.point, [id])) found++
    })
  } else {
    for (const id of ids) if (await db.get(SQL.point, [id])) found++
  }
  timed = performance.now() - t0
  return found
}
/** Set by workloads that time only part of what they do (the warm queries). */
let timed: number | undefined

function warmLocal(db: Database.Database): number {
  const stmt = db.prepare(SQL.point)
  stmt.all(1)
  const t0 = performance.now()
  let found = 0
  for (const id of warmIds()) if (stmt.get(id)) found++
  timed = performance.now() - t0
  return found
}

function commitsLocal(db: Database.Database): void {
  const stmt = db.prepare(SQL.commit)
  for (let i = 0; i < COMMITS; i++) stmt.run(...commitRow(i))
}

const localPath = () => join(scratch, 'db.sqlite')

/** The bulk insert into a new local file. */
function bulkLocal(): string {
  const db = new Database(localPath())
  db.exec(SQL.schema)
  db.exec(`BEGIN; ${SQL.bulk}; COMMIT`)
  db.close()
  return 'ok'
}

const naiveWorkloads: Partial<Record<Workload, () => Promise<unknown>>> = {
  async bulk() {
    bulkLocal()
    await upload(job.prefix, localPath())
    return 'ok'
  },
  async commits() {
    await download(job.prefix, localPath())
    const db = new Database(localPath())
    const stmt = db.prepare(SQL.commit)
    for (let i = 0; i < COMMITS; i++) {
      stmt.run(...commitRow(i))
      await upload(job.prefix, localPath())
    }
    db.close()
    return COMMITS
  },
  async scan() {
    await download(job.prefix, localPath())
    return new Database(localPath()).prepare(SQL.scan).get()
  },
  async serialize() {
    const r = await client.send(new GetObjectCommand({ Bucket: job.bucket, Key: job.prefix }))
    return drain(r.Body as Readable)
  },
  async deserialize() {
    await upload(job.prefix, job.file!)
    return statSync(job.file!).size
  },
  import: () => naiveWorkloads.deserialize!(),
  async pk() {
    await download(job.prefix, localPath())
    return new Database(localPath()).prepare(SQL.bigByPk).get(BIG_ID)
  },
  async index() {
    await download(job.prefix, localPath())
    return new Database(localPath()).prepare(SQL.bigByIndex).get(job.key)
  },
}

const localWorkloads: Partial<Record<Workload, () => Promise<unknown>>> = {
  bulk: async () => bulkLocal(),
  async commits() {
    copyFileSync(job.file!, localPath())
    const t0 = performance.now()
    commitsLocal(new Database(localPath()))
    timed = performance.now() - t0
    return COMMITS
  },
  async scan() {
    return new Database(job.file!, { readonly: true }).prepare(SQL.scan).get()
  },
  async warm() {
    return warmLocal(new Database(job.file!, { readonly: true }))
  },
  async pk() {
    return new Database(job.file!, { readonly: true }).prepare(SQL.bigByPk).get(BIG_ID)
  },
  async index() {
    return new Database(job.file!, { readonly: true }).prepare(SQL.bigByIndex).get(job.key)
  },
}

/** The store's limit: the same bytes as plain parallel PUTs/GETs of `blockSize` objects. */
const rawWorkloads: Partial<Record<Workload, () => Promise<unknown>>> = {
  async bulk() {
    const blocks = Math.ceil(job.bytes! / job.blockSize)
    const body = randomBytes(job.blockSize)
    await parallel(blocks, async (i) => {
      await client.send(new PutObjectCommand({ Bucket: job.bucket, Key: `${job.prefix}/${i}`, Body: body }))
    })
    return blocks
  },
  deserialize: () => rawWorkloads.bulk!(),
  async commits() {
    const body = randomBytes(job.blockSize)
    for (let i = 0; i < COMMITS; i++) {
      await client.send(new PutObjectCommand({ Bucket: job.bucket, Key: `${job.prefix}/c`, Body: body }))
    }
    return COMMITS
  },
  async scan() {
    const blocks = Math.ceil(job.bytes! / job.blockSize)
    let n = 0
    await parallel(blocks, async (i) => {
      const r = await client.send(new GetObjectCommand({ Bucket: job.bucket, Key: `${job.prefix}/${i}` }))
      n += await drain(r.Body as Readable)
    })
    return n
  },
  serialize: () => rawWorkloads.scan!(),
  async pk() {
    const r = await client.send(new GetObjectCommand({ Bucket: job.bucket, Key: `${job.prefix}/0` }))
    return drain(r.Body as Readable)
  },
}

async function main() {
  const table = {
    versioned: oursWorkloads,
    'sqlite-s3vfs': oursWorkloads,
    naive: naiveWorkloads,
    local: localWorkloads,
    raw: rawWorkloads,
  }[job.system] as Partial<Record<Workload, () => Promise<unknown>>>
  const run = table[job.workload]
  if (!run) throw new Error(`${job.system} has no ${job.workload} workload`)
  const t0 = performance.now()
  const result = await run()
  const ms = timed ?? performance.now() - t0
  const rssMb = process.resourceUsage().maxRSS / 1024
  rmSync(scratch, { recursive: true, force: true })
  process.stdout.write(JSON.stringify({ ms, rssMb, result }) + '\n')
  process.exit(0)
}

main().catch((e) => {
  rmSync(scratch, { recursive: true, force: true })
  process.stdout.write(JSON.stringify({ error: String(e?.stack ?? e), code: e?.code }) + '\n')
  process.exit(1)
})
