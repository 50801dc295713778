// The public API of sqlite-s3vfs: a typed, Promise-based wrapper over the native addon.
// Every call goes to the database's own connection thread; nothing here blocks the event loop.

import { AsyncLocalStorage } from 'node:async_hooks'
import { Readable, Writable } from 'node:stream'

// The napi-generated loader (never hand-edited) picks the binary for this platform: a file next to
// this one (a build from source), else the platform package npm installed as an optional
// dependency (`sqlite-s3vfs-linux-x64-gnu`, ...).
const native: typeof import('../binding') = loadNative()

function loadNative(): typeof import('../binding') {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('./binding.js')
  } catch (e) {
    const err = new Error(nativeLoadMessage(e), { cause: e }) as Error & { code: string }
    err.code = 'ERR_NATIVE_BINDING'
    throw err
  }
}

/** Says which platform had no binary, why (every attempt's reason), and what to do. */
function nativeLoadMessage(e: unknown): string {
  let libc = ''
  if (process.platform === 'linux') {
    const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header
    libc = header?.glibcVersionRuntime ? ` (glibc ${header.glibcVersionRuntime})` : ' (musl)'
  }
  const reasons: string[] = []
  for (let c: unknown = e; c instanceof Error && reasons.length < 8; c = c.cause) reasons.push(c.message.split('\n')[0])
  return (
    `sqlite-s3vfs could not load its native binary for ${process.platform}-${process.arch}${libc}. ` +
    'Prebuilt binaries exist for Linux x64/arm64 (glibc >= 2.17, or musl), macOS x64/arm64 and Windows x64; ' +
    'npm installs the one for this machine as an optional dependency, so reinstall here without ' +
    '--omit=optional / --no-optional (a node_modules copied from another OS or CPU lacks it): ' +
    'rm -rf node_modules package-lock.json && npm install. Under Deno, run with --allow-ffi. ' +
    'Elsewhere, build from source (README, Contributing). Reasons: ' +
    reasons.join('; ')
  )
}

/** Where and how to reach S3. Anything unset defaults the way the AWS SDKs do. */
export interface S3Options {
  /** Default: `AWS_REGION`, `AWS_DEFAULT_REGION`, the shared config; else `us-east-1`. */
  region?: string
  /** An S3-compatible endpoint. Default: `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, else AWS. */
  endpoint?: string
  /** Path-style addressing. Default: true when an endpoint is set, else false. */
  forcePathStyle?: boolean
  /** Default: the standard chain (env, shared profile, web identity, container, instance). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string }
  /** Same as `retry.maxAttempts` (kept for compatibility; `retry.maxAttempts` wins). */
  maxAttempts?: number
  /** How transient failures are retried. See "Failures" in the README. */
  retry?: RetryOptions
  /** How long one attempt may take before it is abandoned and retried. */
  timeouts?: TimeoutOptions
  /**
   * S3 server-side encryption, sent on every PUT of every object this package writes (blocks,
   * roots, map segments, journals, imports, GC's clock probe, the conditional-write probe), for
   * buckets whose policy refuses a PUT without it. Not needed for a bucket's default encryption.
   */
  serverSideEncryption?: 'AES256' | 'aws:kms' | 'aws:kms:dsse'
  /** The KMS key for `serverSideEncryption: 'aws:kms'` (default: the account's `aws/s3` key). */
  sseKmsKeyId?: string
  /** S3 Bucket Keys for SSE-KMS (fewer KMS requests). */
  bucketKeyEnabled?: boolean
  /**
   * SSE-C: a 32-byte AES-256 key S3 encrypts the objects with and does not keep. Sent (with its
   * MD5) on every PUT, GET and HEAD; objects written with it can only be read with it. Never
   * logged or put in an error message. Not with `serverSideEncryption`.
   */
  sseCustomerKey?: Uint8Array
}

/**
 * Retries of transient failures (5xx, timeouts, resets, a conditional request that raced another)
 * with jittered exponential backoff. A throttling answer (503 SlowDown, 429) also pauses every
 * request of the database for a while (it asks the client to slow down). Permanent failures (403,
 * a missing bucket, 400) are never retried.
 */
export interface RetryOptions {
  /** Attempts per request, including the first. Default 6. */
  maxAttempts?: number
  /** First backoff after a transient failure, doubling per attempt. Default 100 ms. */
  baseDelayMs?: number
  /** First backoff after a throttling answer, doubling per attempt. Default 500 ms. */
  throttleDelayMs?: number
  /** Longest single backoff. Default 5000 ms. */
  maxDelayMs?: number
  /** A request gives up after this long, attempts and backoffs included. Default 30000 ms. */
  totalMs?: number
}

/** Per-attempt limits: a stalled request is cut short and sent again instead of hanging. */
export interface TimeoutOptions {
  /** Establishing a connection. Default 3100 ms. */
  connectMs?: number
  /**
   * From sending a request to the first byte of its answer (a PUT also gets its body's size at
   * `minUploadRate`). Default 2000 ms (S3's guidance for retrying latency-sensitive GETs).
   */
  firstByteMs?: number
  /** The longest pause while an answer's body is flowing. Default 2000 ms. */
  bodyStallMs?: number
  /** Bytes per second an upload (or a ranged read) is given on top of `firstByteMs`. Default 1 MiB/s. */
  minUploadRate?: number
  /** A LIST of a full page, whose whole answer (up to 1,000 keys) is read before it counts as answered
   *  (a short LIST, like the one that opens a database, gets `firstByteMs`). Default 5000 ms. */
  listMs?: number
  /**
   * A write to a key that is written again and again (the `sqlite-s3vfs` layout's blocks and
   * journal) and any DELETE: such a request is not abandoned early, since one the server still
   * applies could land after a newer write of the same key. Default 15000 ms.
   */
  rewriteMs?: number
}

