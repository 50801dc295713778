// A separate process that works on a versioned database, for the multi-process tests
// (versioned.spec.ts). Usage: node --import tsx child.ts <mode> <bucket> <prefix> [n]
// It prints one JSON line per event on stdout.
import { S3Database, SqliteS3Error } from '../../index'
import { options as baseOptions } from './s3'
import type { DatabaseOptions } from '../../index'

// 4 KiB blocks, like the tests that start these processes.
const options = (extra: DatabaseOptions = {}) => baseOptions({ blockSize: 4096, ...extra })

const [mode, bucket, prefix, arg] = process.argv.slice(2)
const n = Number(arg ?? 0)
const say = (o: object) => process.stdout.write(JSON.stringify(o) + '\n')

async function main() {
  const db = new S3Database(bucket, prefix, options())
  let attempts = 0
  if (mode === 'increment') {
    // n increments of one counter, each a read-modify-write transaction retried on SQLITE_BUSY.
    for (let i = 0; i < n; i++) {
      await db.transaction(
        async (tx) => {
          attempts++
          const row = await tx.get<{ n: number }>('SELECT n FROM counter')
          await tx.run('UPDATE counter SET n = ?', [row!.n + 1])
        },
        { retries: 1000 },
      )
    }
    say({ done: n, attempts })
  } else if (mode === 'mover') {
    // n transfers between random accounts: the total never changes.
    for (let i = 0; i < n; i++) {
      const from = 1 + Math.floor(Math.random() * 20)
      const to = 1 + Math.floor(Math.random() * 20)
      const amount = 1 + Math.floor(Math.random() * 50)
      await db.transaction(
        async (tx) => {
          attempts++
          await tx.run('UPDATE accounts SET balance = balance - ? WHERE id = ?', [amount, from])
          await tx.run('UPDATE accounts SET balance = balance + ? WHERE id = ?', [amount, to])
        },
        { retries: 1000 },
      )
    }
    say({ done: n, attempts, version: db.version })
  } else if (mode === 'reader') {
    // Reads the total in two halves inside one read transaction until told to stop (stdin ends).
    let stop = false
    process.stdin.on('end', () => (stop = true)).resume()
    let checks = 0
    const bad: number[] = []
    const versions = new Set<number>()
    while (!stop) {
      await db.transaction(async (tx) => {
        const a = await tx.get<{ s: number }>('SELECT sum(balance) AS s FROM accounts WHERE id <= 10')
        await new Promise((r) => setTimeout(r, 5))
        const b = await tx.get<{ s: number }>('SELECT sum(balance) AS s FROM accounts WHERE id > 10')
        if (a!.s + b!.s !== 20 * 1000) bad.push(a!.s + b!.s)
        versions.add(db.version)
        checks++
      })
    }
    say({ checks, bad, versions: versions.size })
  } else if (mode === 'crash') {
    // Commits forever; acknowledges each commit after it returns. Killed by the parent.
    let i = (await db.get<{ last: number }>('SELECT last FROM state'))!.last
    for (;;) {
      i++
      await db.transaction(async (tx) => {
        await tx.run('INSERT INTO log(i, payload) VALUES (?, randomblob(6000))', [i])
        await tx.run('UPDATE state SET last = ?', [i])
      })
      say({ ack: i })
    }
  }
  await db.close()
}

main().catch((e) => {
  say({ error: e instanceof SqliteS3Error ? e.code : String(e), message: String(e?.message ?? e) })
  process.exit(1)
})
