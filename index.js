"use strict";
// The public API of sqlite-s3vfs: a typed, Promise-based wrapper over the native addon.
// Every call goes to the database's own connection thread; nothing here blocks the event loop.
Object.defineProperty(exports, "__esModule", { value: true });
exports.S3Database = exports.Statement = exports.SqliteS3Error = exports.defaults = void 0;
const node_async_hooks_1 = require("node:async_hooks");
const node_stream_1 = require("node:stream");
// The napi-generated loader (never hand-edited) picks the binary for this platform: a file next to
// this one (a build from source), else the platform package npm installed as an optional
// dependency (`sqlite-s3vfs-linux-x64-gnu`, ...).
const native = loadNative();
function loadNative() {
    try {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        return require('./binding.js');
    }
    catch (e) {
        const err = new Error(nativeLoadMessage(e), { cause: e });
        err.code = 'ERR_NATIVE_BINDING';
        throw err;
    }
}
/** Says which platform had no binary, why (every attempt's reason), and what to do. */
function nativeLoadMessage(e) {
    let libc = '';
    if (process.platform === 'linux') {
        const header = process.report?.getReport()?.header;
        libc = header?.glibcVersionRuntime ? ` (glibc ${header.glibcVersionRuntime})` : ' (musl)';
    }
    const reasons = [];
    for (let c = e; c instanceof Error && reasons.length < 8; c = c.cause)
        reasons.push(c.message.split('\n')[0]);
    return (`sqlite-s3vfs could not load its native binary for ${process.platform}-${process.arch}${libc}. ` +
        'Prebuilt binaries exist for Linux x64/arm64 (glibc >= 2.17, or musl), macOS x64/arm64 and Windows x64; ' +
        'npm installs the one for this machine as an optional dependency, so reinstall here without ' +
        '--omit=optional / --no-optional (a node_modules copied from another OS or CPU lacks it): ' +
        'rm -rf node_modules package-lock.json && npm install. Under Deno, run with --allow-ffi. ' +
        'Elsewhere, build from source (README, Contributing). Reasons: ' +
        reasons.join('; '));
}
/** The defaults of `blockSize` (versioned; `compatBlockSize` for the sqlite-s3vfs layout), `cacheSize`, `memoryLimit`,
 *  `concurrency` and `readAhead` (see `DatabaseOptions`). */
exports.defaults = Object.freeze(native.defaults());
/** Every error this package throws: `code` is an SQLite extended result code (`SQLITE_BUSY`,
 *  `SQLITE_CONSTRAINT_UNIQUE`, ...), an S3 error code (`NoSuchBucket`, `AccessDenied`, ...), a network
 *  error (`ECONNREFUSED`, ...) or one of ours (`ERR_...`). */
class SqliteS3Error extends Error {
    code;
    /**
     * What the caller can do about it: `'transient'` (the same call may succeed later),
     * `'throttled'` (transient, and the store asked for fewer requests), `'conflict'` (another writer
     * got there first: `SQLITE_BUSY`, run the transaction again), `'unknown-outcome'` (a commit may
     * or may not have landed: `settle()` tells) or `'permanent'` (it will fail the same way again).
     */
    kind;
    constructor(code, message, kind = 'permanent') {
        super(message);
        this.name = 'SqliteS3Error';
        this.code = code;
        this.kind = kind;
    }
}
exports.SqliteS3Error = SqliteS3Error;
const KINDS = ['transient', 'throttled', 'conflict', 'unknown-outcome', 'permanent'];
/** Turns a native error (`[CODE|kind] message`) into a SqliteS3Error: the one place that does it. */
function toError(e) {
    if (e instanceof SqliteS3Error)
        return e;
    const message = e instanceof Error ? e.message : String(e);
    const m = /^\[([^\s|\]]+)(?:\|([a-z-]+))?\] ([\s\S]*)$/.exec(message);
    if (m)
        return new SqliteS3Error(m[1], m[3], KINDS.includes(m[2]) ? m[2] : 'permanent');
    const code = e?.code;
    if (typeof code === 'string' && code !== 'GenericFailure')
        return new SqliteS3Error(code, message);
    return new SqliteS3Error('ERR_INVALID_ARGUMENT', message);
}
async function guard(p) {
    try {
        // A call, so that what it throws at once (reading its arguments) is converted too.
        return await (typeof p === 'function' ? p() : p);
    }
    catch (e) {
        throw toError(e);
    }
}
/**
 * A typed array's own getter for `name`: what it really holds, not what a subclass or a Proxy
 * says (an overridden `byteOffset` could point a key at other bytes of the same pool).
 */
