// Scenarios of regressions.spec.ts that need a process of their own (run with --expose-gc):
//   node --expose-gc --import tsx regression-child.ts <mode> <bucket> <prefix> [n]
// Prints one JSON line with what it observed; any error exits 1 with its code.
import { S3Database, SqliteS3Error } from '../../index'
import { options, series } from './s3'
import { writeSql } from './workload'

const [mode, bucket, prefix, arg] = process.argv.slice(2)
const n = Number(arg ?? 0)

if (mode === 'run') {
  // One write of the differential test on an existing database, from another process:
  // arg is JSON { options, write }.
  // Buffers (an encryption key) cross as JSON { type: 'Buffer', data }.
  const { options: o, write } = JSON.parse(arg, (_k, v) => (v?.type === 'Buffer' && Array.isArray(v.data) ? Buffer.from(v.data) : v))
  // A key provider crosses as the keys it gives: { keyId, providerKeys }.
  const keys: Record<string, Buffer> | undefined = o.encryption?.providerKeys
  if (keys) o.encryption = { keyId: o.encryption.keyId, keyProvider: async (id: string) => keys[id] ?? null }
  const [sql, params] = writeSql(write)
  const db = new S3Database(bucket, prefix, o)
  db.run(sql, params as never)
    .then(() => db.close())
    .then(() => say({ done: true, version: db.version }))
    .catch((e) => {
      say({ error: e instanceof SqliteS3Error ? e.code : String(e), message: String(e?.message ?? e) })
      process.exit(1)
    })
} else {
  main().catch((e) => {
    say({ error: e instanceof SqliteS3Error ? e.code : String(e), message: String(e?.message ?? e) })
    process.exit(1)
  })
}

const say = (o: object) => process.stdout.write(JSON.stringify(o) + '\n')

/** Lets V8 collect what is unreachable and run the finalizers it queued. */
async function collect() {
  for (let i = 0; i < 3; i++) {
    ;(globalThis as { gc?: () => void }).gc?.()
    await new Promise((r) => setTimeout(r, 20))
  }
}

async function main() {
  const a = new S3Database(bucket, prefix, options({ iterateBatchSize: 1 }))
  await a.exec(`CREATE TABLE t(x); INSERT INTO t SELECT n FROM ${series(10)}`)
  if (mode === 'abandon') {
    // One row read, the iterator dropped: it holds a read transaction until it is reclaimed.
    await a.iterate('SELECT x FROM t').next()
    await collect()
    const b = new S3Database(bucket, prefix, options())
    await b.run('INSERT INTO t VALUES (11)')
    const count = (await a.get<{ n: number }>('SELECT count(*) AS n FROM t'))!.n
    await a.run('INSERT INTO t VALUES (12)')
    const after = (await b.get<{ n: number }>('SELECT count(*) AS n FROM t'))!.n
    say({ count, wrote: true, after })
    await b.close()
  } else if (mode === 'closed-calls') {
    // An iterator left open, the database closed: its return() and later calls must settle, and
    // nothing may keep the process alive afterwards.
    const it = a.iterate('SELECT x FROM t')
    await it.next()
    await a.close()
    const codes: string[] = []
    for (const call of [() => a.run('SELECT 1'), () => a.all('SELECT 1')]) {
      await call().catch((e: SqliteS3Error) => codes.push(e.code))
    }
    await it.return!()
    say({ codes, returned: true })
    return
  } else if (mode === 'serialize-closed') {
    // Review #13: a stream made on a closed database and read only later (as Upload does).
    await a.close()
    const s = a.serialize()
    await new Promise((r) => setTimeout(r, 50))
    s.resume()
    const error = await new Promise<unknown>((r) => s.on('error', r))
    say({ error: (error as SqliteS3Error).code })
    return
  } else if (mode === 'abandon-many') {
    // Dropped iterators are reclaimed as V8 collects them (here every 500; at most
    // MAX_OPEN_ITERATORS can be open between two collections, see regressions.spec.ts).
    let iterated = 0
    for (let i = 0; i < n; i++) {
      await a.iterate('SELECT x FROM t').next()
      iterated++
      if (i % 500 === 499) await collect()
    }
    // And the connection is still whole: it writes.
    await a.run('INSERT INTO t VALUES (11)')
    say({ iterated })
  }
  await a.close()
}