export interface DatabaseOptions {
  s3?: S3Options
  /**
   * Bytes per S3 object (any value >= 512; need not be a multiple of the page size). Default: 256 KiB
   * for a new `versioned` database (see the benchmark; an existing one keeps its own), 4096 for the
   * `sqlite-s3vfs` layout (the Python library's default; that layout does not record it).
   */
  blockSize?: number
  /** Bytes of blocks kept in memory. Default 64 MiB. */
  cacheSize?: number
  /** Parallel S3 requests for uploads and reads. Default 32. */
  concurrency?: number
  /**
   * Blocks prefetched at most ahead of a sequential reader (a scan, an export): the window starts
   * at 2 after three consecutive blocks and doubles per block read. 0 turns read-ahead off.
   * Random lookups never prefetch. Default 32.
   */
  readAhead?: number
  /**
   * Versioned layout: a local directory that keeps blocks across processes (a Lambda's `/tmp`),
   * so a cold start reads them from disk. Shared safely by several processes; deleting it any time
   * only costs misses. Blocks read from it are checked against the block map's CRC-32C.
   */
  cacheDir?: string
  /** Bytes `cacheDir` may hold before its least recently used blocks are deleted. Default 1 GiB. */
  cacheDirSize?: number
  /** Rows fetched per round trip by `iterate()`. Default 256. */
  iterateBatchSize?: number
  /**
   * The storage layout of a *new* database (an existing prefix opens in the layout it holds):
   * `'versioned'` (default: atomic commits, snapshot reads, safe concurrent writers) or
   * `'sqlite-s3vfs'` (the Python library's format, readable and writable by it).
   */
  layout?: 'versioned' | 'sqlite-s3vfs'
  /** Versioned layout: open read-only at this older version (time travel). */
  version?: number
  /**
   * Versioned layout: for this many milliseconds after a freshness check, reads skip the next one
   * (one GET per read transaction otherwise). Writes always check. Default 0.
   */
  maxStaleness?: number
  /**
   * Versioned layout: skip the check that the store honours `If-None-Match` (needed to detect
   * concurrent writers); only for stores without conditional writes and a single writer.
   */
  singleWriter?: boolean
  /**
   * `sqlite-s3vfs` layout: how long (ms) another process's journal must stay unchanged, with no
   * database block written meanwhile, before this connection takes its writer for dead and rolls
   * it back. Raise it when writers can stall longer (one block upload cut short by a network
   * stall, say). Default 60000.
   */
  hotJournalMs?: number
  /**
   * Bytes of a transaction's buffered writes (its changed blocks and rollback journal) kept in
   * memory. Past it the oldest leave memory: in the versioned layout, blocks are uploaded early
   * under keys unique to the commit attempt (a commit that loses or rolls back leaves only garbage
   * for `gc()`), the journal goes to an anonymous temp file; in the `sqlite-s3vfs` layout, both go
   * to a temp file (its blocks are rewritten in place, so nothing reaches S3 before the commit).
   * A transaction of any size, a `VACUUM` included, then runs in bounded memory (see "Memory" in
   * the README). Temp files live in `TMPDIR`. Keep it at a few blocks or more: below that, writes
   * move blocks out and back. Default 64 MiB.
   */
  memoryLimit?: number
  /**
   * Versioned layout: how new blocks are stored. `'zstd'` compresses each block object on its own
   * (a block that does not shrink is stored as it is); `'none'` stores them as SQLite wrote them.
   * The choice is recorded in the database, so readers need no option and a writer given none
   * keeps the recorded one; blocks written before a change stay as they are and read correctly.
   * A database that has used compression cannot be read by versions of this package before 0.2.
   * The memory cache holds blocks as SQLite reads them; `cacheDir` holds them as stored.
   */
  compression?: 'none' | 'zstd'
  /** zstd's level for `compression: 'zstd'`, 1 (fastest) to 22 (smallest). Default 3. */
  compressionLevel?: number
  /**
   * Versioned layout: client-side encryption. Every block, map segment and root is sealed with
   * XChaCha20-Poly1305 under `key` (32 bytes) before it leaves the process, bound to its place
   * (database, block, version), so the bucket's owner can neither read pages nor change, move or
   * replay objects undetected (`ERR_AUTHENTICATION_FAILED`). Rotation: a new `key` under a new
   * `keyId` seals new objects; older ones open while their key is in `previousKeys`. Only a new
   * database (or an import) can be encrypted; an encrypted one opened without its key fails
   * with `ERR_KEY_MISSING`, changing nothing. Keys are wiped from native memory when the
   * database closes, and never logged. See "Encryption" in the README for what stays visible.
   */
  encryption?: EncryptionOptions
  /**
   * Keep the objects somewhere other than S3: `{ dir: '/path' }` keeps them as files in a local
   * directory (each bucket a folder under it), with the same guarantees across processes — for
   * developing and testing an app with no S3 server. `s3` options are then ignored.
   */
  store?: { dir: string }
  /**
   * Receives the request log: every S3 request at `debug` (method, key, status, bytes, ms,
   * attempt), retries and give-ups at `warn`, each as `(fields, message)` — pino, console, or any
   * object with `debug` and `warn`. Never a credential or a signature. `DEBUG=sqlite-s3vfs` in
   * the environment logs to stderr when no logger is given.
   */
  logger?: Logger
}

/** What `options.logger` needs: pino and console fit. */
export interface Logger {
  debug(fields: RequestLogFields, message: string): void
  warn(fields: RequestLogFields, message: string): void
}

/** The fields of a request-log line. */
export interface RequestLogFields {
  method: 'GET' | 'PUT' | 'LIST' | 'DELETE' | 'HEAD'
  key: string
  /** 200, 304, 404, or the error's code. */
  status: string
  bytes: number
  ms: number
  attempt: number
}

export interface TransactionOptions {
  behavior?: 'deferred' | 'immediate' | 'exclusive'
  /**
   * Runs `fn` again (up to this many times, with jittered backoff) when the commit loses to
   * another writer (`SQLITE_BUSY`): `fn` must be safe to repeat. Default 0.
   */
  retries?: number
}

/** Which database a key is asked for (the `S3Database`'s own bucket and prefix). */
export interface KeyProviderContext {
  bucket: string
  prefix: string
}

export interface EncryptionOptions {
  /** 32 bytes (e.g. `crypto.randomBytes(32)`, or from a KMS data key). Give this or `keyProvider`. */
  key?: Uint8Array
  /**
   * Gives the key named `keyId` (32 bytes), or `null`/`undefined` when it has none by that id —
   * for keys kept in a KMS or a secrets manager. Called the first time the database needs a key:
   * for `keyId` when the database opens (not for an old `version`, which seals nothing), and for
   * an older id when an object sealed under it is read (rotation without listing old keys). Each
   * key is asked for once per open database, however many reads need it at once, and kept in
   * native memory (a copy: the provider may wipe its own) until the database closes.
   *
   * It is the allowlist of keys: ids come from the bucket, so whoever can write there can make
   * it ask for any id (printable, 1 to 64 bytes; never treat one as a path). Give only the keys
   * of `database` (its bucket and prefix are passed): a key of another database would let its
   * objects be copied over this one's and read as this one's.
   *
   * A key it does not have fails the read or the open with `ERR_KEY_MISSING`, and is not asked
   * for again while the database is open (a failed open forgets it); what it throws, or no answer
   * within `keyProviderTimeoutMs`, fails them with `ERR_KEY_PROVIDER`, and the next read that
   * needs the key asks again; so does a promise garbage-collected before it settles (nothing can
   * settle it), at once. It must not use the database it gives keys to (that waits for it).
   */
  keyProvider?: (keyId: string, database: KeyProviderContext) => Promise<Uint8Array | null | undefined> | Uint8Array | null | undefined
  /** How long `keyProvider` may take for one key, in ms (then `ERR_KEY_PROVIDER`). Default 30000. */
  keyProviderTimeoutMs?: number
  /** Names the key in every object it seals (1 to 64 bytes, not secret). Default `'default'`. */
  keyId?: string
  /** Rotated-out keys by id: they open the objects they sealed, and seal nothing new. */
  previousKeys?: Record<string, Uint8Array>
}

export interface GcOptions extends Pick<DatabaseOptions, 's3' | 'concurrency' | 'store' | 'logger' | 'encryption'> {
  /** The newest versions always kept. Default 1. */
  keepVersions?: number
  /**
   * Horizon in ms: versions replaced less than this long ago (a reader may still be on them) and
   * uploads of commits younger than this are kept. Default 1 hour. Below ~30 minutes a writer
   * stalled longer than the horizon could lose its uploads: use short values only when no writer
   * runs (tests, maintenance).
   */
  gracePeriodMs?: number
  /**
   * Accept a `gracePeriodMs` below 30 minutes (the shortest that keeps a stalled writer's uploads
   * safe): only when no writer runs (tests, maintenance). Default false.
   */
  unsafeShortGracePeriod?: boolean
  /** Report what would be pruned and deleted, and change nothing. Default false. */
  dryRun?: boolean
  /** Called as the objects are deleted (from 0 to `total`), for a progress bar. What it throws is
   *  ignored. */
  onProgress?: (progress: { deleted: number; total: number }) => void
}

