import test from 'ava'
import { S3Database, SqliteS3Error } from '../index'
import { freshBucket, freshPrefix, options } from './helpers/s3'

let bucket = ''
test.before(async () => {
  bucket = await freshBucket('api')
})

function open(extra = {}) {
  return new S3Database(bucket, freshPrefix('api'), options(extra))
}

test('exec, run, get, all with positional and named parameters', async (t) => {
  const db = open()
  await db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, score REAL, data BLOB)')
  const r = await db.run('INSERT INTO t(name, score, data) VALUES (?, ?, ?)', ['a', 1.5, Buffer.from([1, 2])])
  t.deepEqual(r, { changes: 1, lastInsertRowid: 1 })
  await db.run('INSERT INTO t(name, score) VALUES (:name, @score)', { name: 'b', score: 2 })
  await db.run('INSERT INTO t(name, score) VALUES ($name, $score)', { name: 'c', score: null })
  const row = await db.get<{ id: number; name: string; score: number; data: Buffer }>('SELECT * FROM t WHERE id = ?', [1])
  t.deepEqual(row, { id: 1, name: 'a', score: 1.5, data: Buffer.from([1, 2]) })
  t.is(await db.get('SELECT * FROM t WHERE id = ?', [99]), undefined)
  const all = await db.all<{ name: string }>('SELECT name FROM t ORDER BY id')
  t.deepEqual(
    all.map((r) => r.name),
    ['a', 'b', 'c'],
  )
  await db.close()
})

test('values: bigint beyond 2^53, booleans, undefined, Uint8Array', async (t) => {
  const db = open()
  await db.exec('CREATE TABLE v(a, b, c, d)')
  const big = 2n ** 62n + 7n
  await db.run('INSERT INTO v VALUES (?, ?, ?, ?)', [big, true, undefined, new Uint8Array([9, 8, 7])])
  const row = await db.get<{ a: bigint; b: number; c: null; d: Buffer }>('SELECT * FROM v')
  t.is(row!.a, big)
  t.is(row!.b, 1)
  t.is(row!.c, null)
  t.deepEqual(row!.d, Buffer.from([9, 8, 7]))
  t.is(typeof (await db.get<{ n: number }>('SELECT 2 AS n'))!.n, 'number')
  const r = await db.run('INSERT INTO v(a) VALUES (1)')
  t.is(typeof r.lastInsertRowid, 'number')
  await db.close()
})

test('iterate fetches in batches and can stop early', async (t) => {
  const db = open({ iterateBatchSize: 7 })
  await db.exec('CREATE TABLE n(i INTEGER)')
  await db.transaction(async (tx) => {
    for (let i = 0; i < 100; i++) await tx.run('INSERT INTO n VALUES (?)', [i])
  })
  let sum = 0
  for await (const row of db.iterate<{ i: number }>('SELECT i FROM n ORDER BY i')) sum += row.i
  t.is(sum, 4950)
  const firstFive: number[] = []
  for await (const row of db.iterate<{ i: number }>('SELECT i FROM n ORDER BY i')) {
    firstFive.push(row.i)
    if (firstFive.length === 5) break
  }
  t.deepEqual(firstFive, [0, 1, 2, 3, 4])
  // Other calls work while an iterator is open, and iterators nest.
  const outer = db.iterate<{ i: number }>('SELECT i FROM n WHERE i < 3 ORDER BY i')
  const seen: string[] = []
  for await (const o of outer) {
    t.is((await db.get<{ c: number }>('SELECT count(*) AS c FROM n'))!.c, 100)
    for await (const inner of db.iterate<{ i: number }>('SELECT i FROM n WHERE i < 2 ORDER BY i')) seen.push(`${o.i}.${inner.i}`)
  }
  t.deepEqual(seen, ['0.0', '0.1', '1.0', '1.1', '2.0', '2.1'])
  await db.close()
})

test('prepare gives a reusable statement; finalize makes it unusable', async (t) => {
  const db = open()
  await db.exec('CREATE TABLE p(x)')
  const insert = await db.prepare('INSERT INTO p VALUES (?)')
  for (let i = 0; i < 5; i++) await insert.run([i])
  const select = await db.prepare('SELECT x FROM p WHERE x >= ? ORDER BY x')
  t.deepEqual(select.columns, ['x'])
  t.deepEqual(await select.all([3]), [{ x: 3 }, { x: 4 }])
  t.deepEqual(await select.get([4]), { x: 4 })
  const it: number[] = []
  for await (const r of select.iterate<{ x: number }>([0])) it.push(r.x)
  t.deepEqual(it, [0, 1, 2, 3, 4])
  insert.finalize()
  await t.throwsAsync(() => insert.run([9]), { instanceOf: SqliteS3Error, code: 'ERR_STATEMENT_FINALIZED' })
  await t.throwsAsync(() => db.prepare('SELEC nonsense'), { code: 'SQLITE_ERROR' })
  await db.close()
})

