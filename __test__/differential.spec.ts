// Randomized differential test: random sequences of operations run against this package and,
// side by side, against better-sqlite3 on a local file (the oracle), under random configurations
// (both layouts, odd block sizes, page sizes 512..65536, tiny to large caches, read-ahead and
// cacheDir on and off). After every step the rows seen through each connection must equal the
// oracle's; at the end `integrity_check` must be ok. fast-check generates, shrinks a failure to
// a short sequence and prints its seed and path.
//
// Replay a failure with the three values it prints (seed, path, and the commands' replayPath):
//   DIFF_SEED=<seed> DIFF_PATH=<path> DIFF_REPLAY=<replayPath> npm test -- -m 'differential*'
// Longer runs: DIFF_MINUTES=60 (npm run test:long sets it), DIFF_RUNS=<n>.
import test from 'ava'
import Database from 'better-sqlite3'
import fc from 'fast-check'
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type DatabaseOptions, S3Database } from '../index'
import { freshBucket, freshPrefix, options } from './helpers/s3'
import { bytes, type Write, writeSql } from './helpers/workload'

const minutes = Number(process.env.DIFF_MINUTES ?? 2.5)
const seed = process.env.DIFF_SEED === undefined ? undefined : Number(process.env.DIFF_SEED)
const path = process.env.DIFF_PATH

let bucket = ''
const dir = mkdtempSync(join(tmpdir(), 's3vfs-diff-'))
test.before(async () => {
  bucket = await freshBucket('differential')
})
test.after.always(async () => {
  // Best effort: a block read ahead may still be landing in a cacheDir as the last one closes.
  for (let attempt = 0; attempt < 10; attempt++) {
    try {
      return rmSync(dir, { recursive: true, force: true })
    } catch {
      await new Promise((res) => setTimeout(res, 200))
    }
  }
})

interface Config {
  layout: 'versioned' | 'sqlite-s3vfs'
  blockSize: number
  pageSize: number
  cacheSize: number
  readAhead: number
  cacheDir: boolean
  connections: number
  memoryLimit: number
  /** Per connection (versioned layout): compressed, not, or as the database records. */
  compression: ('none' | 'zstd' | undefined)[]
  /**
   * Versioned layout: every connection encrypts, with one key, or with keys from a provider —
   * then connection c seals under key id `k${c % 2}`, so writers rotate keys back and forth and
   * every reader fetches the other's key when it meets an object sealed under it.
   */
  encrypted: 'no' | 'key' | 'provider'
}

const configArb: fc.Arbitrary<Config> = fc.record({
  layout: fc.constantFrom('versioned' as const, 'sqlite-s3vfs' as const),
  blockSize: fc.oneof(fc.constantFrom(512, 1000, 4095, 4096, 4097, 8192, 65536, 1 << 20), fc.integer({ min: 512, max: 200_000 })),
  pageSize: fc.constantFrom(512, 1024, 4096, 8192, 65536),
  // Tiny caches (a few blocks) put every read and write under eviction pressure.
  cacheSize: fc.oneof(fc.constantFrom(0, 12288, 64 << 10, 64 << 20), fc.integer({ min: 0, max: 1 << 20 })),
  readAhead: fc.constantFrom(0, 2, 32),
  cacheDir: fc.boolean(),
  connections: fc.integer({ min: 1, max: 3 }),
  // Small limits move buffered blocks out of memory (uploaded early, or to a temp file) as soon
  // as SQLite's page cache spills (CacheSizeCommand).
  memoryLimit: fc.oneof(fc.constantFrom(0, 4096, 64 << 10, 64 << 20), fc.integer({ min: 0, max: 1 << 20 })),
  // Writers that disagree leave a database of plain and compressed blocks side by side.
  compression: fc.array(fc.constantFrom(undefined, 'none' as const, 'zstd' as const), { minLength: 3, maxLength: 3 }),
  encrypted: fc.constantFrom('no' as const, 'key' as const, 'provider' as const),
})

const DIFF_KEY = Buffer.alloc(32, 7)
const DIFF_KEYS: Record<string, Buffer> = { k0: Buffer.alloc(32, 8), k1: Buffer.alloc(32, 9) }

