#!/usr/bin/env node
"use strict";
// The `sqlite-s3vfs` command line: chores on a database in a bucket (or a local directory) from a
// terminal or a script. Arguments by node:util's parseArgs (no dependency, strict), tables by
// cli-table3, CSV by csv-stringify, progress bars by cli-progress (on a TTY only).
//
// Exit codes: 0 ok, 1 runtime error (one line on stderr with its code), 2 usage.
var __createBinding = (this && this.__createBinding) || (Object.create ? (function(o, m, k, k2) {
    if (k2 === undefined) k2 = k;
    var desc = Object.getOwnPropertyDescriptor(m, k);
    if (!desc || ("get" in desc ? !m.__esModule : desc.writable || desc.configurable)) {
      desc = { enumerable: true, get: function() { return m[k]; } };
    }
    Object.defineProperty(o, k2, desc);
}) : (function(o, m, k, k2) {
    if (k2 === undefined) k2 = k;
    o[k2] = m[k];
}));
var __setModuleDefault = (this && this.__setModuleDefault) || (Object.create ? (function(o, v) {
    Object.defineProperty(o, "default", { enumerable: true, value: v });
}) : function(o, v) {
    o["default"] = v;
});
var __importStar = (this && this.__importStar) || (function () {
    var ownKeys = function(o) {
        ownKeys = Object.getOwnPropertyNames || function (o) {
            var ar = [];
            for (var k in o) if (Object.prototype.hasOwnProperty.call(o, k)) ar[ar.length] = k;
            return ar;
        };
        return ownKeys(o);
    };
    return function (mod) {
        if (mod && mod.__esModule) return mod;
        var result = {};
        if (mod != null) for (var k = ownKeys(mod), i = 0; i < k.length; i++) if (k[i] !== "default") __createBinding(result, mod, k[i]);
        __setModuleDefault(result, mod);
        return result;
    };
})();
var __importDefault = (this && this.__importDefault) || function (mod) {
    return (mod && mod.__esModule) ? mod : { "default": mod };
};
Object.defineProperty(exports, "__esModule", { value: true });
exports.main = main;
const node_fs_1 = require("node:fs");
const node_stream_1 = require("node:stream");
const promises_1 = require("node:stream/promises");
const node_util_1 = require("node:util");
const ms_1 = __importDefault(require("ms"));
const index_1 = require("../index");
const USAGE = {
    main: `Usage: sqlite-s3vfs <command> [options]

Commands:
  import <file|-> <url>        import a SQLite file (or stdin) as a database
  export <url> <file|->        export a database as a SQLite file (or to stdout)
  query <url> <sql> [params]   run SQL; rows as a table (TTY), --json, --nl or --csv
  shell <url>                  an interactive SQL prompt (.tables, .schema, .stats, .help)
  info <url>                   layout, version, sizes, objects stored, oldest version (--json)
  versions <url>               the stored versions and when each was created (--json)
  gc <url>                     delete what no kept version needs (versioned layout)

Addresses: s3://bucket/prefix, or file:///dir/bucket/prefix for the local directory store
(the database under dir/bucket; for a prefix with slashes, s3://bucket/a/b --dir <dir>).
S3 settings come from the AWS environment and profile.

Options for every command:
  --endpoint <url>   --region <name>   --profile <name>
  --dir <path>       the local directory store at <path> instead of S3
  --key-file <path>  an encrypted database's key (or SQLITE_S3VFS_KEY): 64 hex digits,
                     base64, or 32 raw bytes; never a flag value   --key-id <id>
  --previous-key-file <id=path>   a rotated-out key (repeat for more)
  --sse AES256|aws:kms|aws:kms:dsse   --sse-kms-key-id <id>   S3 server-side encryption
  --sse-c-key-file <path>  an SSE-C key (or SQLITE_S3VFS_SSE_C_KEY), as for --key-file
  --quiet            no progress bar
  --debug            the request log on stderr, and stack traces on errors
  --help             help for a command

sqlite-s3vfs --version prints the version of sqlite-s3vfs.`,
    import: `Usage: sqlite-s3vfs import <file|-> <url> [--overwrite] [--layout versioned|sqlite-s3vfs] [--block-size N]`,
    export: `Usage: sqlite-s3vfs export <url> <file|-> [--version N] [--block-size N]`,
    query: `Usage: sqlite-s3vfs query <url> <sql> [params...] [--json | --nl | --csv] [--version N] [--block-size N]

--version N reads version N of a versioned database (see \`versions\`).
--block-size N opens a database of the sqlite-s3vfs layout written with N-byte blocks (that
format does not record it; the default is 4096).`,
    info: `Usage: sqlite-s3vfs info <url> [--json] [--block-size N]`,
    shell: `Usage: sqlite-s3vfs shell <url> [--block-size N]

Statements end with ';' and may span lines. Ctrl-C interrupts the running statement or drops
the one being typed; Ctrl-D or .quit leaves. History is kept in
~/.sqlite_s3vfs_history.
  .tables            the tables
  .schema [table]    CREATE statements
  .stats             requests and bytes since the shell started
  .help  .quit`,
    versions: `Usage: sqlite-s3vfs versions <url> [--json]`,
    gc: `Usage: sqlite-s3vfs gc <url> [--keep N] [--grace DURATION] [--unsafe-short-grace] [--dry-run]

  --keep N            versions to keep (default 1)
  --grace DURATION    keep what was written within DURATION (30m, 2h, 1d; default 1h)
  --unsafe-short-grace  allow a grace under 30 minutes (only when no writer is running)
  --dry-run           report what would be deleted, and delete nothing`,
};
class UsageError extends Error {
}
/** `s3://bucket/prefix` (in S3, or with --dir in that local directory store), or
 *  `file:///dir/bucket/prefix` (the last two path segments are the bucket and a one-segment
 *  prefix; the rest is the directory: a path cannot say where the directory ends otherwise). */
