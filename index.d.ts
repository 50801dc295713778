import { Readable, Writable } from 'node:stream';
/** Where and how to reach S3. Anything unset defaults the way the AWS SDKs do. */
export interface S3Options {
    /** Default: `AWS_REGION`, `AWS_DEFAULT_REGION`, the shared config; else `us-east-1`. */
    region?: string;
    /** An S3-compatible endpoint. Default: `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, else AWS. */
    endpoint?: string;
    /** Path-style addressing. Default: true when an endpoint is set, else false. */
    forcePathStyle?: boolean;
    /** Default: the standard chain (env, shared profile, web identity, container, instance). */
    credentials?: {
        accessKeyId: string;
        secretAccessKey: string;
        sessionToken?: string;
    };
    /** Same as `retry.maxAttempts` (kept for compatibility; `retry.maxAttempts` wins). */
    maxAttempts?: number;
    /** How transient failures are retried. See "Failures" in the README. */
    retry?: RetryOptions;
    /** How long one attempt may take before it is abandoned and retried. */
    timeouts?: TimeoutOptions;
    /**
     * S3 server-side encryption, sent on every PUT of every object this package writes (blocks,
     * roots, map segments, journals, imports, GC's clock probe, the conditional-write probe), for
     * buckets whose policy refuses a PUT without it. Not needed for a bucket's default encryption.
     */
    serverSideEncryption?: 'AES256' | 'aws:kms' | 'aws:kms:dsse';
    /** The KMS key for `serverSideEncryption: 'aws:kms'` (default: the account's `aws/s3` key). */
    sseKmsKeyId?: string;
    /** S3 Bucket Keys for SSE-KMS (fewer KMS requests). */
    bucketKeyEnabled?: boolean;
    /**
     * SSE-C: a 32-byte AES-256 key S3 encrypts the objects with and does not keep. Sent (with its
     * MD5) on every PUT, GET and HEAD; objects written with it can only be read with it. Never
     * logged or put in an error message. Not with `serverSideEncryption`.
     */
    sseCustomerKey?: Uint8Array;
}
/**
 * Retries of transient failures (5xx, timeouts, resets, a conditional request that raced another)
 * with jittered exponential backoff. A throttling answer (503 SlowDown, 429) also pauses every
 * request of the database for a while (it asks the client to slow down). Permanent failures (403,
 * a missing bucket, 400) are never retried.
 */