/** The encryption option of connection `c`. */
function encryptionOf(config: Config, c: number): DatabaseOptions['encryption'] {
  if (config.layout !== 'versioned' || config.encrypted === 'no') return undefined
  if (config.encrypted === 'key') return { key: DIFF_KEY }
  return { keyProvider: async (id) => DIFF_KEYS[id] ?? null, keyId: `k${c % 2}` }
}

/** What the oracle holds, and what the run has seen. */
interface Model {
  oracle: Database.Database
  layout: Config['layout']
  /** Rows of the oracle after each published version (versioned layout), for time travel. */
  versions: Map<number, string>
}

interface Real {
  conns: S3Database[]
  prefix: string
  options: DatabaseOptions
  /** The options of connection `c` (its own compression). */
  connectionOptions: (c: number) => DatabaseOptions
}

const ROWS = 'SELECT id, k, length(v) AS n, hex(substr(v, 1, 6)) AS a, hex(substr(v, -6)) AS z FROM t ORDER BY id'

function oracleRows(m: Model): unknown[] {
  return m.oracle.prepare(ROWS).all()
}

const writeArb: fc.Arbitrary<Write> = fc.oneof(
  fc.record({
    op: fc.constant('insert' as const),
    count: fc.integer({ min: 1, max: 40 }),
    size: fc.integer({ min: 0, max: 5000 }),
    salt: fc.nat(255),
  }),
  fc.record({
    op: fc.constant('update' as const),
    mod: fc.integer({ min: 1, max: 7 }),
    rem: fc.nat(6),
    size: fc.integer({ min: 0, max: 9000 }),
    salt: fc.nat(255),
  }),
  fc.record({ op: fc.constant('delete' as const), mod: fc.integer({ min: 2, max: 9 }), rem: fc.nat(8) }),
)

function applyOracle(m: Model, w: Write): void {
  const [sql, params] = writeSql(w)
  m.oracle.prepare(sql).run(...params)
}

async function check(m: Model, r: Real, label: string): Promise<void> {
  steps++
  const want = oracleRows(m)
  for (let c = 0; c < r.conns.length; c++) {
    const got = await r.conns[c].all(ROWS)
    if (JSON.stringify(got) !== JSON.stringify(want)) {
      throw new Error(`after ${label}: connection ${c} sees ${got.length} rows, the oracle ${want.length}\n` + diff(got, want))
    }
  }
}

function diff(got: unknown[], want: unknown[]): string {
  for (let i = 0; i < Math.max(got.length, want.length); i++) {
    if (JSON.stringify(got[i]) !== JSON.stringify(want[i]))
      return `first difference at row ${i}: ${JSON.stringify(got[i])} vs ${JSON.stringify(want[i])}`
  }
  return ''
}

function recordVersion(m: Model, r: Real, c: number): void {
  if (m.layout === 'versioned') m.versions.set(r.conns[c].version, JSON.stringify(oracleRows(m)))
}

const connArb = fc.nat(2)
const pick = (r: Real, c: number) => c % r.conns.length

class WriteCommand implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly conn: number,
    readonly w: Write,
  ) {}
  check = () => true
  async run(m: Model, r: Real) {
    const c = pick(r, this.conn)
    const [sql, params] = writeSql(this.w)
    await r.conns[c].run(sql, params as never)
    applyOracle(m, this.w)
    recordVersion(m, r, c)
    await check(m, r, this.toString())
  }
  toString = () => `write(${this.conn}, ${JSON.stringify(this.w)})`
}