function parseAddress(url, flags) {
    const a = withKey(storeAddress(url, flags), flags);
    // The sqlite-s3vfs layout records no block size: a database written with another than 4096
    // must be opened with the one it was written with (a versioned one keeps its own).
    const blockSize = integer('block-size', flags['block-size'], 512);
    return blockSize === undefined ? a : { ...a, options: { ...a.options, blockSize } };
}
/** The encryption key, from SQLITE_S3VFS_KEY or --key-file (64 hex digits, base64, or a file of
 *  32 raw bytes): never from a flag's value, which would sit in the shell history and `ps`. */
function withKey(a, flags) {
    const key = secretKey('the key', 'SQLITE_S3VFS_KEY', '--key-file', flags['key-file']);
    const previous = flags['previous-key-file'] ?? [];
    if (!key) {
        if (flags['key-id'] !== undefined || previous.length)
            throw new UsageError('--key-id and --previous-key-file go with a key (SQLITE_S3VFS_KEY or --key-file)');
        return a;
    }
    // Rotated-out keys, `id=path` each: they open what they sealed.
    const previousKeys = {};
    for (const spec of previous) {
        const at = spec.indexOf('=');
        if (at < 1)
            throw new UsageError(`--previous-key-file takes id=path, got ${spec}`);
        const [id, path] = [spec.slice(0, at), spec.slice(at + 1)];
        previousKeys[id] = keyFile(path, `--previous-key-file ${id}=${path}`);
    }
    return { ...a, options: { ...a.options, encryption: { key, keyId: flags['key-id'], previousKeys } } };
}
/** A 32-byte secret from the environment variable `env` or the file `path` (given by `flag`),
 *  never both; `undefined` when neither is set. */
