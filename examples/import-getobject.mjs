// Import a plain SQLite file that is an object in S3 (an upload, a nightly export) as a database:
// the GetObject body streams straight into `S3Database.deserialize`, block by block, without a
// temp file. `overwrite: true` replaces a database already under the prefix; without it the import
// fails with ERR_DATABASE_EXISTS.
//
//   BUCKET=my-bucket SOURCE_KEY=exports/orders.sqlite node examples/import-getobject.mjs
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3'
import { S3Database } from 'sqlite-s3vfs'

const bucket = process.env.BUCKET ?? 'examples'
const sourceKey = process.env.SOURCE_KEY ?? 'exports/orders.sqlite'
const client = new S3Client({ forcePathStyle: Boolean(process.env.AWS_ENDPOINT_URL_S3) })

const { Body } = await client.send(new GetObjectCommand({ Bucket: bucket, Key: sourceKey }))
const prefix = 'examples/orders-imported.sqlite'
const { size } = await S3Database.deserialize(bucket, prefix, Body, { overwrite: true })

const db = new S3Database(bucket, prefix)
const { n, total } = await db.get('SELECT count(*) AS n, round(sum(amount), 1) AS total FROM orders')
console.log(`imported ${size} bytes from s3://${bucket}/${sourceKey}: ${n} orders, ${total} in total`)
await db.close()
