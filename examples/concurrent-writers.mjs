// Several writers, one database. Each S3Database here stands for a separate process or machine
// (they share nothing but the bucket). A commit that loses the race to another writer's fails
// with ERR_CONFLICT; `retries` runs the transaction function again on the new version, so every
// increment lands exactly once.
//
//   BUCKET=my-bucket node examples/concurrent-writers.mjs
import { S3Database } from 'sqlite-s3vfs'

const bucket = process.env.BUCKET ?? 'examples'
const prefix = `examples/counter-${Date.now()}.sqlite`
const WRITERS = 4
const INCREMENTS = 10

const setup = new S3Database(bucket, prefix)
await setup.exec('CREATE TABLE counter(id INTEGER PRIMARY KEY, n INTEGER NOT NULL); INSERT INTO counter VALUES (1, 0)')
await setup.close()

async function writer() {
  const db = new S3Database(bucket, prefix)
  for (let i = 0; i < INCREMENTS; i++) {
    // Read, then write, in one transaction: a lost race runs the whole function again.
    await db.transaction(
      async (tx) => {
        const { n } = await tx.get('SELECT n FROM counter WHERE id = 1')
        await tx.run('UPDATE counter SET n = ? WHERE id = 1', [n + 1])
      },
      { retries: 50 },
    )
  }
  await db.close()
}

await Promise.all(Array.from({ length: WRITERS }, writer))
const check = new S3Database(bucket, prefix)
const { n } = await check.get('SELECT n FROM counter WHERE id = 1')
console.log(`${WRITERS} writers x ${INCREMENTS} increments: counter = ${n}, version ${check.version}`)
await check.close()
if (n !== WRITERS * INCREMENTS) process.exit(1)
