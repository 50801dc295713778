// Export a database as a plain SQLite file into S3 with @aws-sdk/lib-storage's Upload:
// `db.serialize()` is a Readable stream of the file's bytes, read from a consistent snapshot while
// writers go on, so the upload never holds the whole file in memory.
//
//   BUCKET=my-bucket node examples/export-upload.mjs
import { HeadObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { Upload } from '@aws-sdk/lib-storage'
import { S3Database } from 'sqlite-s3vfs'

const bucket = process.env.BUCKET ?? 'examples'
// A local S3-compatible server (AWS_ENDPOINT_URL_S3) wants path-style addresses.
const client = new S3Client({ forcePathStyle: Boolean(process.env.AWS_ENDPOINT_URL_S3) })

const db = new S3Database(bucket, `examples/orders-${Date.now()}.sqlite`)
await db.exec('CREATE TABLE orders(id INTEGER PRIMARY KEY, customer TEXT, amount REAL)')
await db.transaction(async (tx) => {
  for (let i = 0; i < 1000; i++) await tx.run('INSERT INTO orders(customer, amount) VALUES (?, ?)', [`customer-${i % 37}`, i / 10])
})

const key = 'exports/orders.sqlite'
await new Upload({ client, params: { Bucket: bucket, Key: key, Body: db.serialize(), ContentType: 'application/vnd.sqlite3' } }).done()
const { ContentLength } = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))
const { n } = await db.get('SELECT count(*) AS n FROM orders')
console.log(`exported ${n} orders as s3://${bucket}/${key} (${ContentLength} bytes)`)
await db.close()