export interface RetryOptions {
    /** Attempts per request, including the first. Default 6. */
    maxAttempts?: number;
    /** First backoff after a transient failure, doubling per attempt. Default 100 ms. */
    baseDelayMs?: number;
    /** First backoff after a throttling answer, doubling per attempt. Default 500 ms. */
    throttleDelayMs?: number;
    /** Longest single backoff. Default 5000 ms. */
    maxDelayMs?: number;
    /** A request gives up after this long, attempts and backoffs included. Default 30000 ms. */
    totalMs?: number;
}
/** Per-attempt limits: a stalled request is cut short and sent again instead of hanging. */
export interface TimeoutOptions {
    /** Establishing a connection. Default 3100 ms. */
    connectMs?: number;
    /**
     * From sending a request to the first byte of its answer (a PUT also gets its body's size at
     * `minUploadRate`). Default 2000 ms (S3's guidance for retrying latency-sensitive GETs).
     */
    firstByteMs?: number;
    /** The longest pause while an answer's body is flowing. Default 2000 ms. */
    bodyStallMs?: number;
    /** Bytes per second an upload (or a ranged read) is given on top of `firstByteMs`. Default 1 MiB/s. */
    minUploadRate?: number;
    /** A LIST of a full page, whose whole answer (up to 1,000 keys) is read before it counts as answered
     *  (a short LIST, like the one that opens a database, gets `firstByteMs`). Default 5000 ms. */
    listMs?: number;
    /**
     * A write to a key that is written again and again (the `sqlite-s3vfs` layout's blocks and
     * journal) and any DELETE: such a request is not abandoned early, since one the server still
     * applies could land after a newer write of the same key. Default 15000 ms.
     */
    rewriteMs?: number;
}
export interface DatabaseOptions {
    s3?: S3Options;
    /**
     * Bytes per S3 object (any value >= 512; need not be a multiple of the page size). Default: 256 KiB
     * for a new `versioned` database (see the benchmark; an existing one keeps its own), 4096 for the
     * `sqlite-s3vfs` layout (the Python library's default; that layout does not record it).
     */
    blockSize?: number;
    /** Bytes of blocks kept in memory. Default 64 MiB. */
    cacheSize?: number;
    /** Parallel S3 requests for uploads and reads. Default 32. */
    concurrency?: number;
    /**
     * Blocks prefetched at most ahead of a sequential reader (a scan, an export): the window starts
     * at 2 after three consecutive blocks and doubles per block read. 0 turns read-ahead off.
     * Random lookups never prefetch. Default 32.
     */
    readAhead?: number;
    /**
     * Versioned layout: a local directory that keeps blocks across processes (a Lambda's `/tmp`),
     * so a cold start reads them from disk. Shared safely by several processes; deleting it any time
     * only costs misses. Blocks read from it are checked against the block map's CRC-32C.
     */
    cacheDir?: string;
    /** Bytes `cacheDir` may hold before its least recently used blocks are deleted. Default 1 GiB. */
    cacheDirSize?: number;
    /** Rows fetched per round trip by `iterate()`. Default 256. */
    iterateBatchSize?: number;
    /**
     * The storage layout of a *new* database (an existing prefix opens in the layout it holds):
     * `'versioned'` (default: atomic commits, snapshot reads, safe concurrent writers) or
     * `'sqlite-s3vfs'` (the Python library's format, readable and writable by it).
     */
    layout?: 'versioned' | 'sqlite-s3vfs';
    /** Versioned layout: open read-only at this older version (time travel). */
    version?: number;
    /**
     * Versioned layout: for this many milliseconds after a freshness check, reads skip the next one
     * (one GET per read transaction otherwise). Writes always check. Default 0.
     */
    maxStaleness?: number;
    /**
     * Versioned layout: skip the check that the store honours `If-None-Match` (needed to detect
     * concurrent writers); only for stores without conditional writes and a single writer.
     */
    singleWriter?: boolean;
    /**
     * `sqlite-s3vfs` layout: how long (ms) another process's journal must stay unchanged, with no
     * database block written meanwhile, before this connection takes its writer for dead and rolls
     * it back. Raise it when writers can stall longer (one block upload cut short by a network
     * stall, say). Default 60000.
     */
    hotJournalMs?: number;
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
    memoryLimit?: number;
    /**
     * Versioned layout: how new blocks are stored. `'zstd'` compresses each block object on its own
     * (a block that does not shrink is stored as it is); `'none'` stores them as SQLite wrote them.
     * The choice is recorded in the database, so readers need no option and a writer given none
     * keeps the recorded one; blocks written before a change stay as they are and read correctly.
     * A database that has used compression cannot be read by versions of this package before 0.2.
     * The memory cache holds blocks as SQLite reads them; `cacheDir` holds them as stored.
     */
    compression?: 'none' | 'zstd';
    /** zstd's level for `compression: 'zstd'`, 1 (fastest) to 22 (smallest). Default 3. */
    compressionLevel?: number;
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
    encryption?: EncryptionOptions;
    /**
     * Keep the objects somewhere other than S3: `{ dir: '/path' }` keeps them as files in a local
     * directory (each bucket a folder under it), with the same guarantees across processes — for
     * developing and testing an app with no S3 server. `s3` options are then ignored.
     */
    store?: {
        dir: string;
    };
    /**
     * Receives the request log: every S3 request at `debug` (method, key, status, bytes, ms,
     * attempt), retries and give-ups at `warn`, each as `(fields, message)` — pino, console, or any
     * object with `debug` and `warn`. Never a credential or a signature. `DEBUG=sqlite-s3vfs` in
     * the environment logs to stderr when no logger is given.
     */
    logger?: Logger;
}
/** What `options.logger` needs: pino and console fit. */
export interface Logger {
    debug(fields: RequestLogFields, message: string): void;
    warn(fields: RequestLogFields, message: string): void;
}
/** The fields of a request-log line. */
export interface RequestLogFields {
    method: 'GET' | 'PUT' | 'LIST' | 'DELETE' | 'HEAD';
    key: string;
    /** 200, 304, 404, or the error's code. */
    status: string;
    bytes: number;
    ms: number;
    attempt: number;
}
export interface TransactionOptions {
    behavior?: 'deferred' | 'immediate' | 'exclusive';
    /**
     * Runs `fn` again (up to this many times, with jittered backoff) when the commit loses to
     * another writer (`SQLITE_BUSY`): `fn` must be safe to repeat. Default 0.
     */
    retries?: number;
}
/** Which database a key is asked for (the `S3Database`'s own bucket and prefix). */
export interface KeyProviderContext {
    bucket: string;
    prefix: string;
}
export interface EncryptionOptions {
    /** 32 bytes (e.g. `crypto.randomBytes(32)`, or from a KMS data key). Give this or `keyProvider`. */
    key?: Uint8Array;
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
    keyProvider?: (keyId: string, database: KeyProviderContext) => Promise<Uint8Array | null | undefined> | Uint8Array | null | undefined;
    /** How long `keyProvider` may take for one key, in ms (then `ERR_KEY_PROVIDER`). Default 30000. */
    keyProviderTimeoutMs?: number;
    /** Names the key in every object it seals (1 to 64 bytes, not secret). Default `'default'`. */
    keyId?: string;
    /** Rotated-out keys by id: they open the objects they sealed, and seal nothing new. */
    previousKeys?: Record<string, Uint8Array>;
}
export interface GcOptions extends Pick<DatabaseOptions, 's3' | 'concurrency' | 'store' | 'logger' | 'encryption'> {
    /** The newest versions always kept. Default 1. */
    keepVersions?: number;
    /**
     * Horizon in ms: versions replaced less than this long ago (a reader may still be on them) and
     * uploads of commits younger than this are kept. Default 1 hour. Below ~30 minutes a writer
     * stalled longer than the horizon could lose its uploads: use short values only when no writer
     * runs (tests, maintenance).
     */
    gracePeriodMs?: number;
    /**
     * Accept a `gracePeriodMs` below 30 minutes (the shortest that keeps a stalled writer's uploads
     * safe): only when no writer runs (tests, maintenance). Default false.
     */
    unsafeShortGracePeriod?: boolean;
    /** Report what would be pruned and deleted, and change nothing. Default false. */
    dryRun?: boolean;
    /** Called as the objects are deleted (from 0 to `total`), for a progress bar. What it throws is
     *  ignored. */
    onProgress?: (progress: {
        deleted: number;
        total: number;
    }) => void;
}
export interface GcReport {
    head: number;
    versionsKept: number;
    versionsPruned: number;
    objectsDeleted: number;
}
/** What `S3Database.inspect()` finds stored for a database (one LIST per 1,000 objects). */
export interface Inspection {
    /** `undefined`: no database under the prefix. */
    layout?: 'versioned' | 'sqlite-s3vfs';
    /** Objects and bytes stored (the sqlite-s3vfs layout's journal included). */
    objects: number;
    bytes: number;
    /** Versioned layout: every version whose root is stored, oldest first; `pruned` ones were
     *  garbage-collected (only their tombstone is left). */
    versions: {
        version: number;
        createdMs?: number;
        pruned: boolean;
    }[];
}
export interface DeserializeOptions extends DatabaseOptions {
    /** Replace a database that already exists under the prefix. Default false. */
    overwrite?: boolean;
}
/** A value bound to a parameter. Booleans bind as 1/0, undefined as NULL. */
export type SqlValue = number | bigint | string | Buffer | Uint8Array | boolean | null | undefined;
/** Positional (`?`) parameters as an array, or named ones (`:a`, `@a`, `$a`) as an object keyed without the sigil. */
export type Params = readonly SqlValue[] | Readonly<Record<string, SqlValue>>;
/** A column value as read: INTEGER beyond 2^53 is a bigint, BLOB a Buffer. */
export type ColumnValue = number | bigint | string | Buffer | null;
export type Row = Record<string, ColumnValue>;
export interface RunResult {
    changes: number;
    lastInsertRowid: number | bigint;
}
/** The defaults of `blockSize` (versioned; `compatBlockSize` for the sqlite-s3vfs layout), `cacheSize`, `memoryLimit`,
 *  `concurrency` and `readAhead` (see `DatabaseOptions`). */