const typedArrayGetter = (name) => Object.getOwnPropertyDescriptor(Object.getPrototypeOf(Uint8Array.prototype), name).get;
const [ownBuffer, ownByteOffset, ownByteLength, ownType] = ['buffer', 'byteOffset', 'byteLength', Symbol.toStringTag].map(typedArrayGetter);
/**
 * A Buffer over the bytes a Uint8Array (a Buffer, or one from another realm) really holds, found
 * through its own slots (no copy left behind); undefined for anything else: a Proxy, another
 * kind of view, an object given Uint8Array's prototype, a detached buffer.
 */
function ownBytes(v) {
    // Undefined, never a throw, for what is not a typed array.
    if (ownType.call(v) !== 'Uint8Array')
        return undefined;
    try {
        return Buffer.from(ownBuffer.call(v), ownByteOffset.call(v), ownByteLength.call(v));
    }
    catch {
        return undefined;
    }
}
/**
 * A key's 32 bytes, copied into a Buffer of its own: not a slice of Node's shared pool, and not
 * the caller's memory, which it may wipe, shrink or detach while native code still reads it.
 * Undefined if `k` is not a Uint8Array of 32 bytes.
 */
function keyCopy(k) {
    const bytes = ownBytes(k);
    if (bytes?.length !== 32)
        return undefined;
    const copy = Buffer.alloc(32);
    copy.set(bytes);
    return copy;
}
function toNativeValue(v) {
    if (v === undefined || v === null)
        return null;
    if (typeof v === 'boolean')
        return v ? 1 : 0;
    if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'string')
        return v;
    const bytes = ownBytes(v);
    if (bytes !== undefined)
        return bytes;
    throw new SqliteS3Error('ERR_INVALID_ARGUMENT', `cannot bind a value of type ${typeof v} (${Object.prototype.toString.call(v)})`);
}
function toNativeParams(params) {
    if (params === undefined)
        return undefined;
    if (Array.isArray(params))
        return { positional: params.map(toNativeValue) };
    if (typeof params === 'object' && params !== null && !Buffer.isBuffer(params) && !(params instanceof Uint8Array)) {
        const named = {};
        for (const [k, v] of Object.entries(params))
            named[k] = toNativeValue(v);
        return { named };
    }
    throw new SqliteS3Error('ERR_INVALID_ARGUMENT', 'parameters must be an array (positional) or an object (named)');
}
function toRows(r) {
    const n = r.columns.length;
    const out = [];
    if (n === 0)
        return out;
    for (let i = 0; i < r.values.length; i += n) {
        const row = {};
        for (let c = 0; c < n; c++)
            row[r.columns[c]] = r.values[i + c];
        out.push(row);
    }
    return out;
}
/** Whether `DEBUG` names this package (`sqlite-s3vfs`, `sqlite-s3vfs*`, `*`). */
function debugEnabled() {
    return (process.env.DEBUG ?? '')
        .split(/[\s,]+/)
        .some((p) => p === '*' || p === 'sqlite-s3vfs' || p === 'sqlite-s3vfs*' || p === 'sqlite-s3vfs:*');
}
const stderrLogger = {
    debug: (_f, m) => process.stderr.write(`${m}\n`),
    warn: (_f, m) => process.stderr.write(`${m}\n`),
};
/** The native log callback for `logger`: a line per event; a logger that throws is ignored. */
function logCallback(logger) {
    if (!logger)
        return undefined;
    return (e) => {
        const fields = { method: e.method, key: e.key, status: e.status, bytes: e.bytes, ms: e.ms, attempt: e.attempt };
        const text = `sqlite-s3vfs ${e.level} ${e.method} ${e.key} ${e.status} ${e.bytes} B ${e.ms} ms attempt ${e.attempt}${e.message ? `: ${e.message}` : ''}`;
        try {
            const r = e.level === 'warn' ? logger.warn(fields, text) : logger.debug(fields, text);
            // An async logger that rejects is ignored too.
            if (r instanceof Promise)
                r.catch(() => undefined);
        }
        catch {
            // The log must never break a request.
        }
    };
}
/**
 * The key provider as the native side calls it: a promise that always fulfils, with a Buffer of
 * 32 bytes, null (a key it does not have), or a string saying why it failed. Never a rejection, so
 * the native side can tell the provider's failure from a promise dropped unsettled. What is wrong
 * with an answer is said by its type and length, never its bytes.
 */
function keyProviderCallback(provider, database) {
    return async (keyId) => {
        let key;
        try {
            key = await provider(keyId, database);
        }
        catch (e) {
            try {
                return thrownReason(e);
            }
            catch {
                return 'threw a value that cannot be shown as text';
            }
        }
        // Never throws: a Proxy or a forged view is told apart by its own slots, not read.
        return keyAnswer(key);
    };
}
/**
 * A provider's key, as the native side takes it (a copy: the provider may wipe its own as soon as
 * it returns, before native code reads it), or why it is not a key.
 */
