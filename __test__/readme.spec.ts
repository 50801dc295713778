// The README's runnable examples: each ```js block that starts with a `// <name>.mjs` line is
// written to a scratch folder inside the package (so `import 'sqlite-s3vfs'` resolves to this
// package by its name) and run with Node; it must exit 0.
import test from 'ava'
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'

const root = resolve(__dirname, '..')
const readme = readFileSync(join(root, 'README.md'), 'utf8')
const blocks = [...readme.matchAll(/```js\n\/\/ ([\w-]+\.mjs)\n([\s\S]*?)```/g)].map((m) => ({ name: m[1], code: m[2] }))

test('the README has runnable examples', (t) => {
  t.true(blocks.length >= 1)
})

for (const { name, code } of blocks) {
  test(`README example ${name} runs`, (t) => {
    mkdirSync(join(root, 'target'), { recursive: true })
    const dir = mkdtempSync(join(root, 'target', 'readme-'))
    try {
      writeFileSync(join(dir, name), code)
      const run = () => spawnSync(process.execPath, [name], { cwd: dir, encoding: 'utf8', env: { ...process.env, NODE_NO_WARNINGS: '1' } })
      const first = run()
      t.is(first.status, 0, first.stderr)
      // Run twice: the second run finds the database the first one stored.
      const second = run()
      t.is(second.status, 0, second.stderr)
      if (name === 'quickstart.mjs') {
        t.regex(first.stdout, /hello/)
        t.is((second.stdout.match(/'hello'/g) ?? []).length, 2, second.stdout)
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
}