/** A transaction of writes, with nested transactions run concurrently inside it (some fail), committed or rolled back. */
class TransactionCommand implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly conn: number,
    readonly writes: Write[],
    readonly nested: { w: Write; fail: boolean }[],
    readonly commit: boolean,
  ) {}
  check = () => true
  async run(m: Model, r: Real) {
    const c = pick(r, this.conn)
    const db = r.conns[c]
    await db
      .transaction(async (tx) => {
        for (const w of this.writes) {
          const [sql, params] = writeSql(w)
          await tx.run(sql, params as never)
        }
        await Promise.all(
          this.nested.map((n) =>
            db
              .transaction(async (inner) => {
                const [sql, params] = writeSql(n.w)
                await inner.run(sql, params as never)
                if (n.fail) throw new Error('nested rollback')
              })
              .catch(() => undefined),
          ),
        )
        if (!this.commit) throw new Error('rollback')
      })
      .catch((e: Error) => {
        if (e.message !== 'rollback') throw e
      })
    if (this.commit) {
      m.oracle.transaction(() => {
        for (const w of this.writes) applyOracle(m, w)
        // Nested transactions run one after another, in the order they were started.
        for (const n of this.nested) if (!n.fail) applyOracle(m, n.w)
      })()
      recordVersion(m, r, c)
    }
    await check(m, r, this.toString())
  }
  toString = () =>
    `transaction(${this.conn}, ${JSON.stringify(this.writes)}, nested ${JSON.stringify(this.nested)}, ${this.commit ? 'commit' : 'rollback'})`
}

/** An iterator read part way, then finished, broken off with return(), or dropped (and collected). */
class IterateCommand implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly conn: number,
    readonly take: number,
    readonly end: 'finish' | 'return' | 'drop',
  ) {}
  check = () => true
  async run(m: Model, r: Real) {
    const c = pick(r, this.conn)
    const want = oracleRows(m)
    const got: unknown[] = []
    let it: AsyncIterableIterator<unknown> | null = r.conns[c].iterate(ROWS)
    for (let i = 0; i < (this.end === 'finish' ? Infinity : this.take); i++) {
      const next = await it.next()
      if (next.done) break
      got.push(next.value)
    }
    if (this.end === 'return') await it.return!()
    it = null
    if (this.end === 'drop') await collectGarbage()
    const expected = this.end === 'finish' ? want : want.slice(0, this.take)
    if (JSON.stringify(got) !== JSON.stringify(expected)) throw new Error(`iterate: ${diff(got, expected)}`)
    await check(m, r, this.toString())
  }
  toString = () => `iterate(${this.conn}, ${this.take}, ${this.end})`
}

async function collectGarbage() {
  const gc = (globalThis as { gc?: () => void }).gc
  if (!gc) throw new Error('run with --expose-gc (the ava config passes it)')
  for (let i = 0; i < 2; i++) {
    gc()
    await new Promise((res) => setTimeout(res, 10))
  }
}

/** serialize() must be the oracle's database; then optionally deserialized back over the prefix. */
class SerializeCommand implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly conn: number,
    readonly reimport: boolean,
  ) {}
  check = () => true
  async run(m: Model, r: Real) {
    const c = pick(r, this.conn)
    const chunks: Buffer[] = []
    for await (const chunk of r.conns[c].serialize()) chunks.push(chunk as Buffer)
    const file = join(dir, `export-${process.pid}-${Math.random().toString(36).slice(2)}.sqlite`)
    writeFileSync(file, Buffer.concat(chunks))
    const exported = new Database(file, { readonly: true })
    try {
      const integrity = exported.prepare('PRAGMA integrity_check').get()
      if (JSON.stringify(integrity) !== JSON.stringify({ integrity_check: 'ok' }))
        throw new Error(`serialize: ${JSON.stringify(integrity)}`)
      const got = exported.prepare(ROWS).all()
      if (JSON.stringify(got) !== JSON.stringify(oracleRows(m))) throw new Error(`serialize: ${diff(got, oracleRows(m))}`)
    } finally {
      exported.close()
    }
    if (this.reimport) {
      // Chunks of one size, whatever the block size.
      const data = Buffer.concat(chunks)
      const parts: Buffer[] = []
      for (let i = 0; i < data.length; i += 7000) parts.push(data.subarray(i, i + 7000))
      await S3Database.deserialize(bucket, r.prefix, parts, { ...r.options, overwrite: true })
      // The import is a new version: a read of the database pins it before it is recorded.
      await r.conns[c].get('SELECT count(*) FROM t')
      recordVersion(m, r, c)
    }
    rmSync(file, { force: true })
    await check(m, r, this.toString())
  }
  toString = () => `serialize(${this.conn}, ${this.reimport ? 'reimport' : 'export'})`
}