export declare const defaults: Readonly<{
    blockSize: number;
    compatBlockSize: number;
    cacheSize: number;
    concurrency: number;
    readAhead: number;
    memoryLimit: number;
}>;
/** Counters since the database was opened. */
export interface Stats {
    get: number;
    put: number;
    list: number;
    delete: number;
    head: number;
    bytesDown: number;
    bytesUp: number;
    cacheHits: number;
    cacheMisses: number;
    /** Blocks read ahead of a sequential reader (each one GET, counted in `get` too). */
    prefetched: number;
    /** Requests sent again after a transient failure (not counted in `get`, `put`, ...), including a commit's resent root. */
    retries: number;
    /** Bytes of buffered writes (changed blocks, rollback journal) held in memory now. */
    buffered: number;
    /** The most `buffered` has been since open: about `memoryLimit` at most. */
    bufferedPeak: number;
}
/** Every error this package throws: `code` is an SQLite extended result code (`SQLITE_BUSY`,
 *  `SQLITE_CONSTRAINT_UNIQUE`, ...), an S3 error code (`NoSuchBucket`, `AccessDenied`, ...), a network
 *  error (`ECONNREFUSED`, ...) or one of ours (`ERR_...`). */
export declare class SqliteS3Error extends Error {
    readonly code: string;
    /**
     * What the caller can do about it: `'transient'` (the same call may succeed later),
     * `'throttled'` (transient, and the store asked for fewer requests), `'conflict'` (another writer
     * got there first: `SQLITE_BUSY`, run the transaction again), `'unknown-outcome'` (a commit may
     * or may not have landed: `settle()` tells) or `'permanent'` (it will fail the same way again).
     */
    readonly kind: ErrorKind;
    constructor(code: string, message: string, kind?: ErrorKind);
}
export type ErrorKind = 'transient' | 'throttled' | 'conflict' | 'unknown-outcome' | 'permanent';
/** What can run SQL: the database, and the same database inside `transaction()`. */
export interface Queryable {
    exec(sql: string): Promise<void>;
    run(sql: string, params?: Params): Promise<RunResult>;
    get<T = Row>(sql: string, params?: Params): Promise<T | undefined>;
    all<T = Row>(sql: string, params?: Params): Promise<T[]>;
    iterate<T = Row>(sql: string, params?: Params): AsyncIterableIterator<T>;
    prepare(sql: string): Promise<Statement>;
}
/** A prepared statement: compiled once, run many times. */
export declare class Statement {
    #private;
    /** The statement's SQL text. */
    readonly sql: string;
    /** Names of the result columns (empty for statements that return no rows). */
    readonly columns: readonly string[];
    /** @internal */
    constructor(db: S3Database, sql: string, columns: string[]);
    run(params?: Params): Promise<RunResult>;
    get<T = Row>(params?: Params): Promise<T | undefined>;
    all<T = Row>(params?: Params): Promise<T[]>;
    iterate<T = Row>(params?: Params): AsyncIterableIterator<T>;
    /** Releases the statement; later calls on it fail with `ERR_STATEMENT_FINALIZED`. */
    finalize(): void;
}
/**
 * A SQLite database stored in S3 under `prefix`, in blocks of `blockSize` bytes
 * (`{prefix}/0000000000`, ...: the format of the Python library `sqlite-s3vfs`).
 * Opens lazily on first use; `open()` surfaces configuration and access errors early.
 */
