// options.cacheDir: blocks kept on local disk across processes (versioned layout), checked
// against the block map's CRC, bounded, safe to delete.
import test from 'ava'
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { S3Database } from '../index'
import { freshBucket, freshPrefix, options, series } from './helpers/s3'

let bucket = ''
test.before(async () => {
  bucket = await freshBucket('cachedir')
})

/** Every file under `dir` with its size. */
function files(dir: string): { path: string; size: number }[] {
  const out: { path: string; size: number }[] = []
  for (const sub of readdirSync(dir, { withFileTypes: true })) {
    if (!sub.isDirectory()) continue
    for (const f of readdirSync(join(dir, sub.name))) {
      const path = join(dir, sub.name, f)
      out.push({ path, size: statSync(path).size })
    }
  }
  return out
}

async function database(): Promise<string> {
  const prefix = freshPrefix('cachedir')
  const db = new S3Database(bucket, prefix, options({ blockSize: 4096 }))
  await db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)')
  await db.run(`INSERT INTO t SELECT n, printf('%.300c', 'x') FROM ${series(2000)}`)
  await db.close()
  return prefix
}

const SCAN = 'SELECT count(*) AS n, sum(length(v)) AS s FROM t'

test('a cold start with a warm cacheDir reads no block from S3', async (t) => {
  const prefix = await database()
  const cacheDir = mkdtempSync(join(tmpdir(), 's3vfs-cachedir-'))
  const first = new S3Database(bucket, prefix, options({ cacheDir }))
  t.deepEqual(await first.get(SCAN), { n: 2000, s: 600_000 })
  const cold = first.stats()
  await first.close()
  t.true(files(cacheDir).length > 100, 'blocks were kept on disk')

  // A new connection has an empty memory cache: only the root and the freshness check go to S3.
  const second = new S3Database(bucket, prefix, options({ cacheDir }))
  t.deepEqual(await second.get(SCAN), { n: 2000, s: 600_000 })
  const warm = second.stats()
  await second.close()
  t.log('cold:', cold.get, 'GETs; warm cacheDir:', warm.get, 'GETs')
  t.true(cold.get > 150)
  t.is(warm.get, 2, 'one GET for the root at open, one freshness check')

  // A damaged file is a miss (its CRC does not match), never wrong data; a deleted directory too.
  for (const f of files(cacheDir).slice(0, 20)) writeFileSync(f.path, Buffer.alloc(f.size, 0x55))
  const third = new S3Database(bucket, prefix, options({ cacheDir }))
  t.deepEqual(await third.get(SCAN), { n: 2000, s: 600_000 })
  t.is(third.stats().get, 2 + 20)
  await third.close()
  rmSync(cacheDir, { recursive: true, force: true })
  const fourth = new S3Database(bucket, prefix, options({ cacheDir }))
  t.deepEqual(await fourth.get(SCAN), { n: 2000, s: 600_000 })
  t.is(fourth.stats().get, cold.get)
  await fourth.close()
  rmSync(cacheDir, { recursive: true, force: true })
})

test('cacheDir stays within cacheDirSize', async (t) => {
  const prefix = await database()
  const cacheDir = mkdtempSync(join(tmpdir(), 's3vfs-cachedir-'))
  const db = new S3Database(bucket, prefix, options({ cacheDir, cacheDirSize: 100_000 }))
  t.deepEqual(await db.get(SCAN), { n: 2000, s: 600_000 })
  await db.close()
  const total = files(cacheDir).reduce((s, f) => s + f.size, 0)
  t.log('bytes in cacheDir:', total)
  t.true(total > 0 && total <= 100_000, `${total} bytes`)
  rmSync(cacheDir, { recursive: true, force: true })
})
