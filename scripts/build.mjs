// Builds the native addon (napi) and the TypeScript API. Cargo rebuilds only what changed.
import { execSync } from 'node:child_process'

const run = (cmd) => execSync(cmd, { stdio: 'inherit' })
run('npx napi build --platform --release --js binding.js --dts binding.d.ts')
run('npx tsc -p tsconfig.json')
