// The README's runnable examples:
//  - each ```js block that starts with a `// <name>.mjs` line is written to a scratch folder inside
//    the package (so `import 'sqlite-s3vfs'` resolves to this package by its name) and run with
//    Node, twice; it must exit 0;
//  - each ```sh block that starts with a `# <name>.sh` line is run by bash (-e: every command must
//    succeed) in a scratch folder holding `local.sqlite`, with `sqlite-s3vfs` on PATH (this
//    package's bin) and the test S3 server as the AWS endpoint, in the bucket `my-bucket`.
import test from 'ava'
import Database from 'better-sqlite3'
import { spawnSync } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { CreateBucketCommand } from '@aws-sdk/client-s3'
import { client, endpoint, region } from './helpers/s3'

const root = resolve(__dirname, '..')
const readme = readFileSync(join(root, 'README.md'), 'utf8')
const blocks = [...readme.matchAll(/```js\n\/\/ ([\w-]+\.mjs)\n([\s\S]*?)```/g)].map((m) => ({ name: m[1], code: m[2] }))
const scripts = [...readme.matchAll(/```sh\n# ([\w-]+\.sh)\n([\s\S]*?)```/g)].map((m) => ({ name: m[1], code: m[2] }))

function scratch(): string {
  mkdirSync(join(root, 'target'), { recursive: true })
  return mkdtempSync(join(root, 'target', 'readme-'))
}

test('the README has runnable examples', (t) => {
  t.true(blocks.length >= 1)
  t.true(scripts.length >= 1)
})

for (const { name, code } of blocks) {
  test(`README example ${name} runs`, (t) => {
    const dir = scratch()
    try {
      writeFileSync(join(dir, name), code)
      const run = () => spawnSync(process.execPath, [name], { cwd: dir, encoding: 'utf8', env: { ...process.env, NODE_NO_WARNINGS: '1' } })
      const first = run()
      t.is(first.status, 0, first.stderr)
      // Run twice: the second run finds the database the first one stored.
      const second = run()
      t.is(second.status, 0, second.stderr)
      if (name === 'encryption.mjs') t.is(first.stdout, 'ERR_KEY_MISSING\n')
      if (name === 'key-provider.mjs') t.is(first.stdout, "2 [ '2025', '2026' ]\n")
      if (name === 'quickstart.mjs') {
        t.regex(first.stdout, /hello/)
        t.is((second.stdout.match(/'hello'/g) ?? []).length, 2, second.stdout)
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
}

for (const { name, code } of scripts) {
  test.serial(`README session ${name} runs`, async (t) => {
    await client.send(new CreateBucketCommand({ Bucket: 'my-bucket' })).catch(() => undefined)
    const dir = scratch()
    try {
      const local = new Database(join(dir, 'local.sqlite'))
      local.exec("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT); INSERT INTO t(name) VALUES ('first'), ('second')")
      local.close()
      const bin = join(dir, 'bin')
      mkdirSync(bin)
      writeFileSync(join(bin, 'sqlite-s3vfs'), `#!/bin/sh\nexec "${process.execPath}" "${join(root, 'bin', 'cli.js')}" "$@"\n`)
      chmodSync(join(bin, 'sqlite-s3vfs'), 0o755)
      writeFileSync(join(dir, name), code)
      const r = spawnSync('bash', ['-e', '-o', 'pipefail', name], {
        cwd: dir,
        encoding: 'utf8',
        env: {
          ...process.env,
          NODE_NO_WARNINGS: '1',
          PATH: `${bin}:${process.env.PATH}`,
          AWS_ENDPOINT_URL_S3: endpoint,
          AWS_REGION: region,
        },
      })
      t.is(r.status, 0, r.stderr)
      if (name === 'cli.sh') {
        t.regex(r.stdout, /\[\{"id":1,"name":"first"\}\]/)
        t.regex(r.stdout, /^name\nfirst$/m, '--version 1 reads the name before the UPDATE')
        t.regex(r.stdout, /"layout":"versioned"/)
        t.regex(r.stdout, /│ version │ created/)
        t.regex(r.stdout, /^t$/m, '.tables')
        // Version 1 was replaced within the grace period (1h): kept.
        t.regex(r.stdout, /\{"head":2,"versionsKept":2,"versionsPruned":0,"objectsDeleted":0\}/)
        t.regex(r.stdout, /^\{"n":2\}$/m)
        t.true(existsSync(join(dir, 'backup.sqlite')))
        t.true(existsSync(join(dir, 'data', 'my-bucket', 'reports', '2026')))
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
}
