// Fault scenarios through the JS API: a fault-injecting proxy between the package and the real
// local S3 server, every fault × operation × layout, at default retry and timeout settings.
// After each one: the operation succeeded and its effect is there exactly once, or it failed with
// a coded error and the database is at its previous state; `integrity_check` is ok; and the same
// S3Database object keeps working once the store heals. The table of outcomes and times is
// written to target/fault-scenarios.md (the README's "Failures" table comes from it).
import test from 'ava'
import { mkdirSync, writeFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { type DatabaseOptions, S3Database, SqliteS3Error } from '../index'
import { FaultProxy, type FaultRule, type RequestKind } from './helpers/fault-proxy'
import { freshBucket, freshPrefix, options, series } from './helpers/s3'

type Layout = 'versioned' | 'sqlite-s3vfs'
const LAYOUTS: Layout[] = ['versioned', 'sqlite-s3vfs']
const ROWS = 300

interface Fault {
  name: string
  rule: Omit<FaultRule, 'kind' | 'key' | 'ranged' | 'nth'>
  /** Only where the faulted request has a body to cut (reads). */
  readsOnly?: boolean
}

const FAULTS: Fault[] = [
  { name: '500 once', rule: { action: 'status', status: 500, count: 1 } },
  { name: '503 ×3 (SlowDown burst)', rule: { action: 'status', status: 503, count: 3 } },
  { name: '409 once', rule: { action: 'status', status: 409, count: 1 } },
  { name: 'reset before the request lands', rule: { action: 'reset', when: 'before', count: 1 } },
  { name: 'reset after it lands', rule: { action: 'reset', when: 'after', count: 1 } },
  { name: 'stall (no answer)', rule: { action: 'stall', when: 'before', count: 1 } },
  { name: 'stall after it lands', rule: { action: 'stall', when: 'after', count: 1 } },
  { name: 'truncated body', rule: { action: 'truncate', count: 1 }, readsOnly: true },
  { name: 'body stalls halfway', rule: { action: 'stall-body', count: 1 }, readsOnly: true },
  { name: 'outage (500 until healed)', rule: { action: 'status', status: 500 } },
]

interface Ctx {
  bucket: string
  prefix: string
  layout: Layout
  via: (extra?: DatabaseOptions) => DatabaseOptions
  direct: DatabaseOptions
  /** The prefix an import writes to. */
  imported?: string
}

interface Operation {
  name: string
  /** The request the fault hits: its kind (per layout), and which match (1-based). */
  target: (layout: Layout) => { kind: RequestKind; nth?: number; key?: RegExp } | undefined
  reads?: boolean
  /** Rows the operation adds when it succeeds. */
  adds: number
  /** Opens what the operation needs before the fault is armed. */
  setup?: (c: Ctx) => Promise<S3Database>
  /** The operation; `db` is setup's. Returns the database object that must keep working. */
  run: (c: Ctx, db: S3Database | undefined) => Promise<S3Database>
}

const blockKey = (layout: Layout) => (layout === 'versioned' ? /\/\.b\// : /\/\d{10}$/)

const OPERATIONS: Operation[] = [
  {
    name: 'open',
    target: () => ({ kind: 'LIST' }),
    reads: true,
    adds: 0,
    async run(c) {
      const db = new S3Database(c.bucket, c.prefix, c.via())
      try {
        await db.get('SELECT count(*) AS n FROM t')
      } catch (e) {
        throw Object.assign(e as Error, { db })
      }
      return db
    },
  },
  {
    name: 'point query (cold)',
    target: (layout) => ({ kind: 'GET', key: blockKey(layout) }),
    reads: true,
    adds: 0,
    async setup(c) {
      const db = new S3Database(c.bucket, c.prefix, c.via())
      await db.get('SELECT 1 FROM t WHERE id = 1')
      return db
    },
    async run(_c, db) {
      const row = await db!.get<{ v: Buffer }>('SELECT v FROM t WHERE id = 250')
      if (row?.v.length !== 1000) throw new Error('wrong row')
      return db!
    },
  },
  {
    name: 'commit',
    target: (layout) => (layout === 'versioned' ? { kind: 'PUT', key: blockKey(layout) } : { kind: 'PUT' }),
    adds: 1,
    setup: warmWriter,
    async run(_c, db) {
      await db!.transaction(async (tx) => {
        await tx.run('INSERT INTO t(v) VALUES (randomblob(1000))')
      })
      return db!
    },
  },
  {
    name: 'commit point (root / journal delete)',
    target: (layout) => (layout === 'versioned' ? { kind: 'PUT_INM' } : { kind: 'DELETE' }),
    adds: 1,
    setup: warmWriter,
    async run(_c, db) {
      await db!.run('INSERT INTO t(v) VALUES (randomblob(1000))')
      return db!
    },
  },
  {
    name: 'bulk commit (2 MB)',
    target: () => ({ kind: 'PUT', nth: 5 }),
    adds: 2000,
    setup: warmWriter,
    async run(_c, db) {
      await db!.run(`INSERT INTO t(v) SELECT randomblob(1000) FROM ${series(2000)}`)
      return db!
    },
  },
  {
    name: 'serialize',
    target: (layout) => ({ kind: 'GET', nth: 3, key: blockKey(layout) }),
    reads: true,
    adds: 0,
    async setup(c) {
      const db = new S3Database(c.bucket, c.prefix, c.via())
      await db.get('PRAGMA page_count')
      return db
    },
    async run(c, db) {
      const chunks: Buffer[] = []
      for await (const chunk of db!.serialize()) chunks.push(chunk as Buffer)
      const got = Buffer.concat(chunks)
      const want: Buffer[] = []
      const direct = new S3Database(c.bucket, c.prefix, c.direct)
      for await (const chunk of direct.serialize()) want.push(chunk as Buffer)
      await direct.close()
      if (!got.equals(Buffer.concat(want))) throw new Error('the export differs from the database')
      return db!
    },
  },
  {
    name: 'deserialize (import)',
    target: () => ({ kind: 'PUT', nth: 3 }),
    adds: 0,
    async run(c) {
      const source = new S3Database(c.bucket, c.prefix, c.direct)
      const chunks: Buffer[] = []
      for await (const chunk of source.serialize()) chunks.push(chunk as Buffer)
      await source.close()
      const target = freshPrefix('import')
      c.imported = target
      await S3Database.deserialize(c.bucket, target, chunks, c.via({ layout: c.layout, blockSize: 4096 }))
      const db = new S3Database(c.bucket, target, c.via())
      const n = await db.get<{ n: number }>('SELECT count(*) AS n FROM t')
      if (n?.n !== ROWS) throw new Error(`imported ${n?.n} rows`)
      return db
    },
  },
]

/** A connection that has written once (in the versioned layout, its store's conditional-write
 *  probe is done, so the fault hits the commit's own requests). */
async function warmWriter(c: Ctx): Promise<S3Database> {
  const db = new S3Database(c.bucket, c.prefix, c.via())
  await db.run('INSERT INTO t(v) VALUES (randomblob(1000))')
  return db
}

interface Row {
  layout: Layout
  operation: string
  fault: string
  outcome: string
  ms: number
  retries: number
}
const table: Row[] = []

let bucket = ''
test.before(async () => {
  bucket = await freshBucket('faults')
})

test.after.always(() => {
  if (table.length === 0) return
  const ops = OPERATIONS.map((o) => o.name)
  // One row per operation × fault, one column per layout: "ok 2.10 s (1 retry)".
  const cell = (r: Row | undefined) =>
    r === undefined
      ? '—'
      : `${r.outcome} · ${(r.ms / 1000).toFixed(2)} s` +
        (Number.isNaN(r.retries) ? '' : ` · ${r.retries} retr${r.retries === 1 ? 'y' : 'ies'}`)
  const lines = ['| operation | fault | versioned | sqlite-s3vfs |', '|---|---|---|---|']
  for (const op of ops) {
    for (const f of FAULTS) {
      const at = (layout: Layout) => table.find((r) => r.operation === op && r.fault === f.name && r.layout === layout)
      if (!at('versioned') && !at('sqlite-s3vfs')) continue
      lines.push(`| ${op} | ${f.name} | ${cell(at('versioned'))} | ${cell(at('sqlite-s3vfs'))} |`)
    }
  }
  const dir = resolve(__dirname, '..', 'target')
  mkdirSync(dir, { recursive: true })
  writeFileSync(resolve(dir, 'fault-scenarios.md'), lines.join('\n') + '\n')
})

async function countDirect(c: Ctx): Promise<number> {
  const db = new S3Database(c.bucket, c.prefix, c.direct)
  try {
    return await count(db)
  } finally {
    await db.close()
  }
}

async function count(db: S3Database): Promise<number> {
  return (await db.get<{ n: number }>('SELECT count(*) AS n FROM t'))!.n
}

for (const op of OPERATIONS) {
  for (const fault of FAULTS) {
    if (fault.readsOnly && !op.reads) continue
    for (const layout of LAYOUTS) {
      test.serial(`${op.name} · ${fault.name} · ${layout}`, async (t) => {
        const proxy = await FaultProxy.start()
        t.teardown(() => proxy.stop())
        const prefix = freshPrefix('fault')
        const c: Ctx = {
          bucket,
          prefix,
          layout,
          via: (extra = {}) => options({ ...extra, readAhead: 0, s3: { endpoint: proxy.url, ...extra.s3 } }),
          direct: options({ readAhead: 0 }),
        }
        const seed = new S3Database(bucket, prefix, options({ layout, blockSize: 4096 }))
        await seed.exec(`PRAGMA page_size=4096; CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
                         INSERT INTO t(v) SELECT randomblob(1000) FROM ${series(ROWS)}`)
        await seed.close()

        let db = op.setup ? await op.setup(c) : undefined
        const before = await countDirect(c)
        const target = op.target(layout)!
        proxy.add({ ...fault.rule, kind: target.kind, key: target.key, nth: target.nth ?? 1 })
        const statsBefore = db?.stats().retries ?? 0
        const started = Date.now()
        let outcome = 'ok'
        let error: SqliteS3Error | undefined
        try {
          db = await op.run(c, db)
        } catch (e) {
          error = e as SqliteS3Error
          db = db ?? (e as { db?: S3Database }).db
          outcome = `${error.code ?? 'no code'} (${error.kind ?? '?'})`
        }
        const ms = Date.now() - started
        const fired = proxy.hits() > 0
        t.true(fired, 'the fault never reached a request: the scenario tests nothing')
        if (error) {
          t.true(error instanceof SqliteS3Error, `not a coded error: ${String(error)}`)
          t.regex(error.code, /^[A-Za-z0-9_]+$/)
        }
        // Heal; settle a commit of unknown outcome before judging the state.
        proxy.clear()
        let added = error ? 0 : op.adds
        if (error?.code === 'ERR_COMMIT_UNKNOWN' && db) {
          const verdict = await db.settle()
          outcome += ` → settle: ${verdict}`
          if (verdict === 'committed') added = op.adds
        }
        const retries = (db?.stats().retries ?? 0) - statsBefore
        // An import's requests are its own, not the source database object's.
        const imported = op.name.startsWith('deserialize')
        table.push({ layout, operation: op.name, fault: fault.name, outcome, ms, retries: imported ? NaN : retries })
        t.log(`${outcome} in ${ms} ms, ${retries} retries`)

        // The same object works once the store heals, and sees exactly the expected rows.
        if (db && op.name !== 'deserialize (import)') {
          t.is(await count(db), before + added)
          await db.run('INSERT INTO t(v) VALUES (randomblob(1000))')
          added += 1
          t.deepEqual(await db.get('PRAGMA integrity_check'), { integrity_check: 'ok' })
        }
        if (db) await db.close()
        const fresh = new S3Database(bucket, prefix, c.direct)
        t.is(await count(fresh), before + added)
        t.deepEqual(await fresh.get('PRAGMA integrity_check'), { integrity_check: 'ok' })
        await fresh.close()
        if (c.imported) {
          // An import that failed left nothing, or (its outcome unknown, then settled) all of it.
          const target = new S3Database(bucket, c.imported, c.direct)
          const tables = await target.all('SELECT name FROM sqlite_master')
          if (error && tables.length === 0) t.pass()
          else t.is(await count(target), await countDirect(c))
          await target.close()
        }
      })
    }
  }
}
