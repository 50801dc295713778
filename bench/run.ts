// `npm run bench`: every system side by side in one run, on one local S3 server (versitygw,
// posix backend, data kept in .bench/ so the big fixtures are made once), at each added latency
// (a user-space proxy per latency, which also counts requests and bytes the same way for all).
// Writes bench/results.json, bench/RESULTS.md and bench/chart.png.
//
// Environment: BENCH_LATENCIES (default "0,20"), BENCH_SYSTEMS (comma list, default all),
// BENCH_SWEEP=0 skips the block-size sweep, BENCH_SWEEP_SIZES lists its block sizes,
// BENCH_MEMORY=0 the memory section, BENCH_CODEC=0 the compression section; BENCH_SECTIONS
// (a comma list of main, memory, sweep, codec) runs only those (with BENCH_MERGE=1 to keep the
// others' last results).
import {
  CreateBucketCommand,
  DeleteObjectsCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3'
import Database from 'better-sqlite3'
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { defaults, type DatabaseOptions } from '../index'
import { freePort, waitForPort } from '../scripts/with-s3'
import type { Job, System, Workload } from './job'
import { BIG_ID, COMMITS, SQL, WARM_QUERIES, warmIds, BULK_ROWS } from './workloads'
import { report, type Row } from './report'

const ROOT = resolve(__dirname, '..')
const DATA = join(ROOT, '.bench')
const FIXTURES = join(DATA, 'fixtures')
const PY = join(ROOT, '.venv', 'bin', 'python')
const KEY = 'bench-key'
const SECRET = 'bench-secret'
const BUCKET = 'bench'
const LATENCIES = (process.env.BENCH_LATENCIES ?? '0,20').split(',').map(Number)
const ONLY = process.env.BENCH_SYSTEMS?.split(',')
const SECTIONS = process.env.BENCH_SECTIONS?.split(',')
const section = (name: string, flag: string) => process.env[flag] !== '0' && (!SECTIONS || SECTIONS.includes(name))
const SWEEP = section('sweep', 'BENCH_SWEEP')
/** The Python library's own default block size (what its users run). */
const PY_BLOCK = 4096
/** The block size of the Python library's cold queries on the big database (see below). */
const BIG_PY_BLOCK = 262144
const BLOCK = defaults.blockSize
const procs: ChildProcess[] = []
const env = { ...process.env, NODE_NO_WARNINGS: '1', AWS_ACCESS_KEY_ID: KEY, AWS_SECRET_ACCESS_KEY: SECRET, AWS_REGION: 'us-east-1' }

function log(...a: unknown[]) {
  console.error(new Date().toISOString().slice(11, 19), ...a)
}

async function startServer(): Promise<number> {
  const port = await freePort()
  for (const d of ['meta', 'data']) mkdirSync(join(DATA, 's3', d), { recursive: true })
  const p = spawn(
    join(ROOT, '.tools', 'bin', 'versitygw'),
    ['--port', `127.0.0.1:${port}`, 'posix', '--sidecar', join(DATA, 's3', 'meta'), join(DATA, 's3', 'data')],
    {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: { ...env, ROOT_ACCESS_KEY: KEY, ROOT_SECRET_KEY: SECRET },
    },
  )
  procs.push(p)
  await waitForPort(port, p, 'versitygw')
  return port
}

async function startProxy(upstream: number, latency: number): Promise<string> {
  const port = await freePort()
  const p = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'proxy.ts'), String(port), String(upstream), String(latency)], {
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  procs.push(p)
  await waitForPort(port, p, 'proxy')
  return `http://127.0.0.1:${port}`
}

type Counters = Record<string, number>
const proxyCall = async (endpoint: string, what: 'stats' | 'reset'): Promise<Counters> =>
  (await fetch(`${endpoint}/__bench/${what}`, { method: 'POST' })).json() as Promise<Counters>

/** Runs a child and parses the JSON line it prints last. */
function runChild(cmd: string, args: string[]): Promise<Record<string, unknown>> {
  return new Promise((ok) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'], env })
    let out = ''
    p.stdout!.on('data', (d: Buffer) => (out += d.toString()))
    const timer = setTimeout(() => p.kill('SIGKILL'), 30 * 60_000)
    p.on('exit', (code) => {
      clearTimeout(timer)
      const line = out.trim().split('\n').pop() ?? ''
      try {
        ok(JSON.parse(line))
      } catch {
        ok({ error: `exit ${code}: ${out.slice(-500)}` })
      }
    })
  })
}