const CHILD = join(__dirname, 'helpers', 'regression-child.ts')

/** Options as JSON can carry them: a key provider becomes the keys it gives (the child makes a
 *  provider of them again), and the child seals under `k1`. */
function childOptions(o: DatabaseOptions): DatabaseOptions {
  if (!o.encryption?.keyProvider) return o
  return { ...o, encryption: { keyId: 'k1', providerKeys: DIFF_KEYS } as DatabaseOptions['encryption'] }
}

/** A write from another process (a child that opens the database, writes once and exits). */
class ChildWriteCommand implements fc.AsyncCommand<Model, Real> {
  constructor(readonly w: Write) {}
  check = () => true
  async run(m: Model, r: Real) {
    const out = await new Promise<string>((resolve, reject) => {
      execFile(
        process.execPath,
        ['--import', 'tsx', CHILD, 'run', bucket, r.prefix, JSON.stringify({ options: childOptions(r.options), write: this.w })],
        (e, stdout, stderr) => (e ? reject(new Error(`child: ${stderr}${stdout}`)) : resolve(stdout)),
      )
    })
    const { version } = JSON.parse(out.trim().split('\n').pop()!) as { version: number }
    childWrites++
    applyOracle(m, this.w)
    if (m.layout === 'versioned') m.versions.set(version, JSON.stringify(oracleRows(m)))
    await check(m, r, this.toString())
  }
  toString = () => `childWrite(${JSON.stringify(this.w)})`
}

class ReopenCommand implements fc.AsyncCommand<Model, Real> {
  constructor(readonly conn: number) {}
  check = () => true
  async run(m: Model, r: Real) {
    const c = pick(r, this.conn)
    await r.conns[c].close()
    r.conns[c] = new S3Database(bucket, r.prefix, r.connectionOptions(c))
    await check(m, r, this.toString())
  }
  toString = () => `reopen(${this.conn})`
}

class CacheSizeCommand implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly conn: number,
    readonly pages: number,
  ) {}
  check = () => true
  async run(m: Model, r: Real) {
    await r.conns[pick(r, this.conn)].exec(`PRAGMA cache_size = ${this.pages}`)
    await check(m, r, this.toString())
  }
  toString = () => `cache_size(${this.conn}, ${this.pages})`
}

/** Versioned layout: GC with no grace keeps the head whole; every kept version still opens. */
class GcCommand implements fc.AsyncCommand<Model, Real> {
  constructor(readonly keep: number) {}
  check = (m: Readonly<Model>) => m.layout === 'versioned'
  async run(m: Model, r: Real) {
    await S3Database.gc(bucket, r.prefix, { ...r.options, keepVersions: this.keep, gracePeriodMs: 0, unsafeShortGracePeriod: true })
    const head = Math.max(0, ...m.versions.keys())
    for (const v of [...m.versions.keys()]) if (v <= head - this.keep) m.versions.delete(v)
    await check(m, r, this.toString())
  }
  toString = () => `gc(keep ${this.keep})`
}

/** Versioned layout: an older version opens read-only with the rows it had. */
class TimeTravelCommand implements fc.AsyncCommand<Model, Real> {
  constructor(readonly pick: number) {}
  check = (m: Readonly<Model>) => m.layout === 'versioned' && m.versions.size > 0
  async run(m: Model, r: Real) {
    const versions = [...m.versions.keys()].sort((a, b) => a - b)
    const v = versions[this.pick % versions.length]
    const old = new S3Database(bucket, r.prefix, { ...r.options, version: v })
    try {
      const got = JSON.stringify(await old.all(ROWS))
      if (got !== m.versions.get(v)) throw new Error(`time travel to version ${v}: rows differ`)
    } finally {
      await old.close()
    }
  }
  toString = () => `timeTravel(${this.pick})`
}

