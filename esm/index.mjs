// The ES module entry point: the same implementation as `require('sqlite-s3vfs')` (one copy of
// every class, so `instanceof SqliteS3Error` holds whichever way the package was loaded).
export { S3Database, Statement, SqliteS3Error, defaults } from '../index.js'
