// `npm run bench:memory`: transactions far larger than memory, side by side in one run on one
// local S3 server (versitygw on disk, no added latency). Each measurement is a fresh process that
// reports its own peak RSS:
//   - a 2 GB insert in one transaction, both layouts, at the default memoryLimit (64 MiB), at
//     16 MiB, and with no limit (every buffered block in memory, as before memoryLimit existed);
//   - a VACUUM of a 1 GB database (a tenth of its rows deleted first), the same way;
//   - references: the same bytes as plain parallel PUTs (the store's limit), and the same insert
//     by better-sqlite3 into a local file (SQLite's own work).
// Writes bench/MEMORY.md. Sizes: BENCH_MEMORY_GB (default 2; the VACUUM database is half of it).
//   node --import tsx bench/memory.ts            (the parent)
//   node --import tsx bench/memory.ts '<json>'   (one measurement)
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3'
import Database from 'better-sqlite3'
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { Agent as HttpAgent } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { defaults, S3Database, type DatabaseOptions } from '../index'
import { startServer } from '../scripts/with-s3'

const GB = Number(process.env.BENCH_MEMORY_GB ?? 2)
const ROW = 4000
const BLOCK = 262144
const BUCKET = 'bench-memory'
const series = (n: number) => `(WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < ${n}) SELECT n FROM s)`
const rowsFor = (gb: number) => Math.round((gb * 1e9) / ROW)

type Layout = 'versioned' | 'sqlite-s3vfs'
interface Job {
  kind: 'insert' | 'fixture' | 'vacuum' | 'raw' | 'local'
  endpoint: string
  prefix: string
  layout?: Layout
  rows: number
  memoryLimit?: number
}
interface Result {
  ms: number
  rssMb: number
  bufferedPeakMb?: number
  puts?: number
  upMb?: number
  error?: string
}

const mb = (n: number) => n / (1 << 20)

async function child(job: Job): Promise<Result> {
  const started = performance.now()
  if (job.kind === 'raw') {
    const client = new S3Client({
      endpoint: job.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      requestHandler: { httpAgent: new HttpAgent({ keepAlive: true, maxSockets: defaults.concurrency }) },
    })
    const blocks = Math.ceil((job.rows * ROW) / BLOCK)
    const body = randomBytes(BLOCK)
    let next = 0
    const worker = async () => {
      while (next < blocks) await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: `${job.prefix}/${next++}`, Body: body }))
    }
    await Promise.all(Array.from({ length: defaults.concurrency }, worker))
    return { ms: performance.now() - started, rssMb: process.resourceUsage().maxRSS / 1024, puts: blocks, upMb: mb(blocks * BLOCK) }
  }
  if (job.kind === 'local') {
    const dir = mkdtempSync(join(tmpdir(), 's3vfs-bench-memory-'))
    try {
      const db = new Database(join(dir, 'local.sqlite'))
      db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)')
      db.exec(`INSERT INTO t(v) SELECT randomblob(${ROW}) FROM ${series(job.rows)}`)
      db.close()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
    return { ms: performance.now() - started, rssMb: process.resourceUsage().maxRSS / 1024 }
  }
  const options: DatabaseOptions = {
    layout: job.layout,
    blockSize: BLOCK,
    memoryLimit: job.memoryLimit,
    s3: { endpoint: job.endpoint, region: 'us-east-1', forcePathStyle: true },
  }
  const db = new S3Database(BUCKET, job.prefix, options)
  try {
    if (job.kind === 'vacuum') {
      await db.exec('VACUUM')
    } else {
      await db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)')
      await db.exec(`INSERT INTO t(v) SELECT randomblob(${ROW}) FROM ${series(job.rows)}`)
      if (job.kind === 'fixture') await db.exec('DELETE FROM t WHERE id % 10 = 0')
    }
    const s = db.stats()
    return {
      ms: performance.now() - started,
      rssMb: process.resourceUsage().maxRSS / 1024,
      bufferedPeakMb: mb(s.bufferedPeak),
      puts: s.put,
      upMb: mb(s.bytesUp),
    }
  } finally {
    await db.close()
  }
}

function run(job: Job): Promise<Result> {
  return new Promise((ok) => {
    const p = spawn(process.execPath, ['--import', 'tsx', __filename, JSON.stringify(job)], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, NODE_NO_WARNINGS: '1' },
    })
    let out = ''
    p.stdout!.on('data', (d: Buffer) => (out += d.toString()))
    p.on('exit', (code) => {
      try {
        ok(JSON.parse(out.trim().split('\n').pop() ?? ''))
      } catch {
        ok({ ms: 0, rssMb: 0, error: `exit ${code}: ${out.slice(-300)}` })
      }
    })
  })
}

const limitName = (l: number | undefined) => (l === undefined ? 'default (64 MiB)' : l >= Number.MAX_SAFE_INTEGER ? 'none' : `${mb(l)} MiB`)
const fmt = (n: number | undefined, digits = 0) => (n === undefined ? '–' : n.toFixed(digits))

