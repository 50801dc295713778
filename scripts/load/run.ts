// The load test (npm run test:load): 16 reader processes and 2 writer processes on one versioned
// database for LOAD_SECONDS (default 60) against the local S3 server, writers retrying on
// SQLITE_BUSY. Fails unless every acknowledged commit is in the database at the end, no reader
// ever saw a broken invariant or history going backwards, and no process crashed. Reports
// commits/s, reads/s, p50/p99 latencies and memory, into target/load.md (the README's figures).
import { spawn } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3'
import { S3Database } from '../../index'
import { startServers } from '../with-s3'

const SECONDS = Number(process.env.LOAD_SECONDS ?? 60)
const READERS = Number(process.env.LOAD_READERS ?? 16)
const WRITERS = Number(process.env.LOAD_WRITERS ?? 2)

interface Report {
  role: string
  id: number
  latencies: number[]
  rss: number[]
  acked: number[]
  busy: number
  violations: number
  crashed?: string
}

/** The report of a process that reported nothing (or not everything). */
const nothing = (role: string, id: number): Report => ({ role, id, latencies: [], rss: [], acked: [], busy: 0, violations: 0 })

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] : NaN
}

async function main() {
  const servers = await startServers()
  Object.assign(process.env, servers.env)
  try {
    const endpoint = servers.env.SQLITE_S3VFS_TEST_ENDPOINT
    const bucket = 'load'
    await new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true }).send(new CreateBucketCommand({ Bucket: bucket }))
    const prefix = 'load/db.sqlite'
    const options = { s3: { endpoint, region: 'us-east-1' }, blockSize: 4096 }
    const seed = new S3Database(bucket, prefix, options)
    await seed.exec(`CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
      CREATE TABLE log(writer INTEGER, seq INTEGER, PRIMARY KEY (writer, seq));
      WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < 99)
      INSERT INTO accounts SELECT n, 1000 FROM s;`)
    await seed.close()

    const child = resolve(__dirname, 'child.ts')
    const run = (role: string, id: number) =>
      new Promise<Report>((ok) => {
        const p = spawn(process.execPath, ['--import', 'tsx', child, role, bucket, prefix, endpoint, String(SECONDS), String(id)], {
          stdio: ['ignore', 'pipe', 'inherit'],
          env: process.env,
        })
        let out = ''
        p.stdout.on('data', (d) => (out += d))
        p.on('exit', (code, signal) => {
          try {
            ok({ ...nothing(role, id), ...JSON.parse(out.trim().split('\n').pop()!) })
          } catch {
            ok({ ...nothing(role, id), crashed: `exit ${code ?? signal}` })
          }
        })
      })
    const started = Date.now()
    const reports = await Promise.all([
      ...Array.from({ length: WRITERS }, (_, i) => run('writer', i)),
      ...Array.from({ length: READERS }, (_, i) => run('reader', i)),
    ])
    const elapsed = (Date.now() - started) / 1000

    const check = new S3Database(bucket, prefix, options)
    const rows = await check.all<{ writer: number; seq: number }>('SELECT writer, seq FROM log')
    const have = new Set(rows.map((r) => `${r.writer}/${r.seq}`))
    const integrity = await check.get<{ integrity_check: string }>('PRAGMA integrity_check')
    const total = await check.get<{ t: number }>('SELECT sum(balance) AS t FROM accounts')
    await check.close()

    const writers = reports.filter((r) => r.role === 'writer')
    const readers = reports.filter((r) => r.role === 'reader')
    const acked = writers.flatMap((w) => w.acked.map((s) => `${w.id}/${s}`))
    const missing = acked.filter((k) => !have.has(k))
    const crashed = reports.filter((r) => r.crashed)
    const violations = readers.reduce((a, r) => a + r.violations, 0)
    const wl = writers.flatMap((w) => w.latencies)
    const rl = readers.flatMap((r) => r.latencies)
    const rssGrowth = reports.filter((r) => r.rss.length > 10).map((r) => r.rss[r.rss.length - 1] / r.rss[Math.min(5, r.rss.length - 1)])
    const mb = (b: number) => (b / 2 ** 20).toFixed(0)
    const peak = Math.max(...reports.flatMap((r) => r.rss))
    const lines = [
      `Load (${READERS} reader and ${WRITERS} writer processes, ${SECONDS} s, local gofakes3, ${new Date().toISOString().slice(0, 10)}):`,
      '',
      '| | value |',
      '|---|---|',
      `| commits acknowledged | ${acked.length} (${(acked.length / elapsed).toFixed(1)}/s), ${writers.reduce((a, w) => a + w.busy, 0)} SQLITE_BUSY retries |`,
      `| commits missing at the end | ${missing.length} |`,
      `| read transactions | ${rl.length} (${(rl.length / elapsed).toFixed(1)}/s) |`,
      `| reads that saw a broken invariant or history going back | ${violations} |`,
      `| processes crashed | ${crashed.length} |`,
      `| commit latency p50 / p99 | ${pct(wl, 50).toFixed(0)} / ${pct(wl, 99).toFixed(0)} ms |`,
      `| read latency p50 / p99 | ${pct(rl, 50).toFixed(0)} / ${pct(rl, 99).toFixed(0)} ms |`,
      `| RSS per process: peak; last ÷ 5th second (max) | ${mb(peak)} MiB; ${Math.max(...rssGrowth).toFixed(2)} |`,
      `| integrity_check, sum of balances | ${integrity?.integrity_check}, ${total?.t} |`,
    ]
    mkdirSync(resolve(__dirname, '..', '..', 'target'), { recursive: true })
    writeFileSync(resolve(__dirname, '..', '..', 'target', 'load.md'), lines.join('\n') + '\n')
    console.log(lines.join('\n'))
    for (const c of crashed) console.error(`crashed: ${c.role} ${c.id}: ${c.crashed} ${(c as { code?: string }).code ?? ''}`)
    const ok =
      missing.length === 0 && violations === 0 && crashed.length === 0 && integrity?.integrity_check === 'ok' && total?.t === 100_000
    if (!ok) {
      console.error('LOAD TEST FAILED')
      process.exitCode = 1
    }
  } finally {
    servers.stop()
  }
}

main().catch((e) => {
  console.error(e)
  process.exitCode = 1
})