test('transaction commits, rolls back on throw, and calls on db inside it join it', async (t) => {
  const db = open()
  await db.exec('CREATE TABLE a(x)')
  const result = await db.transaction(async (tx) => {
    await tx.run('INSERT INTO a VALUES (1)')
    await db.run('INSERT INTO a VALUES (2)') // db itself, from inside: joins, no deadlock
    return 'ok'
  })
  t.is(result, 'ok')
  await t.throwsAsync(
    db.transaction(async (tx) => {
      await tx.run('INSERT INTO a VALUES (3)')
      throw new Error('boom')
    }),
    { message: 'boom' },
  )
  t.deepEqual(await db.all('SELECT x FROM a ORDER BY x'), [{ x: 1 }, { x: 2 }])
  // A nested transaction is a savepoint: its failure undoes only its own work.
  await db.transaction(async (tx) => {
    await tx.run('INSERT INTO a VALUES (4)')
    await t.throwsAsync(
      db.transaction(async (inner) => {
        await inner.run('INSERT INTO a VALUES (5)')
        throw new Error('inner')
      }),
    )
  })
  t.deepEqual(await db.all('SELECT x FROM a ORDER BY x'), [{ x: 1 }, { x: 2 }, { x: 4 }])
  await db.close()
})

test('calls from outside a transaction wait for it', async (t) => {
  const db = open()
  await db.exec('CREATE TABLE w(x)')
  const order: string[] = []
  let release!: () => void
  const gate = new Promise<void>((r) => (release = r))
  const tx = db.transaction(async (tx) => {
    await tx.run('INSERT INTO w VALUES (1)')
    order.push('tx-insert')
    await gate
    await tx.run('INSERT INTO w VALUES (2)')
    order.push('tx-end')
  })
  await new Promise((r) => setTimeout(r, 20))
  const outside = db.all('SELECT count(*) AS c FROM w').then((r) => {
    order.push('outside')
    return r
  })
  await new Promise((r) => setTimeout(r, 50))
  release()
  await tx
  t.deepEqual(await outside, [{ c: 2 }])
  t.deepEqual(order, ['tx-insert', 'tx-end', 'outside'])
  await db.close()
})

test('SQLite errors carry extended codes', async (t) => {
  const db = open()
  await db.exec('CREATE TABLE u(x UNIQUE NOT NULL)')
  await db.run('INSERT INTO u VALUES (1)')
  await t.throwsAsync(db.run('INSERT INTO u VALUES (1)'), { instanceOf: SqliteS3Error, code: 'SQLITE_CONSTRAINT_UNIQUE' })
  await t.throwsAsync(db.run('INSERT INTO u VALUES (NULL)'), { code: 'SQLITE_CONSTRAINT_NOTNULL' })
  await t.throwsAsync(db.run('SELECT * FROM nope'), { code: 'SQLITE_ERROR', message: /no such table/ })
  await t.throwsAsync(db.run('SELECT ?', []), { code: 'SQLITE_RANGE' })
  await t.throwsAsync(db.run('SELECT :a', { b: 1 }), { code: 'ERR_INVALID_ARGUMENT', message: /missing named parameter "a"/ })
  await t.throwsAsync(db.run('SELECT ?', [{}] as never), { code: 'ERR_INVALID_ARGUMENT' })
  await db.close()
})

test('WAL and exclusive locking are refused with a clear error', async (t) => {
  const db = open()
  await db.exec('CREATE TABLE x(a)')
  await t.throwsAsync(db.exec('PRAGMA journal_mode=WAL'), { code: 'SQLITE_ERROR', message: /journal_mode=WAL is not supported/ })
  await t.throwsAsync(db.exec('PRAGMA locking_mode=EXCLUSIVE'), { code: 'SQLITE_ERROR', message: /locking_mode=EXCLUSIVE/ })
  t.deepEqual(await db.get('PRAGMA journal_mode'), { journal_mode: 'delete' })
  await db.close()
})