const TURBOLITE = join(__dirname, 'turbolite', 'target', 'release', 'turbolite-bench')

type Sys = System | 'python' | 'turbolite'
const OURS_NAME = 'ours (versioned)'

/** One measurement: resets the proxy's counters, runs the job in a fresh process, reads them. */
async function measure(sys: Sys, workload: Workload, endpoint: string, job: Partial<Job> & { prefix: string }): Promise<Row['m']> {
  const full = { system: sys, workload, endpoint, bucket: BUCKET, blockSize: BLOCK, ...job }
  await proxyCall(endpoint, 'reset')
  let out: Record<string, unknown>
  if (sys === 'python') {
    out = await runChild(PY, [
      join(__dirname, 'py_job.py'),
      JSON.stringify({ ...full, sql: SQL, commits: COMMITS, id: BIG_ID, ids: warmIds(PY_WARM) }),
    ])
  } else if (sys === 'turbolite') {
    out = await turbolite(full as Job & { key?: string })
  } else {
    out = await runChild(process.execPath, ['--import', 'tsx', join(__dirname, 'job.ts'), JSON.stringify(full)])
  }
  const c = await proxyCall(endpoint, 'stats')
  if (out.error) log(`  ${sys} ${workload}: FAILED ${String(out.error).slice(0, 400)}`)
  return {
    ms: out.error ? undefined : (out.ms as number),
    rssMb: out.rssMb as number | undefined,
    error: out.error ? String(out.error).split('\n')[0].slice(0, 200) : undefined,
    result: out.result,
    get: c.get ?? 0,
    put: c.put ?? 0,
    list: c.list ?? 0,
    other: (c.delete ?? 0) + (c.head ?? 0) + (c.post ?? 0),
    bytesDown: c.bytesDown ?? 0,
    bytesUp: c.bytesUp ?? 0,
  }
}

/** turbolite (crates.io 0.5.0, through bench/turbolite): the same workloads where it has them. */
async function turbolite(job: Job & { key?: string }): Promise<Record<string, unknown>> {
  const common = ['--bucket', job.bucket, '--prefix', job.prefix, '--endpoint', job.endpoint]
  const cache = ['--cache-dir', join(DATA, 'turbolite-cache')]
  const query = (sql: string) => ['query', ...common, ...cache, '--sql', sql]
  const args: Partial<Record<Workload, string[]>> = {
    import: ['import', ...common, '--file', job.file ?? ''],
    deserialize: ['import', ...common, '--file', job.file ?? ''],
    bulk: ['write-bulk', ...common, ...cache, '--rows', String(BULK_ROWS), '--journal', 'delete', '--no-verify'],
    commits: ['write-commits', ...common, ...cache, '--commits', String(COMMITS), '--journal', 'delete', '--no-verify'],
    scan: query(SQL.scan),
    pk: query(SQL.bigByPk.replace('?', String(BIG_ID))),
    index: query(SQL.bigByIndex.replace('?', `'${job.key}'`)),
  }
  const a = args[job.workload]
  if (!a) return { error: `turbolite has no ${job.workload} workload` }
  const rssFile = join(DATA, 'turbolite.rss')
  const out = await runChild('/usr/bin/time', ['-f', '%M', '-o', rssFile, TURBOLITE, ...a])
  const rssKb = Number(readFileSync(rssFile, 'utf8').trim().split('\n').pop())
  return out.ok ? { ms: out.ms, rssMb: rssKb / 1024, result: out.result } : { error: out.error ?? 'failed' }
}

/** The Python library reads every block of its database once per query: 100 warm queries, not 1,000. */
const PY_WARM = 100

