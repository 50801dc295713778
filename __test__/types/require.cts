// The CommonJS side of the same package: `require` gets the same declarations.
import sqlite = require('sqlite-s3vfs')

export function usage(): void {
  const db = new sqlite.S3Database('bucket', 'prefix', { layout: 'sqlite-s3vfs' })
  const e: sqlite.SqliteS3Error = new sqlite.SqliteS3Error('ERR_X', 'x')
  console.log(db.layout, e.kind)
  // @ts-expect-error the CommonJS module has no default export to call
  sqlite()
}