export interface GcReport {
  head: number
  versionsKept: number
  versionsPruned: number
  objectsDeleted: number
}

/** What `S3Database.inspect()` finds stored for a database (one LIST per 1,000 objects). */
export interface Inspection {
  /** `undefined`: no database under the prefix. */
  layout?: 'versioned' | 'sqlite-s3vfs'
  /** Objects and bytes stored (the sqlite-s3vfs layout's journal included). */
  objects: number
  bytes: number
  /** Versioned layout: every version whose root is stored, oldest first; `pruned` ones were
   *  garbage-collected (only their tombstone is left). */
  versions: { version: number; createdMs?: number; pruned: boolean }[]
}

export interface DeserializeOptions extends DatabaseOptions {
  /** Replace a database that already exists under the prefix. Default false. */
  overwrite?: boolean
}

/** A value bound to a parameter. Booleans bind as 1/0, undefined as NULL. */
export type SqlValue = number | bigint | string | Buffer | Uint8Array | boolean | null | undefined
/** Positional (`?`) parameters as an array, or named ones (`:a`, `@a`, `$a`) as an object keyed without the sigil. */
export type Params = readonly SqlValue[] | Readonly<Record<string, SqlValue>>
/** A column value as read: INTEGER beyond 2^53 is a bigint, BLOB a Buffer. */
export type ColumnValue = number | bigint | string | Buffer | null
export type Row = Record<string, ColumnValue>

export interface RunResult {
  changes: number
  lastInsertRowid: number | bigint
}

/** The defaults of `blockSize` (versioned; `compatBlockSize` for the sqlite-s3vfs layout), `cacheSize`, `memoryLimit`,
 *  `concurrency` and `readAhead` (see `DatabaseOptions`). */
export const defaults: Readonly<{
  blockSize: number
  compatBlockSize: number
  cacheSize: number
  concurrency: number
  readAhead: number
  memoryLimit: number
}> = Object.freeze(native.defaults())

/** Counters since the database was opened. */
export interface Stats {
  get: number
  put: number
  list: number
  delete: number
  head: number
  bytesDown: number
  bytesUp: number
  cacheHits: number
  cacheMisses: number
  /** Blocks read ahead of a sequential reader (each one GET, counted in `get` too). */
  prefetched: number
  /** Requests sent again after a transient failure (not counted in `get`, `put`, ...), including a commit's resent root. */
  retries: number
  /** Bytes of buffered writes (changed blocks, rollback journal) held in memory now. */
  buffered: number
  /** The most `buffered` has been since open: about `memoryLimit` at most. */
  bufferedPeak: number
}

/** Every error this package throws: `code` is an SQLite extended result code (`SQLITE_BUSY`,
 *  `SQLITE_CONSTRAINT_UNIQUE`, ...), an S3 error code (`NoSuchBucket`, `AccessDenied`, ...), a network
 *  error (`ECONNREFUSED`, ...) or one of ours (`ERR_...`). */
export class SqliteS3Error extends Error {
  readonly code: string
  /**
   * What the caller can do about it: `'transient'` (the same call may succeed later),
   * `'throttled'` (transient, and the store asked for fewer requests), `'conflict'` (another writer
   * got there first: `SQLITE_BUSY`, run the transaction again), `'unknown-outcome'` (a commit may
   * or may not have landed: `settle()` tells) or `'permanent'` (it will fail the same way again).
   */
  readonly kind: ErrorKind
  constructor(code: string, message: string, kind: ErrorKind = 'permanent') {
    super(message)
    this.name = 'SqliteS3Error'
    this.code = code
    this.kind = kind
  }
}

export type ErrorKind = 'transient' | 'throttled' | 'conflict' | 'unknown-outcome' | 'permanent'
const KINDS: readonly string[] = ['transient', 'throttled', 'conflict', 'unknown-outcome', 'permanent']

/** Turns a native error (`[CODE|kind] message`) into a SqliteS3Error: the one place that does it. */
function toError(e: unknown): Error {
  if (e instanceof SqliteS3Error) return e
  const message = e instanceof Error ? e.message : String(e)
  const m = /^\[([^\s|\]]+)(?:\|([a-z-]+))?\] ([\s\S]*)$/.exec(message)
  if (m) return new SqliteS3Error(m[1], m[3], KINDS.includes(m[2]) ? (m[2] as ErrorKind) : 'permanent')
  const code = (e as { code?: unknown } | null)?.code
  if (typeof code === 'string' && code !== 'GenericFailure') return new SqliteS3Error(code, message)
  return new SqliteS3Error('ERR_INVALID_ARGUMENT', message)
}

async function guard<T>(p: Promise<T> | (() => Promise<T>)): Promise<T> {
  try {
    // A call, so that what it throws at once (reading its arguments) is converted too.
    return await (typeof p === 'function' ? p() : p)
  } catch (e) {
    throw toError(e)
  }
}

type NativeValue = null | number | bigint | string | Buffer

/**
 * A typed array's own getter for `name`: what it really holds, not what a subclass or a Proxy
 * says (an overridden `byteOffset` could point a key at other bytes of the same pool).
 */
const typedArrayGetter = (name: string | symbol) => Object.getOwnPropertyDescriptor(Object.getPrototypeOf(Uint8Array.prototype), name)!.get!
const [ownBuffer, ownByteOffset, ownByteLength, ownType] = ['buffer', 'byteOffset', 'byteLength', Symbol.toStringTag].map(typedArrayGetter)

/**
 * A Buffer over the bytes a Uint8Array (a Buffer, or one from another realm) really holds, found
 * through its own slots (no copy left behind); undefined for anything else: a Proxy, another
 * kind of view, an object given Uint8Array's prototype, a detached buffer.
 */
function ownBytes(v: unknown): Buffer | undefined {
  // Undefined, never a throw, for what is not a typed array.
  if (ownType.call(v) !== 'Uint8Array') return undefined
  try {
    return Buffer.from(ownBuffer.call(v), ownByteOffset.call(v), ownByteLength.call(v))
  } catch {
    return undefined
  }
}

/**
 * A key's 32 bytes, copied into a Buffer of its own: not a slice of Node's shared pool, and not
 * the caller's memory, which it may wipe, shrink or detach while native code still reads it.
 * Undefined if `k` is not a Uint8Array of 32 bytes.
 */
function keyCopy(k: unknown): Buffer | undefined {
  const bytes = ownBytes(k)
  if (bytes?.length !== 32) return undefined
  const copy = Buffer.alloc(32)
  copy.set(bytes)
  return copy
}

function toNativeValue(v: SqlValue): NativeValue {
  if (v === undefined || v === null) return null
  if (typeof v === 'boolean') return v ? 1 : 0
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'string') return v
  const bytes = ownBytes(v)
  if (bytes !== undefined) return bytes
  throw new SqliteS3Error('ERR_INVALID_ARGUMENT', `cannot bind a value of type ${typeof v} (${Object.prototype.toString.call(v)})`)
}

function toNativeParams(params: Params | undefined) {
  if (params === undefined) return undefined
  if (Array.isArray(params)) return { positional: params.map(toNativeValue) }
  if (typeof params === 'object' && params !== null && !Buffer.isBuffer(params) && !(params instanceof Uint8Array)) {
    const named: Record<string, NativeValue> = {}
    for (const [k, v] of Object.entries(params)) named[k] = toNativeValue(v as SqlValue)
    return { named }
  }
  throw new SqliteS3Error('ERR_INVALID_ARGUMENT', 'parameters must be an array (positional) or an object (named)')
}