function secretKey(what, env, flag, path) {
    const fromEnv = process.env[env];
    if (fromEnv !== undefined && path !== undefined)
        throw new UsageError(`give ${what} by ${env} or ${flag}, not both`);
    if (path !== undefined)
        return keyFile(path, `${flag} ${path}`);
    return fromEnv === undefined ? undefined : decodeKey(fromEnv.trim(), env);
}
/** A key file: 32 raw bytes, or 64 hex digits / base64 as text. */
function keyFile(path, source) {
    const raw = (0, node_fs_1.readFileSync)(path);
    return raw.length === 32 ? raw : decodeKey(raw.toString('utf8').trim(), source);
}
/** 64 hex digits or base64 of 32 bytes; the message names the source, never the value. */
function decodeKey(text, source) {
    const key = /^[0-9a-fA-F]{64}$/.test(text) ? Buffer.from(text, 'hex') : Buffer.from(text, 'base64');
    if (key.length !== 32 || (!/^[0-9a-fA-F]{64}$/.test(text) && key.toString('base64') !== text))
        throw new UsageError(`${source} must hold a 32-byte key: 64 hex digits, base64, or 32 raw bytes`);
    return key;
}
function storeAddress(url, flags) {
    const m = /^s3:\/\/([^/]+)\/(.+)$/.exec(url);
    if (m) {
        if (flags.dir !== undefined) {
            // An empty --dir (an unset variable) must not fall back to S3, nor S3 flags be ignored.
            if (flags.dir === '')
                throw new UsageError('--dir needs a path');
            const s3Flags = ['endpoint', 'region', 'profile', 'sse', 'sse-kms-key-id', 'sse-c-key-file'].filter((f) => flags[f] !== undefined);
            if (s3Flags.length)
                throw new UsageError(`--dir keeps the database in a local directory: --${s3Flags.join(', --')} does not apply`);
            return { bucket: m[1], prefix: m[2], options: { store: { dir: flags.dir } } };
        }
        const s3 = {};
        if (flags.endpoint)
            s3.endpoint = flags.endpoint;
        if (flags.region)
            s3.region = flags.region;
        if (flags.sse !== undefined)
            s3.serverSideEncryption = flags.sse;
        if (flags['sse-kms-key-id'] !== undefined)
            s3.sseKmsKeyId = flags['sse-kms-key-id'];
        // SSE-C: a secret too, so from the environment or a file only.
        const sseC = secretKey('the SSE-C key', 'SQLITE_S3VFS_SSE_C_KEY', '--sse-c-key-file', flags['sse-c-key-file']);
        if (sseC)
            s3.sseCustomerKey = sseC;
        return { bucket: m[1], prefix: m[2], options: { s3 } };
    }
    const f = /^file:\/\/(\/.*)\/([^/]+)\/([^/]+)$/.exec(url);
    if (f) {
        if (flags.dir !== undefined)
            throw new UsageError(`--dir goes with an s3:// address, not ${url}`);
        return { bucket: f[2], prefix: f[3], options: { store: { dir: f[1] } } };
    }
    throw new UsageError(`not an address: ${url} (use s3://bucket/prefix or file:///dir/bucket/prefix)`);
}
const OPTIONS = {
    endpoint: { type: 'string' },
    region: { type: 'string' },
    profile: { type: 'string' },
    dir: { type: 'string' },
    'key-file': { type: 'string' },
    'key-id': { type: 'string' },
    'previous-key-file': { type: 'string', multiple: true },
    sse: { type: 'string' },
    'sse-kms-key-id': { type: 'string' },
    'sse-c-key-file': { type: 'string' },
    quiet: { type: 'boolean' },
    debug: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
    overwrite: { type: 'boolean' },
    layout: { type: 'string' },
    'block-size': { type: 'string' },
    json: { type: 'boolean' },
    nl: { type: 'boolean' },
    csv: { type: 'boolean' },
    version: { type: 'string' },
    keep: { type: 'string' },
    grace: { type: 'string' },
    'unsafe-short-grace': { type: 'boolean' },
    'dry-run': { type: 'boolean' },
};
/** A duration: `30m`, `2h`, `1d`, `500ms`, or a number of milliseconds (by the `ms` package). */
function duration(name, v) {
    if (v === undefined)
        return undefined;
    const n = /^\d+$/.test(v) ? Number(v) : (0, ms_1.default)(v);
    // Past 2^53 ms (285,000 years) a number is no longer exact: refused, never wrapped.
    if (typeof n !== 'number' || !Number.isFinite(n) || n < 0 || n > Number.MAX_SAFE_INTEGER)
        throw new UsageError(`--${name} must be a duration such as 30m, 2h or 1d, got ${v}`);
    return Math.round(n);
}
function integer(name, v, min = 0) {
    if (v === undefined)
        return undefined;
    const n = Number(v);
    if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < min)
        throw new UsageError(`--${name} must be an integer >= ${min}, got ${v}`);
    return n;
}
/** A progress bar on stderr when it is a TTY (and not --quiet); else nothing. */
async function progressBar(flags, total, unit = 'bytes') {
    if (flags.quiet || !process.stderr.isTTY)
        return undefined;
    const { SingleBar, Presets } = await Promise.resolve().then(() => __importStar(require('cli-progress')));
    const bar = new SingleBar({
        stream: process.stderr,
        format: total ? `{bar} {percentage}% | {value}/{total} ${unit} | {speed} | ETA {eta}s` : `{value} ${unit} | {speed}`,
        hideCursor: true,
    }, Presets.shades_classic);
    bar.start(total ?? 0, 0, { speed: '' });
    return bar;
}
/** Counts the bytes flowing through into `bar`. */
function counter(bar) {
    let n = 0;
    const started = Date.now();
    return new node_stream_1.Transform({
        transform(chunk, _enc, done) {
            n += chunk.length;
            const s = (Date.now() - started) / 1000;
            bar?.update(n, { speed: s > 0 ? `${(n / s / 1e6).toFixed(1)} MB/s` : '' });
            done(null, chunk);
        },
    });
}
async function importCommand(args, flags) {
    const [file, url] = args;
    if (!file || !url || args.length > 2)
        throw new UsageError(USAGE.import);
    const a = parseAddress(url, flags);
    const layout = flags.layout;
    if (layout !== undefined && layout !== 'versioned' && layout !== 'sqlite-s3vfs')
        throw new UsageError(`--layout must be versioned or sqlite-s3vfs`);
    const source = file === '-' ? process.stdin : (0, node_fs_1.createReadStream)(file);
    const bar = await progressBar(flags, file === '-' ? undefined : (0, node_fs_1.statSync)(file).size);
    try {
        const counted = counter(bar);
        // An input that fails (a folder, an unreadable file) fails the import, which cleans up.
        source.on('error', (e) => counted.destroy(e));
        const { size } = await index_1.S3Database.deserialize(a.bucket, a.prefix, source.pipe(counted), {
            ...a.options,
            layout,
            overwrite: flags.overwrite ?? false,
        });
        bar?.stop();
        if (!flags.quiet)
            process.stderr.write(`imported ${size} bytes into ${url}\n`);
    }
    finally {
        bar?.stop();
    }
}
async function exportCommand(args, flags) {
    const [url, file] = args;
    if (!url || !file || args.length > 2)
        throw new UsageError(USAGE.export);
    const a = parseAddress(url, flags);
    const version = integer('version', flags.version, 1);
    await mustExist(url, a);
    const db = new index_1.S3Database(a.bucket, a.prefix, { ...a.options, version });
    // Into a temp file renamed at the end: a failed export never destroys an earlier good one.
    const partial = file === '-' ? undefined : `${file}.partial-${process.pid}`;
    try {
        const { databaseSize: size } = await pages(db);
        const bar = await progressBar(flags, size);
        const sink = partial ? (0, node_fs_1.createWriteStream)(partial) : process.stdout;
        await (0, promises_1.pipeline)(db.serialize(), counter(bar), sink);
        bar?.stop();
        if (partial)
            (0, node_fs_1.renameSync)(partial, file);
    }
    finally {
        if (partial)
            (0, node_fs_1.rmSync)(partial, { force: true });
        await db.close();
    }
}
/** Fails with ERR_NOT_FOUND when no database is stored at the address. */
async function mustExist(url, a) {
    const stored = await index_1.S3Database.inspect(a.bucket, a.prefix, a.options);
    if (!stored.layout)
        throw Object.assign(new Error(`no database at ${url}`), { code: 'ERR_NOT_FOUND' });
    return stored;
}
/** The database's page size, page count and size in bytes, as SQLite sees them. */
async function pages(db) {
    const r = await db.get('SELECT page_count AS n, page_size AS s FROM pragma_page_count(), pragma_page_size()');
    const pageSize = r?.s ?? 0;
    const pageCount = r?.n ?? 0;
    return { pageSize, pageCount, databaseSize: pageSize * pageCount };
}
async function queryCommand(args, flags) {
    const [url, sql, ...params] = args;
    if (!url || !sql)
        throw new UsageError(USAGE.query);
    const a = parseAddress(url, flags);
    const version = integer('version', flags.version, 1);
    const db = new index_1.S3Database(a.bucket, a.prefix, { ...a.options, version });
    try {
        const stmt = await db.prepare(sql);
        const columns = stmt.columns;
        if (columns.length === 0 && !flags.json && !flags.nl && !flags.csv) {
            // A statement without a result (INSERT, CREATE, ...): how many rows it changed, on stderr.
            const { changes } = await stmt.run(params.map(parameter));
            stmt.finalize();
            if (!flags.quiet)
                process.stderr.write(`${changes} row${changes === 1 ? '' : 's'} changed\n`);
            return;
        }
        const rows = await stmt.all(params.map(parameter));
        stmt.finalize();
        // Cell by cell: a BLOB is base64 text, an integer beyond 2^53 a decimal string.
        const json = (v) => JSON.stringify(v);
        const jsonRow = (r) => Object.fromEntries(columns.map((c) => [
            c,
            Buffer.isBuffer(r[c]) ? r[c].toString('base64') : typeof r[c] === 'bigint' ? String(r[c]) : r[c],
        ]));
        if (flags.json) {
            process.stdout.write(json(rows.map(jsonRow)) + '\n');
        }
        else if (flags.nl) {
            for (const r of rows)
                process.stdout.write(json(jsonRow(r)) + '\n');
        }
        else if (flags.csv) {
            const { stringify } = await Promise.resolve().then(() => __importStar(require('csv-stringify/sync')));
            process.stdout.write(stringify(rows.map((r) => columns.map((c) => cell(r[c]))), { header: true, columns: [...columns] }));
        }
        else {
            await printTable(columns, rows, process.stdout);
        }
    }
    finally {
        await db.close();
    }
}
/** A command-line parameter: a plain decimal number is a number (an integer beyond 2^53 a
 *  bigint, beyond 64 bits text); anything else, `007` and `1e3` included, is text. */