const commandsArb = fc.commands(
  [
    fc.tuple(connArb, writeArb).map(([c, w]) => new WriteCommand(c, w)),
    writeArb.map((w) => new ChildWriteCommand(w)),
    fc
      .tuple(
        connArb,
        fc.array(writeArb, { maxLength: 4 }),
        fc.array(fc.record({ w: writeArb, fail: fc.boolean() }), { maxLength: 3 }),
        fc.boolean(),
      )
      .map(([c, ws, nested, commit]) => new TransactionCommand(c, ws, nested, commit)),
    fc
      .tuple(connArb, fc.integer({ min: 0, max: 30 }), fc.constantFrom('finish' as const, 'return' as const, 'drop' as const))
      .map(([c, n, e]) => new IterateCommand(c, n, e)),
    fc.tuple(connArb, fc.boolean()).map(([c, re]) => new SerializeCommand(c, re)),
    connArb.map((c) => new ReopenCommand(c)),
    fc.tuple(connArb, fc.constantFrom(1, 2, 10, 2000)).map(([c, p]) => new CacheSizeCommand(c, p)),
    fc.integer({ min: 1, max: 3 }).map((k) => new GcCommand(k)),
    fc.nat(100).map((p) => new TimeTravelCommand(p)),
  ],
  { maxCommands: 40, size: 'medium', replayPath: process.env.DIFF_REPLAY },
)

let runs = 0
let steps = 0
let childWrites = 0

test('differential: random operation sequences match better-sqlite3 under random configurations', async (t) => {
  t.timeout((minutes + 5) * 60_000)
  const started = Date.now()
  await fc.assert(
    fc.asyncProperty(configArb, commandsArb, async (config, cmds) => {
      runs++
      const prefix = freshPrefix('diff')
      const cacheDir = config.cacheDir && config.layout === 'versioned' ? mkdtempSync(join(dir, 'cache-')) : undefined
      const o = options({
        layout: config.layout,
        blockSize: config.blockSize,
        cacheSize: config.cacheSize,
        readAhead: config.readAhead,
        cacheDir,
        memoryLimit: config.memoryLimit,
        compression: config.layout === 'versioned' ? config.compression[0] : undefined,
        encryption: encryptionOf(config, 0),
      })
      const withCompression = (c: number) =>
        config.layout === 'versioned' ? { ...o, compression: config.compression[c % 3], encryption: encryptionOf(config, c) } : o
      const oracle = new Database(join(dir, `${prefix.replace(/\W/g, '_')}.sqlite`))
      const schema = `PRAGMA page_size = ${config.pageSize}; CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, v BLOB); CREATE INDEX t_k ON t(k)`
      oracle.exec(schema)
      const first = new S3Database(bucket, prefix, o)
      await first.exec(schema)
      const conns = [first]
      for (let i = 1; i < config.connections; i++) conns.push(new S3Database(bucket, prefix, withCompression(i)))
      const model: Model = { oracle, layout: config.layout, versions: new Map() }
      const real: Real = { conns, prefix, options: o, connectionOptions: withCompression }
      try {
        await fc.asyncModelRun(() => ({ model, real }), cmds)
        for (const [c, db] of real.conns.entries()) {
          const ok = await db.get('PRAGMA integrity_check')
          if (JSON.stringify(ok) !== JSON.stringify({ integrity_check: 'ok' })) throw new Error(`connection ${c}: ${JSON.stringify(ok)}`)
        }
      } catch (e) {
        throw new Error(`${(e as Error).message}\nconfig: ${JSON.stringify(config)}`)
      } finally {
        await Promise.all(real.conns.map((c) => c.close().catch(() => undefined)))
        oracle.close()
        // (cacheDir is removed with the test's folder: blocks read ahead may still be landing.)
      }
    }),
    {
      seed,
      path,
      numRuns: Number(process.env.DIFF_RUNS ?? 1_000_000),
      interruptAfterTimeLimit: minutes * 60_000,
      markInterruptAsFailure: false,
    },
  )
  t.log(
    `${runs} sequences, ${steps} operations (${childWrites} writes from child processes) in ${Math.round((Date.now() - started) / 1000)} s (seed ${seed ?? 'random'})`,
  )
  t.true(runs > 0)
})
