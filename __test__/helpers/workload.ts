// The write statements of the differential test (differential.spec.ts), shared with the child
// processes it starts (regression-child.ts): the same SQL and the same bytes on every side.

/** Deterministic bytes for a value: the same in the oracle, the package and a child process. */
export function bytes(len: number, salt: number): Buffer {
  const b = Buffer.alloc(len)
  for (let i = 0; i < len; i++) b[i] = (i * 31 + salt * 7) & 0xff
  return b
}

/** One write statement, applied to both sides the same way. */
export type Write =
  | { op: 'insert'; count: number; size: number; salt: number }
  | { op: 'update'; mod: number; rem: number; size: number; salt: number }
  | { op: 'delete'; mod: number; rem: number }

export function writeSql(w: Write): [string, unknown[]] {
  switch (w.op) {
    case 'insert':
      return [
        `INSERT INTO t(k, v) SELECT ? * 1000 + n, substr(?, 1 + n % 50, ?)
         FROM (WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < ?) SELECT n FROM s)`,
        [w.salt, bytes(w.size + 60, w.salt), w.size, w.count],
      ]
    case 'update':
      return ['UPDATE t SET v = substr(?, 1 + id % 50, ?) WHERE id % ? = ?', [bytes(w.size + 60, w.salt), w.size, w.mod, w.rem % w.mod]]
    case 'delete':
      return ['DELETE FROM t WHERE id % ? = ?', [w.mod, w.rem % w.mod]]
  }
}