function parameter(p) {
    if (/^-?(0|[1-9]\d*)$/.test(p)) {
        if (Number.isSafeInteger(Number(p)))
            return Number(p);
        // Beyond 2^53 a bigint, beyond SQLite's 64-bit INTEGER text.
        const big = BigInt(p);
        return big >= -(2n ** 63n) && big < 2n ** 63n ? big : p;
    }
    if (/^-?(0|[1-9]\d*)\.\d+$/.test(p))
        return Number(p);
    return p;
}
function cell(v) {
    if (v === null || v === undefined)
        return '';
    if (Buffer.isBuffer(v))
        return `x'${v.toString('hex')}'`;
    return String(v);
}
async function infoCommand(args, flags) {
    const [url] = args;
    if (!url || args.length > 1)
        throw new UsageError(USAGE.info);
    const a = parseAddress(url, flags);
    const stored = await mustExist(url, a);
    const db = new index_1.S3Database(a.bucket, a.prefix, a.options);
    try {
        const figures = await pages(db);
        const kept = stored.versions.filter((v) => !v.pruned);
        const info = {
            address: url,
            layout: stored.layout,
            version: stored.layout === 'versioned' ? db.version : null,
            oldestVersion: kept[0]?.version ?? null,
            ...figures,
            blockSize: db.blockSize ?? null,
            objects: stored.objects,
            bytesStored: stored.bytes,
        };
        if (flags.json)
            process.stdout.write(JSON.stringify(info) + '\n');
        else
            for (const [k, v] of Object.entries(info))
                process.stdout.write(`${k.padEnd(14)} ${v ?? '–'}\n`);
    }
    finally {
        await db.close();
    }
}
async function versionsCommand(args, flags) {
    const [url] = args;
    if (!url || args.length > 1)
        throw new UsageError(USAGE.versions);
    const a = parseAddress(url, flags);
    const stored = await index_1.S3Database.inspect(a.bucket, a.prefix, a.options);
    if (stored.layout !== 'versioned') {
        throw Object.assign(new Error(`${url} is ${stored.layout ? 'in the sqlite-s3vfs layout, which keeps no versions' : 'not a database'}`), {
            code: stored.layout ? 'ERR_UNSUPPORTED' : 'ERR_NOT_FOUND',
        });
    }
    const rows = stored.versions.map((v) => ({
        version: v.version,
        created: v.createdMs === undefined ? null : new Date(v.createdMs).toISOString(),
        pruned: v.pruned,
    }));
    if (flags.json) {
        process.stdout.write(JSON.stringify(rows) + '\n');
        return;
    }
    await printTable(['version', 'created', 'pruned'], rows.map((r) => ({ ...r, created: r.created ?? '', pruned: r.pruned ? 'yes' : '' })), process.stdout);
}
async function gcCommand(args, flags) {
    const [url] = args;
    if (!url || args.length > 1)
        throw new UsageError(USAGE.gc);
    const a = parseAddress(url, flags);
    const keepVersions = integer('keep', flags.keep, 1);
    const gracePeriodMs = duration('grace', flags.grace);
    if (gracePeriodMs !== undefined && gracePeriodMs < 30 * 60_000 && !flags['unsafe-short-grace'])
        throw new UsageError(`--grace below 30m needs --unsafe-short-grace (only when no writer runs: a stalled writer could lose its uploads)`);
    const stored = await mustExist(url, a);
    if (stored.layout !== 'versioned') {
        throw Object.assign(new Error(`${url} is in the sqlite-s3vfs layout, which keeps no versions to collect`), { code: 'ERR_UNSUPPORTED' });
    }
    // The bar starts when the deletions do (their number is known only then).
    let bar;
    let total = 0;
    let finished = false;
    const started = Date.now();
    try {
        const report = await index_1.S3Database.gc(a.bucket, a.prefix, {
            s3: a.options.s3,
            store: a.options.store,
            encryption: a.options.encryption,
            keepVersions,
            gracePeriodMs,
            unsafeShortGracePeriod: flags['unsafe-short-grace'],
            dryRun: flags['dry-run'],
            onProgress: ({ deleted, total: all }) => {
                // A report that trails the result starts nothing (a bar left running would keep the
                // process alive).
                if (finished)
                    return;
                total = all;
                bar ??= progressBar(flags, all, 'objects');
                const s = (Date.now() - started) / 1000;
                void bar.then((b) => b?.update(deleted, { speed: s > 0 ? `${(deleted / s).toFixed(0)} objects/s` : '' }));
            },
        });
        finished = true;
        const done = await bar;
        done?.update(total);
        done?.stop();
        process.stdout.write(JSON.stringify(report) + '\n');
    }
    finally {
        finished = true;
        (await bar)?.stop();
    }
}
/** Prints rows as an aligned table. */
async function printTable(columns, rows, out) {
    const Table = (await Promise.resolve().then(() => __importStar(require('cli-table3')))).default;
    const table = new Table({ head: [...columns], style: { head: [], border: [] } });
    for (const r of rows)
        table.push(columns.map((c) => cell(r[c])));
    out.write(table.toString() + '\n');
}
async function shellCommand(args, flags) {
    const [url] = args;
    if (!url || args.length > 1)
        throw new UsageError(USAGE.shell);
    const a = parseAddress(url, flags);
    const db = new index_1.S3Database(a.bucket, a.prefix, a.options);
    await db.open();
    const { createInterface } = await Promise.resolve().then(() => __importStar(require('node:readline')));
    const { homedir } = await Promise.resolve().then(() => __importStar(require('node:os')));
    const { appendFileSync } = await Promise.resolve().then(() => __importStar(require('node:fs')));
    const historyFile = `${homedir()}/.sqlite_s3vfs_history`;
    const interactive = Boolean(process.stdin.isTTY);
    let history = [];
    if (interactive) {
        try {
            history = (0, node_fs_1.readFileSync)(historyFile, 'utf8').split('\n').filter(Boolean).reverse().slice(0, 1000);
        }
        catch {
            // No history yet.
        }
    }
    const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: interactive, history, historySize: 1000 });
    const say = (text) => process.stdout.write(text + '\n');
    let buffer = '';
    let generation = 0;
    const prompt = () => {
        rl.setPrompt(buffer ? '         ...> ' : 'sqlite-s3vfs> ');
        if (interactive)
            rl.prompt();
    };
    let running = false;
    rl.on('SIGINT', () => {
        // Interrupts the running statement, or drops what is being typed; never the shell.
        if (running)
            db.interrupt();
        buffer = '';
        generation++;
        process.stdout.write('^C\n');
        prompt();
    });
    const run = async (sql) => {
        const mine = generation;
        running = true;
        try {
            const stmt = await db.prepare(sql);
            if (stmt.columns.length > 0) {
                const rows = await stmt.all();
                if (mine === generation)
                    await printTable(stmt.columns, rows, process.stdout);
            }
            else {
                const r = await stmt.run();
                if (mine === generation && r.changes > 0)
                    say(`${r.changes} row${r.changes === 1 ? '' : 's'} changed`);
            }
            stmt.finalize();
        }
        catch (e) {
            if (mine === generation)
                say(`error: [${e.code ?? 'ERROR'}] ${e.message}`);
        }
        finally {
            running = false;
        }
    };
    const dot = async (line) => {
        const [cmd, arg] = line.split(/\s+/);
        if (cmd === '.quit' || cmd === '.exit')
            return false;
        if (cmd === '.help')
            say(USAGE.shell);
        else if (cmd === '.tables') {
            const rows = await db.all("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name");
            say(rows.map((r) => r.name).join('  '));
        }
        else if (cmd === '.schema') {
            const rows = await db.all(`SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL ${arg ? 'AND tbl_name = ?' : ''} ORDER BY type DESC, name`, arg ? [arg] : []);
            for (const r of rows)
                say(`${r.sql};`);
        }
        else if (cmd === '.stats') {
            const s = db.stats();
            await printTable(Object.keys(s), [s], process.stdout);
        }
        else
            say(`error: unknown command ${cmd} (.help lists them)`);
        return true;
    };
    prompt();
    try {
        for await (const line of rl) {
            if (interactive && line.trim())
                appendFileSync(historyFile, line + '\n');
            if (!buffer && line.trim().startsWith('.')) {
                if (!(await dot(line.trim())))
                    break;
            }
            else if (line.trim() || buffer) {
                buffer += (buffer ? '\n' : '') + line;
                if (buffer.trim().endsWith(';')) {
                    const sql = buffer;
                    buffer = '';
                    await run(sql);
                }
            }
            prompt();
        }
    }
    finally {
        rl.close();
        await db.close();
    }
}
/** The flags each command takes (besides the ones every command takes): any other is a usage error. */
const COMMON = [
    'endpoint',
    'region',
    'profile',
    'dir',
    'key-file',
    'key-id',
    'previous-key-file',
    'sse',
    'sse-kms-key-id',
    'sse-c-key-file',
    'quiet',
    'debug',
    'help',
];
const COMMAND_FLAGS = {
    import: ['overwrite', 'layout', 'block-size'],
    export: ['version', 'block-size'],
    query: ['json', 'nl', 'csv', 'version', 'block-size'],
    info: ['json', 'block-size'],
    shell: ['block-size'],
    versions: ['json'],
    gc: ['keep', 'grace', 'unsafe-short-grace', 'dry-run'],
};
const COMMANDS = {
    import: importCommand,
    export: exportCommand,
    query: queryCommand,
    info: infoCommand,
    shell: shellCommand,
    versions: versionsCommand,
    gc: gcCommand,
};
async function main(argv) {
    let flags = {};
    try {
        // `--version` without a command is the program's version; after one, `--version N` picks a
        // version of the database.
        if (!argv.some((a) => !a.startsWith('-')) && (argv.includes('--version') || argv.includes('-V'))) {
            process.stdout.write(`${require('../package.json').version}\n`);
            return 0;
        }
        const parsed = (0, node_util_1.parseArgs)({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
        flags = parsed.values;
        const [command, ...args] = parsed.positionals;
        if (!command) {
            process.stdout.write(USAGE.main + '\n');
            return flags.help ? 0 : 2;
        }
        const run = COMMANDS[command];
        if (!run)
            throw new UsageError(`unknown command: ${command}\n\n${USAGE.main}`);
        if (flags.help) {
            process.stdout.write(USAGE[command] + '\n');
            return 0;
        }
        const stray = Object.keys(flags).filter((f) => !COMMON.includes(f) && !COMMAND_FLAGS[command].includes(f));
        if (stray.length)
            throw new UsageError(`${command} does not take --${stray.join(', --')}\n\n${USAGE[command]}`);
        if (flags.profile)
            process.env.AWS_PROFILE = flags.profile;
        // --debug: the request log on stderr (as DEBUG=sqlite-s3vfs does).
        if (flags.debug)
            process.env.DEBUG = [process.env.DEBUG, 'sqlite-s3vfs'].filter(Boolean).join(',');
        await run(args, flags);
        return 0;
    }
    catch (e) {
        if (e instanceof UsageError || e.code?.startsWith('ERR_PARSE_ARGS')) {
            process.stderr.write(`sqlite-s3vfs: ${e.message}\n`);
            return 2;
        }
        const code = e instanceof index_1.SqliteS3Error ? e.code : (e.code ?? 'ERROR');
        process.stderr.write(`sqlite-s3vfs: [${code}] ${e.message}\n`);
        if (flags.debug)
            process.stderr.write(`${e.stack}\n`);
        return 1;
    }
}
if (require.main === module) {
    main(process.argv.slice(2)).then((code) => {
        process.exitCode = code;
    });
}
