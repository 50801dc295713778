// Four S3 implementations, each started here on 127.0.0.1 (gofakes3, versitygw, moto, s3proxy):
// whether a create-only PUT (If-None-Match: *) is atomic (16 writers racing for one key, 20
// rounds), what the package's own runtime probe says, and a smoke test of both layouts through
// the API (write in a transaction, read back, serialize). The whole suite runs against any one of
// them with `npm run test:servers` (README, "Tests").
import { CreateBucketCommand, PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3'
import test from 'ava'
import type { ChildProcess } from 'node:child_process'
import { rmSync } from 'node:fs'
import { S3Database, SqliteS3Error } from '../index'
import { SERVERS, startServer } from '../scripts/with-s3'

const credentials = { accessKeyId: 'test', secretAccessKey: 'test' }

for (const server of SERVERS) {
  test(`${server}: conditional creates, the runtime probe, and both layouts through the API`, async (t) => {
    const procs: ChildProcess[] = []
    const dirs: string[] = []
    t.teardown(() => {
      for (const p of procs) p.kill('SIGTERM')
      for (const d of dirs) rmSync(d, { recursive: true, force: true })
    })
    const endpoint = await startServer(server, procs, dirs)
    const client = new S3Client({
      endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    })
    const bucket = `servers-${server}`
    await client.send(new CreateBucketCommand({ Bucket: bucket }))

    // 1. Is If-None-Match: * atomic? One winner per round, the rest 412 (or 409).
    let doubleWinners = 0
    let noWinner = 0
    for (let round = 0; round < 20; round++) {
      const statuses = await Promise.all(
        Array.from({ length: 16 }, (_, w) =>
          client.send(new PutObjectCommand({ Bucket: bucket, Key: `race/${round}`, Body: `w${w}`, IfNoneMatch: '*' })).then(
            () => 200,
            (e: S3ServiceException) => e.$metadata?.httpStatusCode ?? -1,
          ),
        ),
      )
      const winners = statuses.filter((s) => s === 200).length
      if (winners > 1) doubleWinners++
      if (winners === 0) noWinner++
      t.true(
        statuses.every((s) => s === 200 || s === 412 || s === 409),
        `round ${round}: ${statuses.join(',')}`,
      )
    }
    t.log(`${server}: 20 rounds × 16 creates: ${doubleWinners} rounds with two winners, ${noWinner} with none`)

    // 2. Both layouts through the API; the versioned layout's probe decides whether writes run.
    const options = { s3: { endpoint, region: 'us-east-1', credentials } }
    for (const layout of ['versioned', 'sqlite-s3vfs'] as const) {
      const db = new S3Database(bucket, `smoke-${layout}/db.sqlite`, { ...options, layout, blockSize: 4096 })
      try {
        await db.transaction(async (tx) => {
          await tx.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)')
          for (let i = 0; i < 50; i++) await tx.run('INSERT INTO t(v) VALUES (?)', [`row ${i}`])
        })
      } catch (e) {
        // Only a store that ignores If-None-Match may refuse (and must say so with its code).
        t.true(e instanceof SqliteS3Error && e.code === 'ERR_CONDITIONAL_WRITES_UNSUPPORTED', String(e))
        t.log(`${server}: ${layout}: the runtime probe refused writes (${(e as SqliteS3Error).code})`)
        await db.close()
        continue
      }
      t.log(`${server}: ${layout}: the runtime probe accepted the store`)
      const fresh = new S3Database(bucket, `smoke-${layout}/db.sqlite`, options)
      t.deepEqual(await fresh.get('SELECT count(*) AS n, max(v) AS v FROM t'), { n: 50, v: 'row 9' })
      t.deepEqual(await fresh.get('PRAGMA integrity_check'), { integrity_check: 'ok' })
      const chunks: Buffer[] = []
      for await (const c of fresh.serialize()) chunks.push(c as Buffer)
      t.is(Buffer.concat(chunks).subarray(0, 16).toString('latin1'), 'SQLite format 3\0')
      await Promise.all([db.close(), fresh.close()])
    }
  })
}