function toRows<T>(r: { columns: string[]; values: NativeValue[] }): T[] {
  const n = r.columns.length
  const out: T[] = []
  if (n === 0) return out
  for (let i = 0; i < r.values.length; i += n) {
    const row: Record<string, NativeValue> = {}
    for (let c = 0; c < n; c++) row[r.columns[c]] = r.values[i + c]
    out.push(row as T)
  }
  return out
}

/** Whether `DEBUG` names this package (`sqlite-s3vfs`, `sqlite-s3vfs*`, `*`). */
function debugEnabled(): boolean {
  return (process.env.DEBUG ?? '')
    .split(/[\s,]+/)
    .some((p) => p === '*' || p === 'sqlite-s3vfs' || p === 'sqlite-s3vfs*' || p === 'sqlite-s3vfs:*')
}

const stderrLogger: Logger = {
  debug: (_f, m) => process.stderr.write(`${m}\n`),
  warn: (_f, m) => process.stderr.write(`${m}\n`),
}

/** The native log callback for `logger`: a line per event; a logger that throws is ignored. */
function logCallback(logger: Logger | undefined) {
  if (!logger) return undefined
  return (e: import('../binding').JsLogEvent) => {
    const fields = { method: e.method, key: e.key, status: e.status, bytes: e.bytes, ms: e.ms, attempt: e.attempt } as RequestLogFields
    const text = `sqlite-s3vfs ${e.level} ${e.method} ${e.key} ${e.status} ${e.bytes} B ${e.ms} ms attempt ${e.attempt}${e.message ? `: ${e.message}` : ''}`
    try {
      const r: unknown = e.level === 'warn' ? logger.warn(fields, text) : logger.debug(fields, text)
      // An async logger that rejects is ignored too.
      if (r instanceof Promise) r.catch(() => undefined)
    } catch {
      // The log must never break a request.
    }
  }
}

/**
 * The key provider as the native side calls it: a promise that always fulfils, with a Buffer of
 * 32 bytes, null (a key it does not have), or a string saying why it failed. Never a rejection, so
 * the native side can tell the provider's failure from a promise dropped unsettled. What is wrong
 * with an answer is said by its type and length, never its bytes.
 */
function keyProviderCallback(provider: NonNullable<EncryptionOptions['keyProvider']>, database: KeyProviderContext) {
  return async (keyId: string): Promise<Buffer | string | null> => {
    let key: unknown
    try {
      key = await provider(keyId, database)
    } catch (e) {
      try {
        return thrownReason(e)
      } catch {
        return 'threw a value that cannot be shown as text'
      }
    }
    // Never throws: a Proxy or a forged view is told apart by its own slots, not read.
    return keyAnswer(key)
  }
}

/**
 * A provider's key, as the native side takes it (a copy: the provider may wipe its own as soon as
 * it returns, before native code reads it), or why it is not a key.
 */
function keyAnswer(key: unknown): Buffer | string | null {
  if (key === null || key === undefined) return null
  const copy = keyCopy(key)
  if (copy !== undefined) return copy
  const bytes = ownBytes(key)
  return bytes === undefined ? `gave ${typeof key}, not a Uint8Array of 32 bytes` : `gave ${bytes.length} bytes, not 32`
}

/** Whatever a provider threw, as a message an error can carry, never the bytes of one it threw. */
function thrownReason(e: unknown): string {
  const bytes = (v: unknown) =>
    ArrayBuffer.isView(v) || v instanceof ArrayBuffer
      ? `threw ${v.byteLength} bytes (not shown)`
      : Array.isArray(v)
        ? `threw an array of ${v.length} items (not shown)`
        : undefined
  const message = e instanceof Error ? e.message : e
  const why = bytes(e) ?? bytes(message) ?? String(message)
  return why === '' ? 'threw without a message' : why
}

