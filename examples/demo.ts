// The demo: import a sample database into S3, query it, write to it in a transaction, export it
// with serialize() into an @aws-sdk/lib-storage Upload, and print the request counts.
// Run it with `npm run demo` (which starts a local S3 server); or point it at your own bucket with
// DEMO_BUCKET plus the usual AWS_* variables.
import { CreateBucketCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { Upload } from '@aws-sdk/lib-storage'
import Database from 'better-sqlite3'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createReadStream } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { S3Database } from '../index'

const endpoint = process.env.SQLITE_S3VFS_TEST_ENDPOINT ?? process.env.AWS_ENDPOINT_URL_S3
const bucket = process.env.DEMO_BUCKET ?? 'demo'
const s3 = endpoint ? { endpoint, region: process.env.AWS_REGION ?? 'us-east-1' } : undefined

function sampleDatabase(): string {
  const path = join(mkdtempSync(join(tmpdir(), 'demo-')), 'orders.sqlite')
  const db = new Database(path)
  db.exec('CREATE TABLE orders(id INTEGER PRIMARY KEY, customer TEXT, amount REAL, placed TEXT)')
  db.exec('CREATE INDEX orders_customer ON orders(customer)')
  const insert = db.prepare('INSERT INTO orders(customer, amount, placed) VALUES (?, ?, ?)')
  db.transaction(() => {
    for (let i = 0; i < 50_000; i++)
      insert.run(`customer-${i % 977}`, ((i * 7919) % 10_000) / 100, `2026-${String((i % 12) + 1).padStart(2, '0')}-01`)
  })()
  db.close()
  return path
}

async function main() {
  const client = new S3Client({ endpoint, region: s3?.region, forcePathStyle: !!endpoint, requestChecksumCalculation: 'WHEN_REQUIRED' })
  if (endpoint) await client.send(new CreateBucketCommand({ Bucket: bucket })).catch(() => undefined)

  const prefix = `demo-${Date.now()}/orders.sqlite`
  const local = sampleDatabase()
  const { size } = await S3Database.deserialize(bucket, prefix, createReadStream(local), { s3, blockSize: 65536 })
  console.log(`imported ${(size / 1e6).toFixed(1)} MB into s3://${bucket}/${prefix}`)

  const db = new S3Database(bucket, prefix, { s3, blockSize: 65536 })
  await db.open()
  const top = await db.all<{ customer: string; total: number }>(
    'SELECT customer, round(sum(amount), 2) AS total FROM orders WHERE customer IN (?, ?, ?) GROUP BY customer ORDER BY total DESC',
    ['customer-1', 'customer-2', 'customer-3'],
  )
  console.log('totals of three customers:', top)
  console.log('one order by primary key:', await db.get('SELECT * FROM orders WHERE id = ?', [31337]))

  await db.transaction(async (tx) => {
    await tx.run('INSERT INTO orders(customer, amount, placed) VALUES (?, ?, ?)', ['customer-new', 99.5, '2026-11-26'])
    await tx.run('UPDATE orders SET amount = amount * 2 WHERE customer = ?', ['customer-1'])
  })
  console.log('after the transaction:', await db.get('SELECT count(*) AS orders, max(id) AS last FROM orders'))

  const exportKey = `${prefix}.export.sqlite`
  await new Upload({ client, params: { Bucket: bucket, Key: exportKey, Body: db.serialize() } }).done()
  const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: exportKey }))
  console.log(`exported a plain SQLite file to s3://${bucket}/${exportKey} (${head.ContentLength} bytes)`)
  console.log('requests made by this S3Database:', db.stats())
  await db.close()

  // The same database from the command line (bin/cli.js is the package's `sqlite-s3vfs`).
  const cli = join(__dirname, '..', 'bin', 'cli.js')
  const flags = endpoint ? ['--endpoint', endpoint] : []
  for (const command of ['info', 'versions']) {
    console.log(`\n$ sqlite-s3vfs ${command} s3://${bucket}/${prefix}`)
    execFileSync(process.execPath, [cli, command, `s3://${bucket}/${prefix}`, ...flags], { stdio: 'inherit' })
  }
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
