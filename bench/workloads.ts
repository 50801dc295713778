// What every system under test runs: the same SQL, the same rows, the same lookups.

export const BULK_ROWS = 100_000
export const COMMITS = 100
export const WARM_QUERIES = 1_000
/** Rows of the big database (about 1.4 GB with 1000-byte values). */
export const BIG_ROWS = 1_000_000

const series = (n: number) => `(WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < ${n}) SELECT n FROM s)`

export const SQL = {
  schema: 'CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT, v TEXT); CREATE INDEX t_k ON t(k)',
  bulk: `INSERT INTO t SELECT n, 'key-' || n, hex(randomblob(50)) FROM ${series(BULK_ROWS)}`,
  commit: 'INSERT INTO t(k, v) VALUES (?, ?)',
  /** Reads every row's value: a scan of the table's B-tree, not of the smaller index. */
  scan: 'SELECT count(*) AS n, sum(length(v)) AS s FROM t',
  point: 'SELECT id, k, v FROM t WHERE id = ?',
  bigSchema: 'CREATE TABLE big(id INTEGER PRIMARY KEY, k TEXT, v BLOB)',
  bigRows: `INSERT INTO big SELECT n, hex(randomblob(8)), randomblob(1000) FROM ${series(BIG_ROWS)}`,
  bigIndex: 'CREATE INDEX big_k ON big(k)',
  bigByPk: 'SELECT id, k, length(v) AS n FROM big WHERE id = ?',
  bigByIndex: 'SELECT id, k, length(v) AS n FROM big WHERE k = ?',
}

/** The primary key looked up cold in the big database. */
export const BIG_ID = 777_777

/** The ids of the warm point queries: spread over the table, deterministic. */
export function warmIds(n = WARM_QUERIES, rows = BULK_ROWS): number[] {
  return Array.from({ length: n }, (_, i) => 1 + ((i * 7919 + 17) % rows))
}