async function main() {
  const procs: ChildProcess[] = []
  const dirs: string[] = []
  process.env.AWS_ACCESS_KEY_ID = 'test'
  process.env.AWS_SECRET_ACCESS_KEY = 'test'
  const stop = () => {
    for (const p of procs) p.kill('SIGTERM')
    for (const d of dirs) rmSync(d, { recursive: true, force: true })
  }
  process.on('exit', stop)
  const endpoint = await startServer('versitygw', procs, dirs)
  const setup = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true })
  const { CreateBucketCommand } = await import('@aws-sdk/client-s3')
  await setup.send(new CreateBucketCommand({ Bucket: BUCKET }))
  const rows = rowsFor(GB)
  const vacuumRows = rowsFor(GB / 2)
  const unlimited = Number.MAX_SAFE_INTEGER
  const lines: string[] = []
  const table: string[] = []
  let n = 0
  const measure = async (what: string, job: Omit<Job, 'endpoint' | 'prefix'>) => {
    const prefix = `${job.kind}-${n++}`
    if (job.kind === 'vacuum') {
      const f = await run({ ...job, kind: 'fixture', endpoint, prefix, rows: vacuumRows, memoryLimit: undefined })
      if (f.error) throw new Error(`fixture: ${f.error}`)
    }
    const r = await run({ ...job, endpoint, prefix })
    const row = `| ${what} | ${job.layout ?? '–'} | ${job.kind === 'insert' || job.kind === 'vacuum' ? limitName(job.memoryLimit) : '–'} | ${(r.ms / 1000).toFixed(1)} s | ${fmt(r.rssMb)} MB | ${fmt(r.bufferedPeakMb, 1)} | ${r.puts ?? '–'} | ${fmt(r.upMb)} MB |${r.error ? ` ${r.error}` : ''}`
    console.error(row)
    table.push(row)
    return r
  }
  const insert = `${GB} GB insert, 1 txn`
  const vacuum = `VACUUM of ${GB / 2} GB`
  const raw = await measure(`${GB} GB as ${BLOCK / 1024} KiB PUTs (store limit)`, { kind: 'raw', rows })
  const local = await measure(`${GB} GB insert, better-sqlite3 on local disk`, { kind: 'local', rows })
  const results: Record<string, Result> = {}
  for (const layout of ['versioned', 'sqlite-s3vfs'] as const) {
    for (const limit of [undefined, 16 << 20, unlimited]) {
      results[`insert ${layout} ${limitName(limit)}`] = await measure(insert, { kind: 'insert', layout, rows, memoryLimit: limit })
    }
  }
  for (const layout of ['versioned', 'sqlite-s3vfs'] as const) {
    for (const limit of [undefined, unlimited]) {
      results[`vacuum ${layout} ${limitName(limit)}`] = await measure(vacuum, {
        kind: 'vacuum',
        layout,
        rows: vacuumRows,
        memoryLimit: limit,
      })
    }
  }
  const v = results[`insert versioned ${limitName(undefined)}`]
  lines.push(
    '# Memory: transactions larger than memoryLimit',
    '',
    `Produced by \`npm run bench:memory\` on ${new Date().toISOString().slice(0, 10)} (${GB} GB; 2 cores; Node ${process.version}), against versitygw on local disk with no added latency. Each row is a fresh process; peak RSS is its \`maxRSS\` (the Node process, the addon and SQLite together). Rows of ${ROW} random bytes, blockSize ${BLOCK / 1024} KiB, cacheSize ${mb(defaults.cacheSize)} MiB, concurrency ${defaults.concurrency}. "bufferedPeak" is \`stats().bufferedPeak\` in MiB: buffered writes held in memory at most. "none" is \`memoryLimit: Number.MAX_SAFE_INTEGER\`, i.e. every buffered block in memory, as before the limit existed.`,
    '',
    '| workload | layout | memoryLimit | time | peak RSS | bufferedPeak | PUT | up |',
    '|---|---|---|---:|---:|---:|---:|---:|',
    ...table,
    '',
    `Versioned bulk insert at the default limit: ${(v.ms / raw.ms).toFixed(2)}× the store's PUT limit for the same bytes, ${(v.ms / local.ms).toFixed(2)}× better-sqlite3 on local disk.`,
    '',
  )
  writeFileSync(join(__dirname, 'MEMORY.md'), lines.join('\n'))
  console.log(lines.join('\n'))
  stop()
  process.exit(0)
}

if (process.argv[2]) {
  child(JSON.parse(process.argv[2]) as Job)
    .then((r) => {
      process.stdout.write(JSON.stringify(r) + '\n')
      process.exit(0)
    })
    .catch((e) => {
      process.stdout.write(
        JSON.stringify({ ms: 0, rssMb: process.resourceUsage().maxRSS / 1024, error: String(e?.message ?? e).slice(0, 300) }) + '\n',
      )
      process.exit(1)
    })
} else {
  main().catch((e) => {
    console.error(e)
    process.exit(1)
  })
}