function localFixtures(needBig: boolean): { big: string; medium: string; key: string } {
  mkdirSync(FIXTURES, { recursive: true })
  const big = join(FIXTURES, 'big.sqlite')
  const medium = join(FIXTURES, 'medium.sqlite')
  const meta = join(FIXTURES, 'big.json')
  if (needBig && !existsSync(meta)) {
    log('generating the big database (about 1.1 GB, once)')
    const tmp = `${big}.tmp`
    const db = new Database(tmp)
    db.exec('PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF')
    db.exec(SQL.bigSchema)
    db.exec(`BEGIN; ${SQL.bigRows}; COMMIT`)
    db.exec(SQL.bigIndex)
    const key = (db.prepare('SELECT k FROM big WHERE id = ?').get(424_242) as { k: string }).k
    db.close()
    renameSync(tmp, big)
    writeFileSync(meta, JSON.stringify({ key }))
  }
  if (!existsSync(medium)) {
    const db = new Database(`${medium}.tmp`)
    db.exec(SQL.schema)
    db.exec(`BEGIN; ${SQL.bulk}; COMMIT`)
    db.close()
    renameSync(`${medium}.tmp`, medium)
  }
  return { big, medium, key: existsSync(meta) ? JSON.parse(readFileSync(meta, 'utf8')).key : '' }
}