export declare class S3Database implements Queryable {
    #private;
    readonly bucket: string;
    readonly prefix: string;
    constructor(bucket: string, prefix: string, options?: DatabaseOptions);
    /** Connects and reads the database header: fails now on a bad bucket, credentials or file. */
    open(): Promise<void>;
    /** Runs one or more SQL statements separated by semicolons. */
    exec(sql: string): Promise<void>;
    run(sql: string, params?: Params): Promise<RunResult>;
    get<T = Row>(sql: string, params?: Params): Promise<T | undefined>;
    all<T = Row>(sql: string, params?: Params): Promise<T[]>;
    /**
     * Rows one at a time, fetched in batches. Break out of the loop to stop early. An open
     * iterator holds a read transaction (its snapshot) until it ends: finish it, break out of the
     * loop, or call `return()`. One that is dropped unfinished is closed when it is
     * garbage-collected; at most 1024 can be open at once (`ERR_TOO_MANY_ITERATORS`).
     */
    iterate<T = Row>(sql: string, params?: Params): AsyncIterableIterator<T>;
    prepare(sql: string): Promise<Statement>;
    /**
     * Runs `fn` in a transaction: COMMIT when it resolves, ROLLBACK when it throws. Other calls
     * on this database wait until it ends; calls on `db` itself from inside `fn` join it, and a
     * nested `transaction()` becomes a savepoint.
     */
    transaction<T>(fn: (tx: Queryable) => Promise<T>, options?: TransactionOptions): Promise<T>;
    /**
     * Versioned layout: after a commit failed with `ERR_COMMIT_UNKNOWN` (the store stopped
     * answering after the commit was sent), tells whether it landed: `'committed'` (do not run the
     * transaction again), `'lost'` (nothing of it is visible: run it again if still wanted) or
     * `'none'` (no commit of unknown outcome is pending). Rejects with `ERR_COMMIT_UNKNOWN` while
     * the store still cannot tell (call again later), or `ERR_COMMIT_UNDECIDABLE` when the version
     * was garbage-collected before it could be settled. The next write on this connection settles
     * it first anyway.
     */
    settle(): Promise<'committed' | 'lost' | 'none'>;
    /** Versioned layout: the version this connection reads (0 before the first read, and in the `sqlite-s3vfs` layout). */
    get version(): number;
    /** The layout of the database (known once it is open). */
    get layout(): 'versioned' | 'sqlite-s3vfs' | undefined;
    /** The block size in bytes (known once it is open): a versioned database's own, whatever the
     *  options say; in the `sqlite-s3vfs` layout, the `blockSize` option (that format records none). */
    get blockSize(): number | undefined;
    /**
     * Versioned layout: deletes what no retained version needs (old versions' blocks and map
     * segments, losing writers' leftovers). Safe beside running readers and writers; see `GcOptions`.
     */
    static gc(bucket: string, prefix: string, options?: GcOptions): Promise<GcReport>;
    /** What is stored for a database: its layout, objects, bytes and versions. Reads no object. */
    static inspect(bucket: string, prefix: string, options?: Pick<DatabaseOptions, 's3' | 'store'>): Promise<Inspection>;
    /**
     * Makes the statement running now fail with `SQLITE_INTERRUPT` (a long query, from a timer or
     * a Ctrl-C handler); the database stays usable, and a write transaction it was part of rolls
     * back. Does nothing when no statement runs.
     */
    interrupt(): void;
    /** Request and cache counters since open. */
    stats(): Stats;
    /**
     * The database as a regular SQLite file, streamed with backpressure (pass it as the `Body` of
     * an `@aws-sdk/lib-storage` `Upload`, or pipe it to a file). It includes every write made
     * before the call; the blocks are read in parallel, off the connection thread.
     */
    serialize(): Readable;
    /** Closes the connection; later calls fail with `ERR_DATABASE_CLOSED`. */
    close(): Promise<void>;
    /**
     * Imports a SQLite file from `source` (a Node Readable, a web ReadableStream, or any
     * (async) iterable of Uint8Array chunks). Input that is not a whole SQLite database is refused
     * with `ERR_NOT_A_DATABASE` and nothing is left under the prefix; a prefix that holds a
     * database is refused with `ERR_DATABASE_EXISTS` unless `overwrite` is set.
     */
    static deserialize(bucket: string, prefix: string, source: AsyncIterable<Uint8Array> | Iterable<Uint8Array> | ReadableStream<Uint8Array>, options?: DeserializeOptions): Promise<{
        size: number;
    }>;
    /** A Writable for `pipeline()` that imports what is written to it (see `deserialize`). */
    static createDeserializeStream(bucket: string, prefix: string, options?: DeserializeOptions): Writable;
}
