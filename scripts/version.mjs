// `npm version x.y.z` runs this (package.json's "version" script) after bumping package.json and
// before npm commits: the platform packages (`napi version`), the generated loader's version
// check, and git's index all follow, so the release commit passes packaging.spec.ts.
import { execSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const run = (cmd) => execSync(cmd, { stdio: 'inherit', cwd: root })
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
run('npx napi version')
const loader = join(root, 'binding.js')
writeFileSync(loader, readFileSync(loader, 'utf8').replace(/(bindingPackageVersion !== '|expected )[^' ]+/g, `$1${version}`))
run('git add npm binding.js package.json')
