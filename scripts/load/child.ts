// One process of the load test (scripts/load/run.ts): a reader or a writer on one database until
// a deadline. Prints one JSON line at the end: counts, latencies, memory samples, and (writers)
// every acknowledged commit. Usage: node --import tsx child.ts <reader|writer> <bucket> <prefix>
// <endpoint> <seconds> <id>
import { S3Database, SqliteS3Error } from '../../index'

const [role, bucket, prefix, endpoint, seconds, id] = process.argv.slice(2)
const deadline = Date.now() + Number(seconds) * 1000
const ACCOUNTS = 100
const TOTAL = ACCOUNTS * 1000

async function main() {
  const db = new S3Database(bucket, prefix, { s3: { endpoint, region: 'us-east-1' }, blockSize: 4096 })
  const latencies: number[] = []
  const rss: number[] = []
  const acked: number[] = []
  let busy = 0
  let violations = 0
  let lastLog = 0
  let next = 0
  const sample = setInterval(() => rss.push(process.memoryUsage().rss), 1000)
  while (Date.now() < deadline) {
    const started = performance.now()
    if (role === 'writer') {
      const seq = next++
      const [a, b] = [Math.floor(Math.random() * ACCOUNTS), Math.floor(Math.random() * ACCOUNTS)]
      for (;;) {
        try {
          await db.transaction(async (tx) => {
            await tx.run('UPDATE accounts SET balance = balance - 7 WHERE id = ?', [a])
            await tx.run('UPDATE accounts SET balance = balance + 7 WHERE id = ?', [b])
            await tx.run('INSERT INTO log(writer, seq) VALUES (?, ?)', [Number(id), seq])
          })
          break
        } catch (e) {
          if (e instanceof SqliteS3Error && e.kind === 'conflict') {
            busy++
            continue
          }
          throw e
        }
      }
      acked.push(seq)
    } else {
      // One read transaction: the invariant holds, and the history never goes backwards.
      const row = await db.transaction(async (tx) => {
        const s = await tx.get<{ total: number; n: number }>('SELECT sum(balance) AS total, count(*) AS n FROM accounts')
        const l = await tx.get<{ n: number }>('SELECT count(*) AS n FROM log')
        return { ...s!, log: l!.n }
      })
      if (row.total !== TOTAL || row.n !== ACCOUNTS || row.log < lastLog) violations++
      lastLog = row.log
    }
    latencies.push(performance.now() - started)
  }
  clearInterval(sample)
  await db.close()
  process.stdout.write(JSON.stringify({ role, id: Number(id), latencies, rss, acked, busy, violations }) + '\n')
}

main().catch((e) => {
  process.stdout.write(JSON.stringify({ role, id: Number(id), crashed: String(e), code: (e as SqliteS3Error).code }) + '\n')
  process.exit(1)
})
