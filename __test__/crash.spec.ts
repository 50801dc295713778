// Crash safety at every request index of a commit: a child process commits in a loop through a
// proxy that kills it with SIGKILL when the nth request of a commit reaches it (that request then
// either never reaches the server, or does, after the kill). Then a fresh process must open the
// database, pass integrity_check, and hold exactly the last acknowledged commit or the one in
// flight. Versioned layout: that holds at every index. sqlite-s3vfs layout: SQLite's rollback
// journal (kept in the bucket) is rolled back by the next writer once it is older than
// `hotJournalMs`; the README states what that layout can and cannot recover.
import test, { type ExecutionContext } from 'ava'
import { spawn } from 'node:child_process'
import { resolve } from 'node:path'
import { S3Database } from '../index'
import { FaultProxy, type RequestKind } from './helpers/fault-proxy'
import { freshBucket, freshPrefix, options } from './helpers/s3'

const CHILD = resolve(__dirname, 'helpers', 'child.ts')
let bucket = ''
test.before(async () => {
  bucket = await freshBucket('crash')
})

type Layout = 'versioned' | 'sqlite-s3vfs'

/** The last request of a commit: the root create, or the journal's delete. */
const commitEnds = (layout: Layout, kind: RequestKind, key: string) =>
  layout === 'versioned' ? kind === 'PUT_INM' && key.includes('/!r/') : kind === 'DELETE' && key.includes('-journal/0000000000')

/** Runs the committing child through `proxy` until `kill` says so; returns its acknowledgements. */
async function runChild(proxy: FaultProxy, prefix: string): Promise<{ acked: number; stop: () => void; done: Promise<void> }> {
  const p = spawn(process.execPath, ['--import', 'tsx', CHILD, 'crash', bucket, prefix, '0'], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, SQLITE_S3VFS_TEST_ENDPOINT: proxy.url },
  })
  const state = { acked: 0, stop: () => p.kill('SIGKILL'), done: new Promise<void>((r) => p.on('exit', () => r())) }
  let buf = ''
  p.stdout!.on('data', (d: Buffer) => {
    buf += d.toString()
    let i
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = JSON.parse(buf.slice(0, i))
      buf = buf.slice(i + 1)
      if (typeof line.ack === 'number') state.acked = Math.max(state.acked, line.ack)
    }
  })
  return state
}

async function setUp(layout: Layout): Promise<string> {
  const prefix = freshPrefix(`kill-${layout}`)
  const db = new S3Database(bucket, prefix, options({ layout, blockSize: 4096 }))
  await db.exec('CREATE TABLE log(i INTEGER PRIMARY KEY, payload BLOB); CREATE TABLE state(last INTEGER); INSERT INTO state VALUES (0)')
  await db.close()
  return prefix
}

/** Kills the child at request `n` (0-based) of its third commit; `land`: that request is sent. */
async function killAt(t: ExecutionContext, layout: Layout, n: number, land: boolean): Promise<'acked' | 'in flight' | 'none'> {
  const prefix = await setUp(layout)
  const proxy = await FaultProxy.start()
  t.teardown(() => proxy.stop())
  let commits = 0
  let index = -1
  let killed = false
  let child: Awaited<ReturnType<typeof runChild>> | undefined
  proxy.onRequest = (kind, key) => {
    if (killed) return 'drop'
    if (commits === 2) {
      index++
      if (index === n) {
        killed = true
        // Not sent: killed as the request arrives. Sent: it lands, then the child dies before
        // its answer comes back.
        if (!land) {
          child?.stop()
          return 'drop'
        }
        return () => child?.stop()
      }
    }
    if (commitEnds(layout, kind, key)) commits++
  }
  child = await runChild(proxy, prefix)
  await child.done
  t.true(killed, `${layout}: the commit has fewer than ${n + 1} requests`)
  const acked = child.acked
  const label = `${layout}, killed at request ${n} (${land ? 'sent' : 'not sent'}): ${proxy.log.slice(-12).join(', ')}`
  try {
    return await verify(t, layout, prefix, acked, label)
  } catch (e) {
    throw new Error(`${label}: ${String(e)}`)
  }
}

async function verify(t: ExecutionContext, layout: Layout, prefix: string, acked: number, label: string): Promise<'acked' | 'in flight'> {
  // A later process. A young journal is left alone (its writer may be alive, and a reader then
  // may see a torn state): the sqlite-s3vfs checker waits out hotJournalMs (1 s), plus 1 s for
  // LastModified's resolution and 1 s for the store clock probe's.
  const check = new S3Database(bucket, prefix, options({ hotJournalMs: 1000 }))
  if (layout === 'sqlite-s3vfs') {
    await new Promise((r) => setTimeout(r, 3500))
    // A writer rolls back a dead one's journal.
    await check.run('INSERT INTO log(i, payload) VALUES (-1, NULL)').catch((e) => {
      throw new Error(`the rolling-back write: ${String(e)}`)
    })
    await check.run('DELETE FROM log WHERE i = -1')
  }
  t.deepEqual(await check.get('PRAGMA integrity_check'), { integrity_check: 'ok' }, label)
  const { last } = (await check.get<{ last: number }>('SELECT last FROM state'))!
  const { count, max } = (await check.get<{ count: number; max: number | null }>('SELECT count(*) AS count, max(i) AS max FROM log'))!
  t.true(last === acked || last === acked + 1, `${label}: state ${last}, last acknowledged ${acked}`)
  t.is(count, last, `${label}: the log holds exactly the committed rows`)
  t.is(max ?? 0, last, `${label}: no row of a commit that did not happen`)
  await check.close()
  return last === acked + 1 ? 'in flight' : 'acked'
}

/** The requests of one commit of the child, counted on a clean run. */
async function requestsPerCommit(t: ExecutionContext, layout: Layout): Promise<number> {
  const prefix = await setUp(layout)
  const proxy = await FaultProxy.start()
  t.teardown(() => proxy.stop())
  let commits = 0
  let count = 0
  let child: Awaited<ReturnType<typeof runChild>> | undefined
  proxy.onRequest = (kind, key) => {
    if (commits === 2) count++
    if (commitEnds(layout, kind, key) && ++commits === 3) child?.stop()
    if (commits >= 3) return 'drop'
  }
  child = await runChild(proxy, prefix)
  await child.done
  return count
}

for (const layout of ['versioned', 'sqlite-s3vfs'] as const) {
  test(`${layout}: SIGKILL at every request index of a commit leaves the last acknowledged commit or the one in flight`, async (t) => {
    const requests = await requestsPerCommit(t, layout)
    t.true(requests >= 2, `${requests} requests`)
    const outcomes: string[] = []
    for (let n = 0; n < requests; n++) {
      for (const land of [false, true]) outcomes.push(`${n}${land ? '+' : '-'}:${await killAt(t, layout, n, land)}`)
    }
    t.log(`${layout}: ${requests} requests per commit; outcome by index (+ sent, - not sent): ${outcomes.join(' ')}`)
  })
}
