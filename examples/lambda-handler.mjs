// A Lambda-style handler. The database is opened once per container, at module scope, and every
// invocation that container serves reuses it: its connection, its memory cache and the blocks
// kept on the container's disk in /tmp (`cacheDir`), so a warm invocation reads from memory and a
// cold start from /tmp before it asks S3. `maxStaleness` lets reads within 2 s of a freshness
// check skip the next one (one GET saved per read); writes always check.
//
//   BUCKET=my-bucket node examples/lambda-handler.mjs     # three local invocations
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { S3Database } from 'sqlite-s3vfs'

const db = new S3Database(process.env.BUCKET ?? 'examples', process.env.DB_PREFIX ?? 'examples/notes.sqlite', {
  cacheDir: process.env.CACHE_DIR ?? join(tmpdir(), 'sqlite-s3vfs-cache'),
  maxStaleness: 2000,
})
// Once per container: the table, if this is the very first run (no write when it exists). A
// failure is not kept: the next invocation tries again.
let ready
function init() {
  ready ??= db.exec('CREATE TABLE IF NOT EXISTS notes(id INTEGER PRIMARY KEY, text TEXT NOT NULL, at TEXT)').catch((e) => {
    ready = undefined
    throw e
  })
  return ready
}

export async function handler(event) {
  await init()
  if (event.action === 'add') {
    const { lastInsertRowid } = await db.run("INSERT INTO notes(text, at) VALUES (?, datetime('now'))", [event.text])
    return { statusCode: 201, body: JSON.stringify({ id: Number(lastInsertRowid) }) }
  }
  const notes = await db.all('SELECT id, text FROM notes ORDER BY id DESC LIMIT 5')
  return { statusCode: 200, body: JSON.stringify(notes) }
}

// Run as a script: invoke the handler as Lambda would, three times in one warm container.
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const added = await handler({ action: 'add', text: `hello at ${new Date().toISOString()}` })
  console.log('add  ->', added.statusCode, added.body)
  const first = await handler({ action: 'list' })
  const before = db.stats()
  const second = await handler({ action: 'list' })
  const after = db.stats()
  console.log('list ->', first.statusCode, first.body)
  console.log(`warm list: ${after.get - before.get} GET requests, the same answer: ${first.body === second.body}`)
  await db.close()
}
