// Typed usage of the package as its users write it, type-checked (never run) by `npm test`:
// `tsc --noEmit --strict` under `moduleResolution` `nodenext` (tsconfig.json) and `bundler`
// (tsconfig.bundler.json), importing the package by its name through its `exports` map. Every
// `@ts-expect-error` line must fail to compile, or tsc reports the directive as unused.
import { type DatabaseOptions, defaults, type ErrorKind, S3Database, SqliteS3Error, type Stats } from 'sqlite-s3vfs'
// @ts-expect-error named exports only: the package has no default export
import pkg from 'sqlite-s3vfs'

interface User {
  id: number
  name: string
}

export async function usage(): Promise<void> {
  const options: DatabaseOptions = {
    layout: 'versioned',
    blockSize: 262144,
    cacheSize: 64 << 20,
    memoryLimit: defaults.memoryLimit,
    s3: { region: 'eu-west-1', retry: { maxAttempts: 3 }, timeouts: { firstByteMs: 1500 } },
  }
  const db = new S3Database('bucket', 'prefix', options)
  await db.exec('CREATE TABLE IF NOT EXISTS users(id INTEGER PRIMARY KEY, name TEXT)')
  const r = await db.run('INSERT INTO users(name) VALUES (?)', ['ada'])
  const changes: number = r.changes
  const user = await db.get<User>('SELECT id, name FROM users WHERE id = :id', { id: 1 })
  const name: string | undefined = user?.name
  const all: User[] = await db.all<User>('SELECT id, name FROM users')
  for await (const u of db.iterate<User>('SELECT id, name FROM users')) console.log(u.id)
  const total = await db.transaction(async (tx) => {
    await tx.run('UPDATE users SET name = ? WHERE id = ?', ['grace', 1])
    return (await tx.all<User>('SELECT * FROM users')).length
  })
  const n: number = total
  const stats: Stats = db.stats()
  const peak: number = stats.bufferedPeak
  const settled: 'committed' | 'lost' | 'none' = await db.settle()
  try {
    await db.run('INSERT INTO users(id) VALUES (1)')
  } catch (e) {
    if (e instanceof SqliteS3Error) {
      const code: string = e.code
      const kind: ErrorKind = e.kind
      console.log(code, kind)
    }
  }
  const report = await S3Database.gc('bucket', 'prefix', { keepVersions: 2 })
  const deleted: number = report.objectsDeleted
  console.log(changes, name, all, n, peak, settled, deleted, pkg)
  db.serialize().pipe(process.stdout)
  await db.close()

  // @ts-expect-error a size is a number of bytes, not a string
  new S3Database('bucket', 'prefix', { cacheSize: '64MB' })
  // @ts-expect-error an unknown option is a typo
  new S3Database('bucket', 'prefix', { cachesize: 1 })
  // @ts-expect-error the layouts are 'versioned' and 'sqlite-s3vfs'
  new S3Database('bucket', 'prefix', { layout: 'wal' })
  // @ts-expect-error a row is typed by the caller's generic: no such property
  console.log((await db.get<User>('SELECT 1'))?.email)
  // @ts-expect-error parameters are an array or an object of values
  await db.run('SELECT ?', 42)
  // @ts-expect-error the error kinds are a closed set
  const wrong: ErrorKind = 'fatal'
  console.log(wrong)
}