function nativeOptions(o: DatabaseOptions | undefined, database: KeyProviderContext = { bucket: '', prefix: '' }) {
  if (o === undefined) {
    if (!debugEnabled()) return undefined
    o = {}
  }
  if (o.logger !== undefined && (typeof o.logger?.debug !== 'function' || typeof o.logger?.warn !== 'function')) {
    throw new SqliteS3Error('ERR_INVALID_ARGUMENT', 'logger must have debug and warn methods (pino and console do)')
  }
  const check = (name: string, v: number | undefined, min: number) => {
    if (v !== undefined && (!Number.isInteger(v) || v < min)) {
      throw new SqliteS3Error('ERR_INVALID_ARGUMENT', `${name} must be an integer >= ${min}, got ${v}`)
    }
  }
  check('blockSize', o.blockSize, 512)
  check('cacheSize', o.cacheSize, 0)
  check('concurrency', o.concurrency, 1)
  check('readAhead', o.readAhead, 0)
  check('cacheDirSize', o.cacheDirSize, 0)
  if (o.cacheDir !== undefined && (typeof o.cacheDir !== 'string' || o.cacheDir === '')) {
    throw new SqliteS3Error('ERR_INVALID_ARGUMENT', `cacheDir must be a non-empty path, got ${String(o.cacheDir)}`)
  }
  check('iterateBatchSize', o.iterateBatchSize, 1)
  check('version', o.version, 1)
  check('maxStaleness', o.maxStaleness, 0)
  check('hotJournalMs', o.hotJournalMs, 1000)
  check('memoryLimit', o.memoryLimit, 0)
  if (o.compression !== undefined && o.compression !== 'none' && o.compression !== 'zstd') {
    throw new SqliteS3Error('ERR_INVALID_ARGUMENT', `compression must be 'none' or 'zstd', got ${JSON.stringify(o.compression)}`)
  }
  const e = o.encryption
  let key: Buffer | undefined
  let keyProvider: ReturnType<typeof keyProviderCallback> | undefined
  const previousKeys: { keyId: string; key: Buffer }[] = []
  if (e !== undefined) {
    // Lengths only in messages: never key bytes.
    if (typeof e !== 'object' || e === null) {
      throw new SqliteS3Error('ERR_INVALID_ARGUMENT', 'encryption must be an object with a key or a keyProvider')
    }
    // Each key is read once, and what is checked is the copy native code gets.
    const [provider, givenKey] = [e.keyProvider, e.key]
    if (provider !== undefined) {
      if (typeof provider !== 'function') {
        throw new SqliteS3Error('ERR_INVALID_ARGUMENT', 'encryption.keyProvider must be a function (keyId) => key')
      }
      if (givenKey !== undefined) {
        throw new SqliteS3Error('ERR_INVALID_ARGUMENT', 'encryption takes a key or a keyProvider, not both')
      }
      check('encryption.keyProviderTimeoutMs', e.keyProviderTimeoutMs, 1)
      keyProvider = keyProviderCallback(provider, database)
    } else {
      key = keyCopy(givenKey)
      if (key === undefined) throw new SqliteS3Error('ERR_INVALID_ARGUMENT', 'encryption.key must be 32 bytes (a Buffer or Uint8Array)')
    }
    for (const [keyId, k] of Object.entries(e.previousKeys ?? {})) {
      const copy = keyCopy(k)
      if (copy === undefined) throw new SqliteS3Error('ERR_INVALID_ARGUMENT', `encryption.previousKeys['${keyId}'] must be 32 bytes`)
      previousKeys.push({ keyId, key: copy })
    }
    const ids = [e.keyId ?? 'default', ...previousKeys.map((p) => p.keyId)]
    if (ids.some((id) => typeof id !== 'string' || Buffer.byteLength(id) < 1 || Buffer.byteLength(id) > 64)) {
      throw new SqliteS3Error('ERR_INVALID_ARGUMENT', 'encryption key ids must be 1 to 64 bytes')
    }
    if (o.layout === 'sqlite-s3vfs') {
      throw new SqliteS3Error(
        'ERR_INVALID_ARGUMENT',
        'encryption needs the versioned layout (the Python library reads the sqlite-s3vfs layout as it is)',
      )
    }
  }
  if (o.compression === 'zstd' && o.layout === 'sqlite-s3vfs') {
    throw new SqliteS3Error(
      'ERR_INVALID_ARGUMENT',
      'compression needs the versioned layout (the Python library reads the sqlite-s3vfs layout as it is)',
    )
  }
  if (o.compressionLevel !== undefined && o.compression !== 'zstd') {
    throw new SqliteS3Error('ERR_INVALID_ARGUMENT', "compressionLevel goes with compression: 'zstd'")
  }
  if (o.compressionLevel !== undefined && (!Number.isInteger(o.compressionLevel) || o.compressionLevel < 1 || o.compressionLevel > 22)) {
    throw new SqliteS3Error('ERR_INVALID_ARGUMENT', `compressionLevel must be an integer from 1 to 22, got ${o.compressionLevel}`)
  }
  if (o.store !== undefined && (typeof o.store !== 'object' || o.store === null || typeof o.store.dir !== 'string' || o.store.dir === '')) {
    throw new SqliteS3Error('ERR_INVALID_ARGUMENT', `store must be { dir: '<a local directory>' }, got ${JSON.stringify(o.store)}`)
  }
  const s3 = o.s3
  let customerKey: Buffer | undefined
  if (s3?.endpoint !== undefined && !/^https?:\/\/[^/@?#]+(\/[^?#@]*)?$/.test(s3.endpoint)) {
    // User info or a query string would be repeated in every error message and log line.
    throw new SqliteS3Error('ERR_INVALID_ARGUMENT', 's3.endpoint must be http(s)://host[:port][/path], with no user info or query string')
  }
  if (s3 !== undefined) {
    const sse = s3.serverSideEncryption
    if (sse !== undefined && sse !== 'AES256' && sse !== 'aws:kms' && sse !== 'aws:kms:dsse') {
      throw new SqliteS3Error(
        'ERR_INVALID_ARGUMENT',
        `s3.serverSideEncryption must be 'AES256', 'aws:kms' or 'aws:kms:dsse', got ${JSON.stringify(sse)}`,
      )
    }
    if (s3.sseKmsKeyId !== undefined && !sse?.startsWith('aws:kms')) {
      throw new SqliteS3Error('ERR_INVALID_ARGUMENT', "s3.sseKmsKeyId goes with serverSideEncryption 'aws:kms' or 'aws:kms:dsse'")
    }
    const customer = s3.sseCustomerKey
    if (customer !== undefined) {
      // The key itself never appears in a message.
      customerKey = keyCopy(customer)
      if (customerKey === undefined) {
        throw new SqliteS3Error('ERR_INVALID_ARGUMENT', 's3.sseCustomerKey must be 32 bytes (a Buffer or Uint8Array)')
      }
      if (sse !== undefined) {
        throw new SqliteS3Error('ERR_INVALID_ARGUMENT', 's3.sseCustomerKey (SSE-C) and s3.serverSideEncryption cannot be combined')
      }
      // The key travels in a header of every request: never in the clear beyond this machine.
      const endpoint = s3.endpoint ?? process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL
      if (endpoint?.startsWith('http://') && !/^http:\/\/(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?(\/|$)/.test(endpoint)) {
        throw new SqliteS3Error('ERR_INVALID_ARGUMENT', 's3.sseCustomerKey needs an https endpoint (the key is sent with every request)')
      }
    }
    if (s3.bucketKeyEnabled !== undefined && sse !== 'aws:kms') {
      throw new SqliteS3Error('ERR_INVALID_ARGUMENT', "s3.bucketKeyEnabled goes with serverSideEncryption 'aws:kms'")
    }
    if (o.store !== undefined && (sse !== undefined || customer !== undefined)) {
      throw new SqliteS3Error('ERR_INVALID_ARGUMENT', 'S3 server-side encryption options do not apply to a local directory store')
    }
    check('s3.maxAttempts', s3.maxAttempts, 1)
    const r = s3.retry ?? {}
    check('s3.retry.maxAttempts', r.maxAttempts, 1)
    check('s3.retry.baseDelayMs', r.baseDelayMs, 0)
    check('s3.retry.throttleDelayMs', r.throttleDelayMs, 0)
    check('s3.retry.maxDelayMs', r.maxDelayMs, 0)
    check('s3.retry.totalMs', r.totalMs, 1)
    const t = s3.timeouts ?? {}
    check('s3.timeouts.connectMs', t.connectMs, 1)
    check('s3.timeouts.firstByteMs', t.firstByteMs, 1)
    check('s3.timeouts.bodyStallMs', t.bodyStallMs, 1)
    check('s3.timeouts.minUploadRate', t.minUploadRate, 1)
    check('s3.timeouts.listMs', t.listMs, 1)
    check('s3.timeouts.rewriteMs', t.rewriteMs, 1)
  }
  if (o.layout !== undefined && o.layout !== 'versioned' && o.layout !== 'sqlite-s3vfs') {
    throw new SqliteS3Error('ERR_INVALID_ARGUMENT', `layout must be 'versioned' or 'sqlite-s3vfs', got ${String(o.layout)}`)
  }
  return {
    blockSize: o.blockSize,
    cacheSize: o.cacheSize,
    concurrency: o.concurrency,
    readAhead: o.readAhead,
    cacheDir: o.cacheDir,
    cacheDirSize: o.cacheDirSize,
    s3: o.s3 && {
      ...o.s3,
      sseCustomerKey: customerKey,
    },
    layout: o.layout,
    version: o.version,
    maxStaleness: o.maxStaleness,
    singleWriter: o.singleWriter,
    hotJournalMs: o.hotJournalMs,
    memoryLimit: o.memoryLimit,
    compression: o.compression,
    compressionLevel: o.compressionLevel,
    encryption: e && {
      key,
      keyProvider,
      keyProviderTimeoutMs: e.keyProviderTimeoutMs,
      keyId: e.keyId,
      previousKeys,
    },
    store: o.store,
    log: logCallback(o.logger ?? (debugEnabled() ? stderrLogger : undefined)),
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** What can run SQL: the database, and the same database inside `transaction()`. */
export interface Queryable {
  exec(sql: string): Promise<void>
  run(sql: string, params?: Params): Promise<RunResult>
  get<T = Row>(sql: string, params?: Params): Promise<T | undefined>
  all<T = Row>(sql: string, params?: Params): Promise<T[]>
  iterate<T = Row>(sql: string, params?: Params): AsyncIterableIterator<T>
  prepare(sql: string): Promise<Statement>
}

/** A prepared statement: compiled once, run many times. */
export class Statement {
  #db: S3Database
  #finalized = false
  /** The statement's SQL text. */
  readonly sql: string
  /** Names of the result columns (empty for statements that return no rows). */
  readonly columns: readonly string[]

  /** @internal */
  constructor(db: S3Database, sql: string, columns: string[]) {
    this.#db = db
    this.sql = sql
    this.columns = columns
  }

  #live(): void {
    if (this.#finalized) throw new SqliteS3Error('ERR_STATEMENT_FINALIZED', `the statement was finalized: ${this.sql}`)
  }

  async run(params?: Params): Promise<RunResult> {
    this.#live()
    return this.#db.run(this.sql, params)
  }
  async get<T = Row>(params?: Params): Promise<T | undefined> {
    this.#live()
    return this.#db.get<T>(this.sql, params)
  }
  async all<T = Row>(params?: Params): Promise<T[]> {
    this.#live()
    return this.#db.all<T>(this.sql, params)
  }
  iterate<T = Row>(params?: Params): AsyncIterableIterator<T> {
    this.#live()
    return this.#db.iterate<T>(this.sql, params)
  }
  /** Releases the statement; later calls on it fail with `ERR_STATEMENT_FINALIZED`. */
  finalize(): void {
    this.#finalized = true
  }
}

/** A transaction, or a savepoint inside one, as the async context that runs it sees it. */
interface TxToken {
  db: S3Database
  active: boolean
  /** Ending (COMMIT, ROLLBACK, RELEASE under way): nested transactions not started yet are refused. */
  closing: boolean
  /** The outermost transaction's token (itself for the outermost). */
  root: TxToken
  /** The context this one was started from (of any database), to find the caller's scope once
   *  this one has ended. */
  parent: TxToken | null
  /** Savepoint names are numbered per outermost transaction. */
  depth: number
  /** The nested transaction running now from this context: siblings and this context's own
   *  statements wait for it, since savepoints are one stack per connection. */
  child: { done: Promise<void> } | null
}

function newToken(db: S3Database, parent: TxToken | null, root: TxToken | null): TxToken {
  const token = { db, active: true, closing: false, parent, depth: 0, child: null } as unknown as TxToken
  token.root = root ?? token
  return token
}

/** The caller's innermost still-running transaction scope on `db` (a statement issued from a
 *  savepoint that has ended belongs to the scope that started it). */
function scopeFor(db: S3Database): TxToken | undefined {
  for (let t = currentTx.getStore(); t !== undefined; t = t.parent ?? undefined) {
    if (t.db === db && t.active) return t
  }
  return undefined
}

/** Marks a scope as ending and waits for the nested transaction running from it (one queued
 *  behind it is then refused): nothing of a nested transaction may run after its parent ends. */
async function endScope(token: TxToken): Promise<void> {
  token.closing = true
  while (token.child !== null) await token.child.done
}

const currentTx = new AsyncLocalStorage<TxToken>()

function closedError(db: S3Database): SqliteS3Error {
  return new SqliteS3Error('ERR_DATABASE_CLOSED', `the database s3://${db.bucket}/${db.prefix} is closed`)
}

/** The native side of one `iterate()` call (held by the registry: it must not reference the
 *  generator). */
interface IteratorHandle {
  native: { iterateClose(id: number): Promise<void> }
  id: number | null
  done: boolean
}

/** Closes iterators dropped unfinished: an open one holds its read transaction (and a frame on
 *  the connection thread) until it is closed. */
const abandonedIterators = new FinalizationRegistry<IteratorHandle>((h) => {
  if (h.id !== null && !h.done) {
    h.done = true
    h.native.iterateClose(h.id).catch(() => undefined)
  }
})

/**
 * A SQLite database stored in S3 under `prefix`, in blocks of `blockSize` bytes
 * (`{prefix}/0000000000`, ...: the format of the Python library `sqlite-s3vfs`).
 * Opens lazily on first use; `open()` surfaces configuration and access errors early.
 */
export class S3Database implements Queryable {
  readonly bucket: string
  readonly prefix: string
  #native: InstanceType<typeof native.NativeDatabase>
  #batch: number
  /** The running transaction, and the promise that settles when it ends. */
  #tx: { token: TxToken; done: Promise<void> } | null = null
  #closed = false

  constructor(bucket: string, prefix: string, options?: DatabaseOptions) {
    if (typeof bucket !== 'string' || typeof prefix !== 'string') {
      throw new SqliteS3Error('ERR_INVALID_ARGUMENT', 'new S3Database(bucket, prefix, options?): bucket and prefix must be strings')
    }
    this.bucket = bucket
    this.prefix = prefix
    this.#batch = options?.iterateBatchSize ?? 256
    try {
      this.#native = new native.NativeDatabase(bucket, prefix, nativeOptions(options, { bucket, prefix }))
    } catch (e) {
      throw toError(e)
    }
  }

  /** What the caller must wait for before its call may go to the connection: `null` when it
   *  may go now (no transaction, or the caller's own with no nested one running from its scope). */
  #blocker(): Promise<void> | null {
    if (this.#closed) throw closedError(this)
    const tx = this.#tx
    if (tx === null) return null
    const mine = scopeFor(this)
    if (mine !== undefined && mine.root === tx.token) return mine.child?.done ?? null
    return tx.done
  }

  /** Waits until no transaction other than the caller's own is running. */
  async #turn(): Promise<void> {
    for (let wait = this.#blocker(); wait !== null; wait = this.#blocker()) await wait
  }

  /**
   * Sends a call to the connection in its turn. When nothing is in the way it goes at once, in
   * the caller's tick: calls reach the connection in the order they were made, so a call made
   * before `transaction()` never lands inside it.
   */
  async #call<T>(send: () => Promise<T>): Promise<T> {
    // Checked again in the very tick the call is sent: a transaction() waiting on the same
    // event must not slip in between (an async helper in between would add ticks).
    for (let wait = this.#blocker(); wait !== null; wait = this.#blocker()) await wait
    // A value the native side cannot take (a bigint beyond 64 bits) throws as the call is made.
    let sent: Promise<T>
    try {
      sent = send()
    } catch (e) {
      throw toError(e)
    }
    return guard(sent)
  }

  /** Connects and reads the database header: fails now on a bad bucket, credentials or file. */
  async open(): Promise<void> {
    return this.#call(() => this.#native.open())
  }

  /** Runs one or more SQL statements separated by semicolons. */
  async exec(sql: string): Promise<void> {
    return this.#call(() => this.#native.exec(sql))
  }

  async run(sql: string, params?: Params): Promise<RunResult> {
    return this.#call(() => this.#native.run(sql, toNativeParams(params)))
  }

  async get<T = Row>(sql: string, params?: Params): Promise<T | undefined> {
    const r = await this.#call(() => this.#native.query(sql, toNativeParams(params), true))
    return toRows<T>(r)[0]
  }

  async all<T = Row>(sql: string, params?: Params): Promise<T[]> {
    return toRows<T>(await this.#call(() => this.#native.query(sql, toNativeParams(params), false)))
  }

  /**
   * Rows one at a time, fetched in batches. Break out of the loop to stop early. An open
   * iterator holds a read transaction (its snapshot) until it ends: finish it, break out of the
   * loop, or call `return()`. One that is dropped unfinished is closed when it is
   * garbage-collected; at most 1024 can be open at once (`ERR_TOO_MANY_ITERATORS`).
   */
  iterate<T = Row>(sql: string, params?: Params): AsyncIterableIterator<T> {
    const handle: IteratorHandle = { native: this.#native, id: null, done: false }
    const rows = this.#rows<T>(sql, params, handle)
    // The generator itself is what the caller holds: while it runs (awaiting the native side)
    // it is reachable, so the registry only ever sees one suspended at a `yield`, or never started.
    abandonedIterators.register(rows, handle)
    return rows
  }

  async *#rows<T>(sql: string, params: Params | undefined, handle: IteratorHandle): AsyncGenerator<T> {
    handle.id = await this.#call(() => this.#native.iterateStart(sql, toNativeParams(params)))
    try {
      while (!handle.done) {
        let batch
        try {
          batch = await guard(this.#native.iterateNext(handle.id, this.#batch))
        } catch (e) {
          // An SQL or I/O error ends the native iterator; an out-of-order call does not.
          if ((e as SqliteS3Error).code !== 'ERR_ITERATOR_ORDER') handle.done = true
          throw e
        }
        handle.done = batch.done
        for (const row of toRows<T>(batch)) yield row
      }
    } finally {
      // Broken off (break, return(), throw(), an error): close the native side.
      if (!handle.done) {
        handle.done = true
        await guard(this.#native.iterateClose(handle.id)).catch(() => undefined)
      }
    }
  }

  async prepare(sql: string): Promise<Statement> {
    const columns = await this.#call(() => this.#native.prepare(sql))
    return new Statement(this, sql, columns)
  }

  /**
   * Runs `fn` in a transaction: COMMIT when it resolves, ROLLBACK when it throws. Other calls
   * on this database wait until it ends; calls on `db` itself from inside `fn` join it, and a
   * nested `transaction()` becomes a savepoint.
   */
  async transaction<T>(fn: (tx: Queryable) => Promise<T>, options?: TransactionOptions): Promise<T> {
    const retries = options?.retries ?? 0
    if (!Number.isInteger(retries) || retries < 0) {
      throw new SqliteS3Error('ERR_INVALID_ARGUMENT', `retries must be an integer >= 0, got ${retries}`)
    }
    const mine = scopeFor(this)
    // Inside a transaction of this database: a savepoint (a lost race reruns the outer one).
    if (mine !== undefined) return this.#savepoint(mine, fn)
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#transactionOnce(fn, options)
      } catch (e) {
        if (!(e instanceof SqliteS3Error) || e.code !== 'SQLITE_BUSY' || attempt >= retries) throw e
        // Jittered exponential backoff: racing writers spread out instead of colliding again.
        await sleep(Math.random() * Math.min(1000, 10 * 2 ** attempt))
      }
    }
  }

  /**
   * A nested transaction: a savepoint. Savepoints are one stack per connection, so nested
   * transactions started concurrently from one context (`Promise.all`) run one after another:
   * otherwise a failing sibling's `ROLLBACK TO` would undo a sibling that already resolved.
   */
  async #savepoint<T>(parent: TxToken, fn: (tx: Queryable) => Promise<T>): Promise<T> {
    while (parent.child !== null) await parent.child.done
    if (!parent.active || parent.closing) {
      throw new SqliteS3Error('ERR_TRANSACTION_ENDED', 'the enclosing transaction ended before this nested transaction could start')
    }
    let end!: () => void
    parent.child = { done: new Promise<void>((resolve) => (end = resolve)) }
    const token = newToken(this, parent, parent.root)
    const name = `s3vfs_sp${++parent.root.depth}`
    try {
      return await currentTx.run(token, async () => {
        await this.exec(`SAVEPOINT ${name}`)
        let result: T
        try {
          result = await fn(this)
        } catch (e) {
          await endScope(token)
          // Keep the caller's error: a failed ROLLBACK TO (SQLite already rolled the whole
          // transaction back after an I/O error) must not replace it.
          await this.exec(`ROLLBACK TO ${name}; RELEASE ${name}`).catch(() => undefined)
          throw e
        }
        await endScope(token)
        await this.exec(`RELEASE ${name}`)
        return result
      })
    } finally {
      token.active = false
      parent.child = null
      end()
    }
  }

  async #transactionOnce<T>(fn: (tx: Queryable) => Promise<T>, options?: TransactionOptions): Promise<T> {
    const behavior = (options?.behavior ?? 'deferred').toUpperCase()
    if (!['DEFERRED', 'IMMEDIATE', 'EXCLUSIVE'].includes(behavior)) {
      throw new SqliteS3Error('ERR_INVALID_ARGUMENT', `unknown transaction behavior ${options?.behavior}`)
    }
    // Claim the database: at once when it is free (a call made in the same tick after this one
    // must wait for the transaction, not slip into it), else after the running one ends.
    for (;;) {
      if (this.#closed) throw closedError(this)
      if (this.#tx === null) break
      await this.#tx.done
    }
    const token = newToken(this, currentTx.getStore() ?? null, null)
    let end!: () => void
    this.#tx = { token, done: new Promise<void>((resolve) => (end = resolve)) }
    try {
      return await currentTx.run(token, async () => {
        await guard(this.#native.exec(`BEGIN ${behavior}`))
        let result: T
        try {
          result = await fn(this)
        } catch (e) {
          await endScope(token)
          await guard(this.#native.exec('ROLLBACK')).catch(() => undefined)
          throw e
        }
        await endScope(token)
        try {
          await guard(this.#native.exec('COMMIT'))
        } catch (e) {
          await guard(this.#native.exec('ROLLBACK')).catch(() => undefined)
          throw e
        }
        return result
      })
    } finally {
      token.active = false
      this.#tx = null
      end()
    }
  }

  /**
   * Versioned layout: after a commit failed with `ERR_COMMIT_UNKNOWN` (the store stopped
   * answering after the commit was sent), tells whether it landed: `'committed'` (do not run the
   * transaction again), `'lost'` (nothing of it is visible: run it again if still wanted) or
   * `'none'` (no commit of unknown outcome is pending). Rejects with `ERR_COMMIT_UNKNOWN` while
   * the store still cannot tell (call again later), or `ERR_COMMIT_UNDECIDABLE` when the version
   * was garbage-collected before it could be settled. The next write on this connection settles
   * it first anyway.
   */
  async settle(): Promise<'committed' | 'lost' | 'none'> {
    return (await this.#call(() => this.#native.settle())) as 'committed' | 'lost' | 'none'
  }

  /** Versioned layout: the version this connection reads (0 before the first read, and in the `sqlite-s3vfs` layout). */
  get version(): number {
    return this.#native.version()
  }

  /** The layout of the database (known once it is open). */
  get layout(): 'versioned' | 'sqlite-s3vfs' | undefined {
    return (this.#native.layout() ?? undefined) as 'versioned' | 'sqlite-s3vfs' | undefined
  }

  /** The block size in bytes (known once it is open): a versioned database's own, whatever the
   *  options say; in the `sqlite-s3vfs` layout, the `blockSize` option (that format records none). */
  get blockSize(): number | undefined {
    return this.#native.blockSize() ?? undefined
  }

  /**
   * Versioned layout: deletes what no retained version needs (old versions' blocks and map
   * segments, losing writers' leftovers). Safe beside running readers and writers; see `GcOptions`.
   */
  static async gc(bucket: string, prefix: string, options?: GcOptions): Promise<GcReport> {
    const keep = options?.keepVersions
    if (keep !== undefined && (!Number.isInteger(keep) || keep < 1)) {
      throw new SqliteS3Error('ERR_INVALID_ARGUMENT', `keepVersions must be an integer >= 1, got ${keep}`)
    }
    const grace = options?.gracePeriodMs
    if (grace !== undefined && (typeof grace !== 'number' || !(grace >= 0) || grace > Number.MAX_SAFE_INTEGER)) {
      throw new SqliteS3Error('ERR_INVALID_ARGUMENT', `gracePeriodMs must be a number from 0 to ${Number.MAX_SAFE_INTEGER}, got ${grace}`)
    }
    const report = options?.onProgress
    if (report !== undefined && typeof report !== 'function') {
      throw new SqliteS3Error('ERR_INVALID_ARGUMENT', 'onProgress must be a function')
    }
    const onProgress = report
      ? (p: { deleted: number; total: number }) => {
          try {
            const r: unknown = report({ deleted: p.deleted, total: p.total })
            // An async callback that rejects is ignored too.
            if (r instanceof Promise) r.catch(() => undefined)
          } catch {
            // A progress display that fails must not fail the collection.
          }
        }
      : undefined
    const o = () =>
      nativeOptions(
        {
          s3: options?.s3,
          concurrency: options?.concurrency,
          store: options?.store,
          logger: options?.logger,
          encryption: options?.encryption,
        },
        { bucket, prefix },
      )
    return guard(() =>
      native.collectGarbage(bucket, prefix, o(), {
        keepVersions: keep,
        gracePeriodMs: grace,
        unsafeShortGracePeriod: options?.unsafeShortGracePeriod,
        dryRun: options?.dryRun,
        onProgress,
      }),
    )
  }

  /** What is stored for a database: its layout, objects, bytes and versions. Reads no object. */
  static async inspect(bucket: string, prefix: string, options?: Pick<DatabaseOptions, 's3' | 'store'>): Promise<Inspection> {
    const r = await guard(() => native.inspectDatabase(bucket, prefix, nativeOptions({ s3: options?.s3, store: options?.store })))
    return {
      ...(r.layout ? { layout: r.layout as Inspection['layout'] } : {}),
      objects: r.objects,
      bytes: r.bytes,
      versions: r.versions.map((v) => ({
        version: v.version,
        ...(v.createdMs === undefined || v.createdMs === null ? {} : { createdMs: v.createdMs }),
        pruned: v.pruned,
      })),
    }
  }

  /**
   * Makes the statement running now fail with `SQLITE_INTERRUPT` (a long query, from a timer or
   * a Ctrl-C handler); the database stays usable, and a write transaction it was part of rolls
   * back. Does nothing when no statement runs.
   */
  interrupt(): void {
    this.#native.interrupt()
  }

  /** Request and cache counters since open. */
  stats(): Stats {
    return this.#native.stats()
  }

  /**
   * The database as a regular SQLite file, streamed with backpressure (pass it as the `Body` of
   * an `@aws-sdk/lib-storage` `Upload`, or pipe it to a file). It includes every write made
   * before the call; the blocks are read in parallel, off the connection thread.
   */
  serialize(): Readable {
    if (this.#closed) {
      // Fails when first read, like any other error of the stream: not a throw, and never an
      // unhandled rejection (a consumer such as `Upload` reads only after awaiting something).
      const error = closedError(this)
      return new Readable({
        read() {
          this.destroy(error)
        },
      })
    }
    const reader = new native.NativeSerializer(this.#native)
    const ready = this.#turn()
    // Observed at once (and again when the stream first reads): a close before the first read
    // must surface as a stream error, not as an unhandled rejection.
    ready.catch(() => undefined)
    let started = false
    return new Readable({
      highWaterMark: 1 << 20,
      read() {
        const next = async () => {
          if (!started) {
            started = true
            await ready
          }
          return guard(reader.read())
        }
        next().then(
          (chunk) => this.push(chunk),
          (e) => this.destroy(toError(e)),
        )
      },
    })
  }

  /** Closes the connection; later calls fail with `ERR_DATABASE_CLOSED`. */
  async close(): Promise<void> {
    if (this.#closed) return
    // Marked closed in the tick it goes: nothing made after it (a transaction waiting on the
    // same event included) can still start.
    for (;;) {
      let wait: Promise<void> | null
      try {
        wait = this.#blocker()
      } catch {
        return
      }
      if (wait === null) break
      await wait
    }
    this.#closed = true
    return guard(this.#native.close())
  }

  /**
   * Imports a SQLite file from `source` (a Node Readable, a web ReadableStream, or any
   * (async) iterable of Uint8Array chunks). Input that is not a whole SQLite database is refused
   * with `ERR_NOT_A_DATABASE` and nothing is left under the prefix; a prefix that holds a
   * database is refused with `ERR_DATABASE_EXISTS` unless `overwrite` is set.
   */
  static async deserialize(
    bucket: string,
    prefix: string,
    source: AsyncIterable<Uint8Array> | Iterable<Uint8Array> | ReadableStream<Uint8Array>,
    options?: DeserializeOptions,
  ): Promise<{ size: number }> {
    const sink = new Importer(bucket, prefix, options)
    try {
      for await (const chunk of source as AsyncIterable<Uint8Array>) await sink.write(chunk)
      return { size: await sink.finish() }
    } catch (e) {
      await sink.abort()
      throw toError(e)
    }
  }

  /** A Writable for `pipeline()` that imports what is written to it (see `deserialize`). */
  static createDeserializeStream(bucket: string, prefix: string, options?: DeserializeOptions): Writable {
    const sink = new Importer(bucket, prefix, options)
    let finished = false
    return new Writable({
      write(chunk: Uint8Array, _encoding, callback) {
        sink.write(chunk).then(
          () => callback(),
          (e) => callback(toError(e)),
        )
      },
      final(callback) {
        sink.finish().then(
          () => {
            finished = true
            callback()
          },
          (e) => callback(toError(e)),
        )
      },
      destroy(error, callback) {
        // Destroyed before the import finished, with or without an error: what it uploaded goes
        // (the native side keeps anything a sent root or block 0 may reference).
        if (finished) return callback(error)
        sink.abort().then(
          () => callback(error),
          () => callback(error),
        )
      },
    })
  }
}

/** Feeds chunks to the native importer, coalescing small ones (a 1-byte chunk must not cost a call). */
class Importer {
  #native: InstanceType<typeof native.NativeDeserializer>
  #pending: Buffer[] = []
  #pendingBytes = 0
  static readonly BATCH = 1 << 20

  constructor(bucket: string, prefix: string, options?: DeserializeOptions) {
    try {
      this.#native = new native.NativeDeserializer(bucket, prefix, nativeOptions(options, { bucket, prefix }), options?.overwrite ?? false)
    } catch (e) {
      throw toError(e)
    }
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (!(chunk instanceof Uint8Array)) {
      throw new SqliteS3Error('ERR_INVALID_ARGUMENT', `deserialize needs Uint8Array/Buffer chunks, got ${typeof chunk}`)
    }
    this.#pending.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))
    this.#pendingBytes += chunk.byteLength
    if (this.#pendingBytes >= Importer.BATCH) await this.#flush()
  }

  async #flush(): Promise<void> {
    if (this.#pendingBytes === 0) return
    const data = Buffer.concat(this.#pending, this.#pendingBytes)
    this.#pending = []
    this.#pendingBytes = 0
    await guard(this.#native.write(data))
  }

  async finish(): Promise<number> {
    await this.#flush()
    return guard(this.#native.finish())
  }

  async abort(): Promise<void> {
    this.#pending = []
    this.#pendingBytes = 0
    await this.#native.abort().catch(() => undefined)
  }
}