function keyAnswer(key) {
    if (key === null || key === undefined)
        return null;
    const copy = keyCopy(key);
    if (copy !== undefined)
        return copy;
    const bytes = ownBytes(key);
    return bytes === undefined ? `gave ${typeof key}, not a Uint8Array of 32 bytes` : `gave ${bytes.length} bytes, not 32`;
}
/** Whatever a provider threw, as a message an error can carry, never the bytes of one it threw. */
function thrownReason(e) {
    const bytes = (v) => ArrayBuffer.isView(v) || v instanceof ArrayBuffer
        ? `threw ${v.byteLength} bytes (not shown)`
        : Array.isArray(v)
            ? `threw an array of ${v.length} items (not shown)`
            : undefined;
    const message = e instanceof Error ? e.message : e;
    const why = bytes(e) ?? bytes(message) ?? String(message);
    return why === '' ? 'threw without a message' : why;
}
function nativeOptions(o, database = { bucket: '', prefix: '' }) {
    if (o === undefined) {
        if (!debugEnabled())
            return undefined;
        o = {};
    }
    if (o.logger !== undefined && (typeof o.logger?.debug !== 'function' || typeof o.logger?.warn !== 'function')) {
        throw new SqliteS3Error('ERR_INVALID_ARGUMENT', 'logger must have debug and warn methods (pino and console do)');
    }
    const check = (name, v, min) => {
        if (v !== undefined && (!Number.isInteger(v) || v < min)) {
            throw new SqliteS3Error('ERR_INVALID_ARGUMENT', `${name} must be an integer >= ${min}, got ${v}`);
        }
    };
    check('blockSize', o.blockSize, 512);
    check('cacheSize', o.cacheSize, 0);
    check('concurrency', o.concurrency, 1);
    check('readAhead', o.readAhead, 0);
    check('cacheDirSize', o.cacheDirSize, 0);
    if (o.cacheDir !== undefined && (typeof o.cacheDir !== 'string' || o.cacheDir === '')) {
        throw new SqliteS3Error('ERR_INVALID_ARGUMENT', `cacheDir must be a non-empty path, got ${String(o.cacheDir)}`);
    }
    check('iterateBatchSize', o.iterateBatchSize, 1);
    check('version', o.version, 1);
    check('maxStaleness', o.maxStaleness, 0);
    check('hotJournalMs', o.hotJournalMs, 1000);
    check('memoryLimit', o.memoryLimit, 0);
    if (o.compression !== undefined && o.compression !== 'none' && o.compression !== 'zstd') {
        throw new SqliteS3Error('ERR_INVALID_ARGUMENT', `compression must be 'none' or 'zstd', got ${JSON.stringify(o.compression)}`);
    }
    const e = o.encryption;
    let key;
    let keyProvider;
    const previousKeys = [];
    if (e !== undefined) {
        // Lengths only in messages: never key bytes.
        if (typeof e !== 'object' || e === null) {
            throw new SqliteS3Error('ERR_INVALID_ARGUMENT', 'encryption must be an object with a key or a keyProvider');
        }
        // Each key is read once, and what is checked is the copy native code gets.
        const [provider, givenKey] = [e.keyProvider, e.key];
        if (provider !== undefined) {
            if (typeof provider !== 'function') {
                throw new SqliteS3Error('ERR_INVALID_ARGUMENT', 'encryption.keyProvider must be a function (keyId) => key');
            }
            if (givenKey !== undefined) {
                throw new SqliteS3Error('ERR_INVALID_ARGUMENT', 'encryption takes a key or a keyProvider, not both');
            }
            check('encryption.keyProviderTimeoutMs', e.keyProviderTimeoutMs, 1);
            keyProvider = keyProviderCallback(provider, database);
        }
        else {
            key = keyCopy(givenKey);
            if (key === undefined)
                throw new SqliteS3Error('ERR_INVALID_ARGUMENT', 'encryption.key must be 32 bytes (a Buffer or Uint8Array)');
        }
        for (const [keyId, k] of Object.entries(e.previousKeys ?? {})) {
            const copy = keyCopy(k);
            if (copy === undefined)
                throw new SqliteS3Error('ERR_INVALID_ARGUMENT', `encryption.previousKeys['${keyId}'] must be 32 bytes`);
            previousKeys.push({ keyId, key: copy });
        }
        const ids = [e.keyId ?? 'default', ...previousKeys.map((p) => p.keyId)];
        if (ids.some((id) => typeof id !== 'string' || Buffer.byteLength(id) < 1 || Buffer.byteLength(id) > 64)) {
            throw new SqliteS3Error('ERR_INVALID_ARGUMENT', 'encryption key ids must be 1 to 64 bytes');
        }
        if (o.layout === 'sqlite-s3vfs') {
            throw new SqliteS3Error('ERR_INVALID_ARGUMENT', 'encryption needs the versioned layout (the Python library reads the sqlite-s3vfs layout as it is)');
        }
    }
    if (o.compression === 'zstd' && o.layout === 'sqlite-s3vfs') {
        throw new SqliteS3Error('ERR_INVALID_ARGUMENT', 'compression needs the versioned layout (the Python library reads the sqlite-s3vfs layout as it is)');
    }
    if (o.compressionLevel !== undefined && o.compression !== 'zstd') {
        throw new SqliteS3Error('ERR_INVALID_ARGUMENT', "compressionLevel goes with compression: 'zstd'");
    }
    if (o.compressionLevel !== undefined && (!Number.isInteger(o.compressionLevel) || o.compressionLevel < 1 || o.compressionLevel > 22)) {
        throw new SqliteS3Error('ERR_INVALID_ARGUMENT', `compressionLevel must be an integer from 1 to 22, got ${o.compressionLevel}`);
    }
    if (o.store !== undefined && (typeof o.store !== 'object' || o.store === null || typeof o.store.dir !== 'string' || o.store.dir === '')) {
        throw new SqliteS3Error('ERR_INVALID_ARGUMENT', `store must be { dir: '<a local directory>' }, got ${JSON.stringify(o.store)}`);
    }
    const s3 = o.s3;
    let customerKey;
    if (s3?.endpoint !== undefined && !/^https?:\/\/[^/@?#]+(\/[^?#@]*)?$/.test(s3.endpoint)) {
        // User info or a query string would be repeated in every error message and log line.
        throw new SqliteS3Error('ERR_INVALID_ARGUMENT', 's3.endpoint must be http(s)://host[:port][/path], with no user info or query string');
    }
    if (s3 !== undefined) {
        const sse = s3.serverSideEncryption;
        if (sse !== undefined && sse !== 'AES256' && sse !== 'aws:kms' && sse !== 'aws:kms:dsse') {
            throw new SqliteS3Error('ERR_INVALID_ARGUMENT', `s3.serverSideEncryption must be 'AES256', 'aws:kms' or 'aws:kms:dsse', got ${JSON.stringify(sse)}`);
        }
        if (s3.sseKmsKeyId !== undefined && !sse?.startsWith('aws:kms')) {
            throw new SqliteS3Error('ERR_INVALID_ARGUMENT', "s3.sseKmsKeyId goes with serverSideEncryption 'aws:kms' or 'aws:kms:dsse'");
        }
        const customer = s3.sseCustomerKey;
        if (customer !== undefined) {
            // The key itself never appears in a message.
            customerKey = keyCopy(customer);
            if (customerKey === undefined) {
                throw new SqliteS3Error('ERR_INVALID_ARGUMENT', 's3.sseCustomerKey must be 32 bytes (a Buffer or Uint8Array)');
            }
            if (sse !== undefined) {
                throw new SqliteS3Error('ERR_INVALID_ARGUMENT', 's3.sseCustomerKey (SSE-C) and s3.serverSideEncryption cannot be combined');
            }
            // The key travels in a header of every request: never in the clear beyond this machine.
            const endpoint = s3.endpoint ?? process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL;
            if (endpoint?.startsWith('http://') && !/^http:\/\/(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?(\/|$)/.test(endpoint)) {
                throw new SqliteS3Error('ERR_INVALID_ARGUMENT', 's3.sseCustomerKey needs an https endpoint (the key is sent with every request)');
            }
        }
        if (s3.bucketKeyEnabled !== undefined && sse !== 'aws:kms') {
            throw new SqliteS3Error('ERR_INVALID_ARGUMENT', "s3.bucketKeyEnabled goes with serverSideEncryption 'aws:kms'");
        }
        if (o.store !== undefined && (sse !== undefined || customer !== undefined)) {
            throw new SqliteS3Error('ERR_INVALID_ARGUMENT', 'S3 server-side encryption options do not apply to a local directory store');
        }
        check('s3.maxAttempts', s3.maxAttempts, 1);
        const r = s3.retry ?? {};
        check('s3.retry.maxAttempts', r.maxAttempts, 1);
        check('s3.retry.baseDelayMs', r.baseDelayMs, 0);
        check('s3.retry.throttleDelayMs', r.throttleDelayMs, 0);
        check('s3.retry.maxDelayMs', r.maxDelayMs, 0);
        check('s3.retry.totalMs', r.totalMs, 1);
        const t = s3.timeouts ?? {};
        check('s3.timeouts.connectMs', t.connectMs, 1);
        check('s3.timeouts.firstByteMs', t.firstByteMs, 1);
        check('s3.timeouts.bodyStallMs', t.bodyStallMs, 1);
        check('s3.timeouts.minUploadRate', t.minUploadRate, 1);
        check('s3.timeouts.listMs', t.listMs, 1);
        check('s3.timeouts.rewriteMs', t.rewriteMs, 1);
    }
    if (o.layout !== undefined && o.layout !== 'versioned' && o.layout !== 'sqlite-s3vfs') {
        throw new SqliteS3Error('ERR_INVALID_ARGUMENT', `layout must be 'versioned' or 'sqlite-s3vfs', got ${String(o.layout)}`);
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
    };
}
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
/** A prepared statement: compiled once, run many times. */
class Statement {
    #db;
    #finalized = false;
    /** The statement's SQL text. */
    sql;
    /** Names of the result columns (empty for statements that return no rows). */
    columns;
    /** @internal */
    constructor(db, sql, columns) {
        this.#db = db;
        this.sql = sql;
        this.columns = columns;
    }
    #live() {
        if (this.#finalized)
            throw new SqliteS3Error('ERR_STATEMENT_FINALIZED', `the statement was finalized: ${this.sql}`);
    }
    async run(params) {
        this.#live();
        return this.#db.run(this.sql, params);
    }
    async get(params) {
        this.#live();
        return this.#db.get(this.sql, params);
    }
    async all(params) {
        this.#live();
        return this.#db.all(this.sql, params);
    }
    iterate(params) {
        this.#live();
        return this.#db.iterate(this.sql, params);
    }
    /** Releases the statement; later calls on it fail with `ERR_STATEMENT_FINALIZED`. */
    finalize() {
        this.#finalized = true;
    }
}
exports.Statement = Statement;
function newToken(db, parent, root) {
    const token = { db, active: true, closing: false, parent, depth: 0, child: null };
    token.root = root ?? token;
    return token;
}
/** The caller's innermost still-running transaction scope on `db` (a statement issued from a
 *  savepoint that has ended belongs to the scope that started it). */
function scopeFor(db) {
    for (let t = currentTx.getStore(); t !== undefined; t = t.parent ?? undefined) {
        if (t.db === db && t.active)
            return t;
    }
    return undefined;
}
/** Marks a scope as ending and waits for the nested transaction running from it (one queued
 *  behind it is then refused): nothing of a nested transaction may run after its parent ends. */
async function endScope(token) {
    token.closing = true;
    while (token.child !== null)
        await token.child.done;
}
const currentTx = new node_async_hooks_1.AsyncLocalStorage();
function closedError(db) {
    return new SqliteS3Error('ERR_DATABASE_CLOSED', `the database s3://${db.bucket}/${db.prefix} is closed`);
}
/** Closes iterators dropped unfinished: an open one holds its read transaction (and a frame on
 *  the connection thread) until it is closed. */
const abandonedIterators = new FinalizationRegistry((h) => {
    if (h.id !== null && !h.done) {
        h.done = true;
        h.native.iterateClose(h.id).catch(() => undefined);
    }
});
/**
 * A SQLite database stored in S3 under `prefix`, in blocks of `blockSize` bytes
 * (`{prefix}/0000000000`, ...: the format of the Python library `sqlite-s3vfs`).
 * Opens lazily on first use; `open()` surfaces configuration and access errors early.
 */
class S3Database {
    bucket;
    prefix;
    #native;
    #batch;
    /** The running transaction, and the promise that settles when it ends. */
    #tx = null;
    #closed = false;
    constructor(bucket, prefix, options) {
        if (typeof bucket !== 'string' || typeof prefix !== 'string') {
            throw new SqliteS3Error('ERR_INVALID_ARGUMENT', 'new S3Database(bucket, prefix, options?): bucket and prefix must be strings');
        }
        this.bucket = bucket;
        this.prefix = prefix;
        this.#batch = options?.iterateBatchSize ?? 256;
        try {
            this.#native = new native.NativeDatabase(bucket, prefix, nativeOptions(options, { bucket, prefix }));
        }
        catch (e) {
            throw toError(e);
        }
    }
    /** What the caller must wait for before its call may go to the connection: `null` when it
     *  may go now (no transaction, or the caller's own with no nested one running from its scope). */
    #blocker() {
        if (this.#closed)
            throw closedError(this);
        const tx = this.#tx;
        if (tx === null)
            return null;
        const mine = scopeFor(this);
        if (mine !== undefined && mine.root === tx.token)
            return mine.child?.done ?? null;
        return tx.done;
    }
    /** Waits until no transaction other than the caller's own is running. */
    async #turn() {
        for (let wait = this.#blocker(); wait !== null; wait = this.#blocker())
            await wait;
    }
    /**
     * Sends a call to the connection in its turn. When nothing is in the way it goes at once, in
     * the caller's tick: calls reach the connection in the order they were made, so a call made
     * before `transaction()` never lands inside it.
     */
    async #call(send) {
        // Checked again in the very tick the call is sent: a transaction() waiting on the same
        // event must not slip in between (an async helper in between would add ticks).
        for (let wait = this.#blocker(); wait !== null; wait = this.#blocker())
            await wait;
        // A value the native side cannot take (a bigint beyond 64 bits) throws as the call is made.
        let sent;
        try {
            sent = send();
        }
        catch (e) {
            throw toError(e);
        }
        return guard(sent);
    }
    /** Connects and reads the database header: fails now on a bad bucket, credentials or file. */
    async open() {
        return this.#call(() => this.#native.open());
    }
    /** Runs one or more SQL statements separated by semicolons. */
    async exec(sql) {
        return this.#call(() => this.#native.exec(sql));
    }
    async run(sql, params) {
        return this.#call(() => this.#native.run(sql, toNativeParams(params)));
    }
    async get(sql, params) {
        const r = await this.#call(() => this.#native.query(sql, toNativeParams(params), true));
        return toRows(r)[0];
    }
    async all(sql, params) {
        return toRows(await this.#call(() => this.#native.query(sql, toNativeParams(params), false)));
    }
    /**
     * Rows one at a time, fetched in batches. Break out of the loop to stop early. An open
     * iterator holds a read transaction (its snapshot) until it ends: finish it, break out of the
     * loop, or call `return()`. One that is dropped unfinished is closed when it is
     * garbage-collected; at most 1024 can be open at once (`ERR_TOO_MANY_ITERATORS`).
     */
    iterate(sql, params) {
        const handle = { native: this.#native, id: null, done: false };
        const rows = this.#rows(sql, params, handle);
        // The generator itself is what the caller holds: while it runs (awaiting the native side)
        // it is reachable, so the registry only ever sees one suspended at a `yield`, or never started.
        abandonedIterators.register(rows, handle);
        return rows;
    }
    async *#rows(sql, params, handle) {
        handle.id = await this.#call(() => this.#native.iterateStart(sql, toNativeParams(params)));
        try {
            while (!handle.done) {
                let batch;
                try {
                    batch = await guard(this.#native.iterateNext(handle.id, this.#batch));
                }
                catch (e) {
                    // An SQL or I/O error ends the native iterator; an out-of-order call does not.
                    if (e.code !== 'ERR_ITERATOR_ORDER')
                        handle.done = true;
                    throw e;
                }
                handle.done = batch.done;
                for (const row of toRows(batch))
                    yield row;
            }
        }
        finally {
            // Broken off (break, return(), throw(), an error): close the native side.
            if (!handle.done) {
                handle.done = true;
                await guard(this.#native.iterateClose(handle.id)).catch(() => undefined);
            }
        }
    }
    async prepare(sql) {
        const columns = await this.#call(() => this.#native.prepare(sql));
        return new Statement(this, sql, columns);
    }
    /**
     * Runs `fn` in a transaction: COMMIT when it resolves, ROLLBACK when it throws. Other calls
     * on this database wait until it ends; calls on `db` itself from inside `fn` join it, and a
     * nested `transaction()` becomes a savepoint.
     */
    async transaction(fn, options) {
        const retries = options?.retries ?? 0;
        if (!Number.isInteger(retries) || retries < 0) {
            throw new SqliteS3Error('ERR_INVALID_ARGUMENT', `retries must be an integer >= 0, got ${retries}`);
        }
        const mine = scopeFor(this);
        // Inside a transaction of this database: a savepoint (a lost race reruns the outer one).
        if (mine !== undefined)
            return this.#savepoint(mine, fn);
        for (let attempt = 0;; attempt++) {
            try {
                return await this.#transactionOnce(fn, options);
            }
            catch (e) {
                if (!(e instanceof SqliteS3Error) || e.code !== 'SQLITE_BUSY' || attempt >= retries)
                    throw e;
                // Jittered exponential backoff: racing writers spread out instead of colliding again.
                await sleep(Math.random() * Math.min(1000, 10 * 2 ** attempt));
            }
        }
    }
    /**
     * A nested transaction: a savepoint. Savepoints are one stack per connection, so nested
     * transactions started concurrently from one context (`Promise.all`) run one after another:
     * otherwise a failing sibling's `ROLLBACK TO` would undo a sibling that already resolved.
     */
    async #savepoint(parent, fn) {
        while (parent.child !== null)
            await parent.child.done;
        if (!parent.active || parent.closing) {
            throw new SqliteS3Error('ERR_TRANSACTION_ENDED', 'the enclosing transaction ended before this nested transaction could start');
        }
        let end;
        parent.child = { done: new Promise((resolve) => (end = resolve)) };
        const token = newToken(this, parent, parent.root);
        const name = `s3vfs_sp${++parent.root.depth}`;
        try {
            return await currentTx.run(token, async () => {
                await this.exec(`SAVEPOINT ${name}`);
                let result;
                try {
                    result = await fn(this);
                }
                catch (e) {
                    await endScope(token);
                    // Keep the caller's error: a failed ROLLBACK TO (SQLite already rolled the whole
                    // transaction back after an I/O error) must not replace it.
                    await this.exec(`ROLLBACK TO ${name}; RELEASE ${name}`).catch(() => undefined);
                    throw e;
                }
                await endScope(token);
                await this.exec(`RELEASE ${name}`);
                return result;
            });
        }
        finally {
            token.active = false;
            parent.child = null;
            end();
        }
    }
    async #transactionOnce(fn, options) {
        const behavior = (options?.behavior ?? 'deferred').toUpperCase();
        if (!['DEFERRED', 'IMMEDIATE', 'EXCLUSIVE'].includes(behavior)) {
            throw new SqliteS3Error('ERR_INVALID_ARGUMENT', `unknown transaction behavior ${options?.behavior}`);
        }
        // Claim the database: at once when it is free (a call made in the same tick after this one
        // must wait for the transaction, not slip into it), else after the running one ends.
        for (;;) {
            if (this.#closed)
                throw closedError(this);
            if (this.#tx === null)
                break;
            await this.#tx.done;
        }
        const token = newToken(this, currentTx.getStore() ?? null, null);
        let end;
        this.#tx = { token, done: new Promise((resolve) => (end = resolve)) };
        try {
            return await currentTx.run(token, async () => {
                await guard(this.#native.exec(`BEGIN ${behavior}`));
                let result;
                try {
                    result = await fn(this);
                }
                catch (e) {
                    await endScope(token);
                    await guard(this.#native.exec('ROLLBACK')).catch(() => undefined);
                    throw e;
                }
                await endScope(token);
                try {
                    await guard(this.#native.exec('COMMIT'));
                }
                catch (e) {
                    await guard(this.#native.exec('ROLLBACK')).catch(() => undefined);
                    throw e;
                }
                return result;
            });
        }
        finally {
            token.active = false;
            this.#tx = null;
            end();
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
    async settle() {
        return (await this.#call(() => this.#native.settle()));
    }
    /** Versioned layout: the version this connection reads (0 before the first read, and in the `sqlite-s3vfs` layout). */
    get version() {
        return this.#native.version();
    }
    /** The layout of the database (known once it is open). */
    get layout() {
        return (this.#native.layout() ?? undefined);
    }
    /** The block size in bytes (known once it is open): a versioned database's own, whatever the
     *  options say; in the `sqlite-s3vfs` layout, the `blockSize` option (that format records none). */
    get blockSize() {
        return this.#native.blockSize() ?? undefined;
    }
    /**
     * Versioned layout: deletes what no retained version needs (old versions' blocks and map
     * segments, losing writers' leftovers). Safe beside running readers and writers; see `GcOptions`.
     */
    static async gc(bucket, prefix, options) {
        const keep = options?.keepVersions;
        if (keep !== undefined && (!Number.isInteger(keep) || keep < 1)) {
            throw new SqliteS3Error('ERR_INVALID_ARGUMENT', `keepVersions must be an integer >= 1, got ${keep}`);
        }
        const grace = options?.gracePeriodMs;
        if (grace !== undefined && (typeof grace !== 'number' || !(grace >= 0) || grace > Number.MAX_SAFE_INTEGER)) {
            throw new SqliteS3Error('ERR_INVALID_ARGUMENT', `gracePeriodMs must be a number from 0 to ${Number.MAX_SAFE_INTEGER}, got ${grace}`);
        }
        const report = options?.onProgress;
        if (report !== undefined && typeof report !== 'function') {
            throw new SqliteS3Error('ERR_INVALID_ARGUMENT', 'onProgress must be a function');
        }
        const onProgress = report
            ? (p) => {
                try {
                    const r = report({ deleted: p.deleted, total: p.total });
                    // An async callback that rejects is ignored too.
                    if (r instanceof Promise)
                        r.catch(() => undefined);
                }
                catch {
                    // A progress display that fails must not fail the collection.
                }
            }
            : undefined;
        const o = () => nativeOptions({
            s3: options?.s3,
            concurrency: options?.concurrency,
            store: options?.store,
            logger: options?.logger,
            encryption: options?.encryption,
        }, { bucket, prefix });
        return guard(() => native.collectGarbage(bucket, prefix, o(), {
            keepVersions: keep,
            gracePeriodMs: grace,
            unsafeShortGracePeriod: options?.unsafeShortGracePeriod,
            dryRun: options?.dryRun,
            onProgress,
        }));
    }
    /** What is stored for a database: its layout, objects, bytes and versions. Reads no object. */
    static async inspect(bucket, prefix, options) {
        const r = await guard(() => native.inspectDatabase(bucket, prefix, nativeOptions({ s3: options?.s3, store: options?.store })));
        return {
            ...(r.layout ? { layout: r.layout } : {}),
            objects: r.objects,
            bytes: r.bytes,
            versions: r.versions.map((v) => ({
                version: v.version,
                ...(v.createdMs === undefined || v.createdMs === null ? {} : { createdMs: v.createdMs }),
                pruned: v.pruned,
            })),
        };
    }
    /**
     * Makes the statement running now fail with `SQLITE_INTERRUPT` (a long query, from a timer or
     * a Ctrl-C handler); the database stays usable, and a write transaction it was part of rolls
     * back. Does nothing when no statement runs.
     */
    interrupt() {
        this.#native.interrupt();
    }
    /** Request and cache counters since open. */
    stats() {
        return this.#native.stats();
    }
    /**
     * The database as a regular SQLite file, streamed with backpressure (pass it as the `Body` of
     * an `@aws-sdk/lib-storage` `Upload`, or pipe it to a file). It includes every write made
     * before the call; the blocks are read in parallel, off the connection thread.
     */
    serialize() {
        if (this.#closed) {
            // Fails when first read, like any other error of the stream: not a throw, and never an
            // unhandled rejection (a consumer such as `Upload` reads only after awaiting something).
            const error = closedError(this);
            return new node_stream_1.Readable({
                read() {
                    this.destroy(error);
                },
            });
        }
        const reader = new native.NativeSerializer(this.#native);
        const ready = this.#turn();
        // Observed at once (and again when the stream first reads): a close before the first read
        // must surface as a stream error, not as an unhandled rejection.
        ready.catch(() => undefined);
        let started = false;
        return new node_stream_1.Readable({
            highWaterMark: 1 << 20,
            read() {
                const next = async () => {
                    if (!started) {
                        started = true;
                        await ready;
                    }
                    return guard(reader.read());
                };
                next().then((chunk) => this.push(chunk), (e) => this.destroy(toError(e)));
            },
        });
    }
    /** Closes the connection; later calls fail with `ERR_DATABASE_CLOSED`. */
    async close() {
        if (this.#closed)
            return;
        // Marked closed in the tick it goes: nothing made after it (a transaction waiting on the
        // same event included) can still start.
        for (;;) {
            let wait;
            try {
                wait = this.#blocker();
            }
            catch {
                return;
            }
            if (wait === null)
                break;
            await wait;
        }
        this.#closed = true;
        return guard(this.#native.close());
    }
    /**
     * Imports a SQLite file from `source` (a Node Readable, a web ReadableStream, or any
     * (async) iterable of Uint8Array chunks). Input that is not a whole SQLite database is refused
     * with `ERR_NOT_A_DATABASE` and nothing is left under the prefix; a prefix that holds a
     * database is refused with `ERR_DATABASE_EXISTS` unless `overwrite` is set.
     */
    static async deserialize(bucket, prefix, source, options) {
        const sink = new Importer(bucket, prefix, options);
        try {
            for await (const chunk of source)
                await sink.write(chunk);
            return { size: await sink.finish() };
        }
        catch (e) {
            await sink.abort();
            throw toError(e);
        }
    }
    /** A Writable for `pipeline()` that imports what is written to it (see `deserialize`). */
    static createDeserializeStream(bucket, prefix, options) {
        const sink = new Importer(bucket, prefix, options);
        let finished = false;
        return new node_stream_1.Writable({
            write(chunk, _encoding, callback) {
                sink.write(chunk).then(() => callback(), (e) => callback(toError(e)));
            },
            final(callback) {
                sink.finish().then(() => {
                    finished = true;
                    callback();
                }, (e) => callback(toError(e)));
            },
            destroy(error, callback) {
                // Destroyed before the import finished, with or without an error: what it uploaded goes
                // (the native side keeps anything a sent root or block 0 may reference).
                if (finished)
                    return callback(error);
                sink.abort().then(() => callback(error), () => callback(error));
            },
        });
    }
}
exports.S3Database = S3Database;
/** Feeds chunks to the native importer, coalescing small ones (a 1-byte chunk must not cost a call). */
class Importer {
    #native;
    #pending = [];
    #pendingBytes = 0;
    static BATCH = 1 << 20;
    constructor(bucket, prefix, options) {
        try {
            this.#native = new native.NativeDeserializer(bucket, prefix, nativeOptions(options, { bucket, prefix }), options?.overwrite ?? false);
        }
        catch (e) {
            throw toError(e);
        }
    }
    async write(chunk) {
        if (!(chunk instanceof Uint8Array)) {
            throw new SqliteS3Error('ERR_INVALID_ARGUMENT', `deserialize needs Uint8Array/Buffer chunks, got ${typeof chunk}`);
        }
        this.#pending.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        this.#pendingBytes += chunk.byteLength;
        if (this.#pendingBytes >= Importer.BATCH)
            await this.#flush();
    }
    async #flush() {
        if (this.#pendingBytes === 0)
            return;
        const data = Buffer.concat(this.#pending, this.#pendingBytes);
        this.#pending = [];
        this.#pendingBytes = 0;
        await guard(this.#native.write(data));
    }
    async finish() {
        await this.#flush();
        return guard(this.#native.finish());
    }
    async abort() {
        this.#pending = [];
        this.#pendingBytes = 0;
        await this.#native.abort().catch(() => undefined);
    }
}