test('a closed database fails with a code, and close is idempotent', async (t) => {
  const db = open()
  await db.exec('CREATE TABLE c(a)')
  await db.close()
  await db.close()
  await t.throwsAsync(db.all('SELECT 1'), { instanceOf: SqliteS3Error, code: 'ERR_DATABASE_CLOSED' })
  const stmtDb = open()
  const stmt = await stmtDb.prepare('SELECT 1 AS one')
  await stmtDb.close()
  await t.throwsAsync(stmt.get(), { code: 'ERR_DATABASE_CLOSED' })
})

test('bad options and prefixes are refused before any request', async (t) => {
  t.throws(() => new S3Database(bucket, '', options()), { instanceOf: SqliteS3Error, code: 'ERR_INVALID_ARGUMENT' })
  t.throws(() => new S3Database(bucket, '/abs', options()), { code: 'ERR_INVALID_ARGUMENT', message: /prefix/ })
  t.throws(() => new S3Database(bucket, 'a//b', options()), { code: 'ERR_INVALID_ARGUMENT' })
  t.throws(() => new S3Database(bucket, 'ok', options({ blockSize: 100 })), { code: 'ERR_INVALID_ARGUMENT', message: /blockSize/ })
  t.throws(() => new S3Database(bucket, 'ok', options({ concurrency: 0 })), { code: 'ERR_INVALID_ARGUMENT' })
  await t.throwsAsync(S3Database.gc(bucket, 'ok', { ...options(), onProgress: 5 as never }), {
    code: 'ERR_INVALID_ARGUMENT',
    message: /onProgress/,
  })
})

test('blockSize: unknown before open; a versioned database keeps its own, whatever the options say', async (t) => {
  const prefix = freshPrefix('blocksize')
  const db = new S3Database(bucket, prefix, options({ blockSize: 65536 }))
  t.is(db.blockSize, undefined)
  await db.exec('CREATE TABLE t(x)')
  t.is(db.blockSize, 65536)
  await db.close()
  const other = new S3Database(bucket, prefix, options({ blockSize: 4096 }))
  await other.open()
  t.is(other.blockSize, 65536)
  await other.close()
  const compat = new S3Database(bucket, freshPrefix('blocksize'), options({ layout: 'sqlite-s3vfs' }))
  await compat.open()
  t.is(compat.blockSize, 4096)
  await compat.close()
})

test('two S3Database objects on one prefix in one process do not deadlock', async (t) => {
  const prefix = freshPrefix('two')
  const a = new S3Database(bucket, prefix, options())
  const b = new S3Database(bucket, prefix, options())
  await a.exec('CREATE TABLE k(x)')
  await Promise.all([a.run('INSERT INTO k VALUES (1)'), b.run('INSERT INTO k VALUES (2)')])
  t.deepEqual(await b.all('SELECT x FROM k ORDER BY x'), [{ x: 1 }, { x: 2 }])
  t.deepEqual(await a.all('SELECT x FROM k ORDER BY x'), [{ x: 1 }, { x: 2 }])
  await a.close()
  await b.close()
})

test('a parameter the native side cannot take is a SqliteS3Error with a code, not a bare Error', async (t) => {
  const db = new S3Database(bucket, freshPrefix('toobig'), options())
  const e = await t.throwsAsync(db.get('SELECT ? AS q', [2n ** 70n]))
  t.true(e instanceof SqliteS3Error, `${e?.constructor.name}: ${e?.message}`)
  t.is((e as SqliteS3Error).code, 'SQLITE_TOOBIG')
  const stmt = await db.prepare('SELECT ? AS q')
  const e2 = await t.throwsAsync(stmt.all([-(2n ** 64n)]))
  t.is((e2 as SqliteS3Error).code, 'SQLITE_TOOBIG')
  await db.close()
})

test('interrupt() stops a running statement with SQLITE_INTERRUPT, and the database keeps working', async (t) => {
  const db = new S3Database(bucket, freshPrefix('interrupt'), options())
  await db.exec('CREATE TABLE t(x); INSERT INTO t VALUES (1)')
  db.interrupt() // nothing runs: a no-op
  const long = db.get('WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) SELECT count(*) FROM c WHERE n > 1e12')
  setTimeout(() => db.interrupt(), 200)
  const e = await t.throwsAsync(long)
  t.is((e as SqliteS3Error).code, 'SQLITE_INTERRUPT')
  t.deepEqual(await db.get('SELECT x FROM t'), { x: 1 })
  await db.close()
  db.interrupt() // after close: still a no-op
})