async function main() {
  const s3port = await startServer()
  const direct = `http://127.0.0.1:${s3port}`
  const client = new S3Client({
    endpoint: direct,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: KEY, secretAccessKey: SECRET },
  })
  await client.send(new CreateBucketCommand({ Bucket: BUCKET })).catch(() => undefined)
  await deletePrefix(client, 'runs/')
  const MAIN = !SECTIONS || SECTIONS.includes('main')
  const MEMORY = section('memory', 'BENCH_MEMORY')
  const { big, medium, key } = localFixtures(MAIN || MEMORY || SWEEP)
  const mediumBytes = statSync(medium).size
  const fixtureProxy = await startProxy(s3port, 0)

  /** Uploads a big fixture once (marker object when done). */
  async function fixture(sys: Sys, blockSize: number): Promise<string> {
    // The Python library reads the sqlite-s3vfs layout that our deserialize writes.
    const as: Sys = sys === 'python' ? 'sqlite-s3vfs' : sys
    const prefix = `fixtures/big-${as}-${blockSize}` + (sys === 'naive' ? '.sqlite' : '')
    const marker = `done/${prefix}`
    const exists = await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: marker })).then(
      () => true,
      () => false,
    )
    if (!exists) {
      log(`uploading fixture ${prefix} (once)`)
      const m = await measure(as, 'import', fixtureProxy, { prefix, file: big, blockSize, options: { concurrency: 64 } })
      if (m.error) throw new Error(`fixture ${prefix}: ${m.error}`)
      await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: marker, Body: '1' }))
    }
    return prefix
  }

  const rows: Row[] = []
  const want = (s: Sys) => !ONLY || ONLY.includes(s)
  const add = (latency: number, system: string, workload: string, m: Row['m'], note?: string) => {
    rows.push({ latency, system, workload, m, note })
    log(
      `${latency} ms  ${system.padEnd(22)} ${workload.padEnd(12)} ${m.ms === undefined ? 'FAILED' : `${m.ms.toFixed(0)} ms`}  GET ${m.get} PUT ${m.put} LIST ${m.list}  ${(m.bytesDown / 1e6).toFixed(3)} MB down ${(m.bytesUp / 1e6).toFixed(1)} MB up  RSS ${m.rssMb?.toFixed(0)} MB`,
    )
  }

  const bigPrefix: Partial<Record<Sys, string>> = {}
  const wantMain = (s: Sys) => MAIN && want(s)
  for (const s of ['versioned', 'sqlite-s3vfs', 'naive'] as Sys[]) if (wantMain(s)) bigPrefix[s] = await fixture(s, BLOCK)
  // The Python library lists every object of the database at every transaction (xFileSize): on
  // the 1.4 GB database at its default 4 KiB blocks (340k objects) one cold query took over
  // 5 minutes on this server, so its cold queries read the 256 KiB-block copy that ours uses.
  if (wantMain('python')) bigPrefix.python = await fixture('python', BIG_PY_BLOCK)
  const hasTurbolite = wantMain('turbolite') && existsSync(TURBOLITE)
  if (want('turbolite') && !hasTurbolite) log('turbolite: bench/turbolite not built (cargo build --release there), skipped')
  if (hasTurbolite) bigPrefix.turbolite = await fixture('turbolite', 0)

  for (const latency of MAIN ? LATENCIES : []) {
    const endpoint = await startProxy(s3port, latency)
    const run = `runs/${latency}`
    // Ours, both layouts, and the Python library: the same sequence on each one's own database.
    for (const sys of ['versioned', 'sqlite-s3vfs', 'python'] as Sys[]) {
      if (!want(sys)) continue
      const blockSize = sys === 'python' ? PY_BLOCK : BLOCK
      const name = sys === 'python' ? 'python sqlite-s3vfs' : `ours (${sys})`
      const prefix = `${run}/${sys}/db`
      const m = (w: Workload, extra: Partial<Job> = {}) => measure(sys, w, endpoint, { prefix, blockSize, ...extra })
      add(latency, name, 'bulk', await m('bulk'))
      add(latency, name, 'commits', await m('commits'))
      add(latency, name, 'scan', await m('scan'))
      if (sys === 'python') add(latency, name, 'warm', await m('warm'), `${PY_WARM} queries, not ${WARM_QUERIES}`)
      else {
        add(latency, name, 'warm', await m('warm'))
        add(latency, name, 'warm-txn', await m('warm-txn'))
        add(latency, name, 'warm-stale', await m('warm-stale', { options: { maxStaleness: 600_000 } }))
      }
      // The cache is a tenth of the database: RSS must not follow the database's size.
      const small = { cacheSize: Math.floor(mediumBytes / 10) }
      add(latency, name, 'serialize', await m('serialize', { options: small }))
      add(latency, name, 'deserialize', await m('deserialize', { prefix: `${prefix}-imported`, file: medium, options: small }))
      const big = { prefix: bigPrefix[sys], ...(sys === 'python' ? { blockSize: BIG_PY_BLOCK } : {}) }
      const note = sys === 'python' ? '256 KiB blocks' : undefined
      add(latency, name, 'pk', await m('pk', big), note)
      add(latency, name, 'index', await m('index', { ...big, key }), note)
    }
    if (hasTurbolite) {
      const prefix = `${run}/turbolite/db`
      const m = (w: Workload, extra: Partial<Job> = {}) => measure('turbolite', w, endpoint, { prefix, ...extra })
      add(latency, 'turbolite', 'bulk', await m('bulk'), 'its own rows')
      add(latency, 'turbolite', 'commits', await m('commits'))
      const imported = `${run}/turbolite/imported`
      add(latency, 'turbolite', 'deserialize', await m('deserialize', { prefix: imported, file: medium }))
      add(latency, 'turbolite', 'scan', await m('scan', { prefix: imported }))
      add(latency, 'turbolite', 'pk', await m('pk', { prefix: bigPrefix.turbolite }))
      add(latency, 'turbolite', 'index', await m('index', { prefix: bigPrefix.turbolite, key }))
    }
    if (want('naive')) {
      const prefix = `${run}/naive.sqlite`
      const m = (w: Workload, extra: Partial<Job> = {}) => measure('naive', w, endpoint, { prefix, ...extra })
      add(latency, 'naive download', 'bulk', await m('bulk'))
      add(latency, 'naive download', 'commits', await m('commits'))
      add(latency, 'naive download', 'scan', await m('scan'))
      add(latency, 'naive download', 'serialize', await m('serialize'))
      add(latency, 'naive download', 'deserialize', await m('deserialize', { prefix: `${run}/naive-imported.sqlite`, file: medium }))
      add(latency, 'naive download', 'pk', await m('pk', { prefix: bigPrefix.naive }))
      add(latency, 'naive download', 'index', await m('index', { prefix: bigPrefix.naive, key }))
    }
    if (want('local') && latency === LATENCIES[0]) {
      const m = (w: Workload, extra: Partial<Job> = {}) => measure('local', w, endpoint, { prefix: '', file: medium, ...extra })
      add(0, 'local better-sqlite3', 'bulk', await m('bulk'))
      add(0, 'local better-sqlite3', 'commits', await m('commits'))
      add(0, 'local better-sqlite3', 'scan', await m('scan'))
      add(0, 'local better-sqlite3', 'warm', await m('warm'))
      add(0, 'local better-sqlite3', 'pk', await m('pk', { file: big }))
      add(0, 'local better-sqlite3', 'index', await m('index', { file: big, key }))
    }
    if (want('raw')) {
      const prefix = `${run}/raw`
      const m = (w: Workload) => measure('raw', w, endpoint, { prefix, bytes: mediumBytes })
      add(latency, 'raw store limit', 'bulk', await m('bulk'))
      add(latency, 'raw store limit', 'commits', await m('commits'))
      add(latency, 'raw store limit', 'scan', await m('scan'))
      add(latency, 'raw store limit', 'serialize', await m('serialize'))
      add(latency, 'raw store limit', 'deserialize', await m('deserialize'))
      add(latency, 'raw store limit', 'pk', await m('pk'))
    }
    writeFileSync(join(DATA, 'results.partial.json'), JSON.stringify({ rows }, null, 1))
  }

  // Memory: the 1.4 GB database through serialize and deserialize with the default 64 MiB cache.
  const memory: Row[] = []
  if (MEMORY) {
    const bigV = await fixture('versioned', BLOCK)
    const endpoint = await startProxy(s3port, 0)
    memory.push({
      latency: 0,
      system: OURS_NAME,
      workload: 'serialize',
      m: await measure('versioned', 'serialize', endpoint, { prefix: bigV }),
    })
    memory.push({
      latency: 0,
      system: OURS_NAME,
      workload: 'deserialize',
      m: await measure('versioned', 'deserialize', endpoint, { prefix: 'runs/memory/imported', file: big }),
    })
    for (const r of memory)
      log(
        `memory: ${r.workload} of ${(statSync(big).size / 1e9).toFixed(2)} GB: peak RSS ${r.m.rssMb?.toFixed(0)} MB in ${r.m.ms?.toFixed(0)} ms`,
      )
  }

  // Compression (and, later, encryption) of the versioned layout: the same workloads with each
  // codec, the bytes each leaves stored, and the ratio on a text-heavy data set made by faker.
  const codec: Row[] = []
  if (section('codec', 'BENCH_CODEC')) {
    const stored = async (prefix: string) => {
      let bytes = 0
      let token: string | undefined
      do {
        const r = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `${prefix}/`, ContinuationToken: token }))
        for (const o of r.Contents ?? []) bytes += o.Size ?? 0
        token = r.IsTruncated ? r.NextContinuationToken : undefined
      } while (token)
      return bytes
    }
    const text = textFixture()
    for (const latency of LATENCIES) {
      const endpoint = await startProxy(s3port, latency)
      for (const variant of Object.keys(CODECS)) {
        const prefix = `runs/codec/${latency}/${variant}`
        const options = CODECS[variant]
        const m = (w: Workload, extra: Partial<Job> = {}) => measure('versioned', w, endpoint, { prefix, options, ...extra })
        const add = async (w: Workload, extra: Partial<Job> = {}, storedAt?: string) => {
          const r: Row = { latency, system: variant, workload: w, m: await m(w, extra) }
          if (storedAt) r.note = String(await stored(storedAt))
          codec.push(r)
        }
        await add('bulk', {}, prefix)
        await add('scan')
        await add('point')
        await add('serialize')
        await add('deserialize', { prefix: `${prefix}-imported`, file: medium }, `${prefix}-imported`)
        if (latency === LATENCIES[0]) {
          const textPrefix = `runs/codec/text/${variant}`
          await add('deserialize', { prefix: textPrefix, file: text }, textPrefix)
          codec[codec.length - 1].workload = 'text'
        }
        log(`codec ${variant} at ${latency} ms done`)
      }
    }
  }

  const sweep: Row[] = []
  if (SWEEP) {
    for (const blockSize of (process.env.BENCH_SWEEP_SIZES ?? '4096,65536,131072,262144,1048576').split(',').map(Number)) {
      const bigP = await fixture('versioned', blockSize)
      for (const latency of LATENCIES) {
        const endpoint = await startProxy(s3port, latency)
        const prefix = `runs/sweep/${latency}/${blockSize}`
        const m = (w: Workload, extra: Partial<Job> = {}) => measure('versioned', w, endpoint, { prefix, blockSize, ...extra })
        for (const w of ['bulk', 'commits', 'scan', 'serialize'] as Workload[])
          sweep.push({ latency, system: `${blockSize}`, workload: w, m: await m(w) })
        sweep.push({ latency, system: `${blockSize}`, workload: 'pk', m: await m('pk', { prefix: bigP }) })
        sweep.push({ latency, system: `${blockSize}`, workload: 'index', m: await m('index', { prefix: bigP, key }) })
        log(`sweep ${blockSize} at ${latency} ms done`)
      }
    }
  }
  const meta = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: execFileSync('nproc').toString().trim(),
    defaults,
    bulkRows: BULK_ROWS,
    mediumBytes,
    bigBytes: existsSync(big) ? statSync(big).size : 0,
    pyBlock: PY_BLOCK,
  }
  // BENCH_MERGE=1 keeps the sections of the last results that this run did not measure.
  const last = process.env.BENCH_MERGE === '1' ? JSON.parse(readFileSync(join(__dirname, 'results.json'), 'utf8')) : {}
  const keep = <T>(mine: T[], theirs?: T[]) => (mine.length || !theirs ? mine : theirs)
  writeFileSync(
    join(__dirname, 'results.json'),
    JSON.stringify(
      {
        meta: last.meta ?? meta,
        rows: keep(rows, last.rows),
        sweep: keep(sweep, last.sweep),
        memory: keep(memory, last.memory),
        codec: keep(codec, last.codec),
      },
      null,
      1,
    ),
  )
  report(join(__dirname, 'results.json'))
}

