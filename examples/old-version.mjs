// Time travel: every commit of the versioned layout is a version, and an old one can be read
// (read-only) until `S3Database.gc` collects it. `S3Database.inspect` lists them.
//
//   BUCKET=my-bucket node examples/old-version.mjs
import { S3Database } from 'sqlite-s3vfs'

const bucket = process.env.BUCKET ?? 'examples'
const prefix = `examples/prices-${Date.now()}.sqlite`

const db = new S3Database(bucket, prefix)
// One transaction, one version.
await db.transaction((tx) => tx.exec("CREATE TABLE prices(item TEXT PRIMARY KEY, price REAL); INSERT INTO prices VALUES ('tea', 3.5)"))
const before = db.version
await db.run("UPDATE prices SET price = 4.0 WHERE item = 'tea'")
console.log(`now, version ${db.version}:`, await db.get("SELECT price FROM prices WHERE item = 'tea'"))
await db.close()

const then = new S3Database(bucket, prefix, { version: before })
console.log(`version ${before}:`, await then.get("SELECT price FROM prices WHERE item = 'tea'"))
await then.close()

const { versions } = await S3Database.inspect(bucket, prefix)
for (const v of versions) console.log(`version ${v.version} created ${new Date(v.createdMs).toISOString()}`)