/** What the codec section compares: the options of each variant (one fixed bench key). */
const BENCH_KEY = Buffer.alloc(32, 0x42)
const CODECS: Record<string, DatabaseOptions> = {
  none: { compression: 'none' },
  zstd: { compression: 'zstd' },
  encrypted: { compression: 'none', encryption: { key: BENCH_KEY } },
  'zstd+encrypted': { compression: 'zstd', encryption: { key: BENCH_KEY } },
}

/** A text-heavy database, generated once by @faker-js/faker (seeded): customers and their
 *  product reviews, the kind of rows an app keeps. */
function textFixture(): string {
  const path = join(FIXTURES, 'reviews.sqlite')
  if (existsSync(path)) return path
  const { faker } = require('@faker-js/faker') as typeof import('@faker-js/faker')
  faker.seed(20261203)
  mkdirSync(FIXTURES, { recursive: true })
  const db = new Database(`${path}.tmp`)
  db.exec(
    'CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT, email TEXT, address TEXT, company TEXT); ' +
      'CREATE TABLE reviews(id INTEGER PRIMARY KEY, customer INTEGER, product TEXT, rating INTEGER, title TEXT, body TEXT, created TEXT); ' +
      'CREATE INDEX reviews_customer ON reviews(customer)',
  )
  const customer = db.prepare('INSERT INTO customers VALUES (?, ?, ?, ?, ?)')
  const review = db.prepare('INSERT INTO reviews VALUES (?, ?, ?, ?, ?, ?, ?)')
  db.transaction(() => {
    for (let i = 1; i <= 5000; i++)
      customer.run(
        i,
        faker.person.fullName(),
        faker.internet.email(),
        `${faker.location.streetAddress()}, ${faker.location.city()}`,
        faker.company.name(),
      )
    for (let i = 1; i <= 30000; i++)
      review.run(
        i,
        1 + (i % 5000),
        faker.commerce.productName(),
        1 + (i % 5),
        faker.company.catchPhrase(),
        `${faker.commerce.productDescription()} ${faker.lorem.paragraph()}`,
        faker.date.past({ years: 3 }).toISOString(),
      )
  })()
  db.close()
  renameSync(`${path}.tmp`, path)
  return path
}

async function deletePrefix(client: S3Client, prefix: string) {
  let token: string | undefined
  do {
    const r = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix, ContinuationToken: token }))
    const keys = (r.Contents ?? []).map((o) => ({ Key: o.Key! }))
    if (keys.length) await client.send(new DeleteObjectsCommand({ Bucket: BUCKET, Delete: { Objects: keys } }))
    token = r.IsTruncated ? r.NextContinuationToken : undefined
  } while (token)
}

main()
  .catch((e) => {
    console.error(e)
    process.exitCode = 1
  })
  .finally(() => {
    for (const p of procs) p.kill('SIGTERM')
  })
