// Packs the npm tarballs of the main package and of this machine's platform package
// (npm/<platform>/ with the binary built for it) into a folder. Used by `npm run package` (into
// dist/) and by the install test.
import { execFileSync } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { parseTriple } from '@napi-rs/cli'
import { join, resolve } from 'node:path'

const root = resolve(__dirname, '..')

/** This machine's platform as napi names its package (`linux-x64-gnu`, `darwin-arm64`, ...):
 *  from the running JS runtime, so no Rust toolchain is needed. */
export function hostAbi(): string {
  const { platform, arch } = process
  if (platform === 'linux') {
    const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header
    return `linux-${arch}-${header?.glibcVersionRuntime ? 'gnu' : 'musl'}`
  }
  return platform === 'win32' ? `win32-${arch}-msvc` : `${platform}-${arch}`
}

/** The main package's manifest as the release publishes it: `napi prepublish` adds every
 *  platform package (`npm/<platform>/`) as an optional dependency at the same version. They are
 *  not in the committed package.json: until the first release those names are unpublished, and
 *  every `npm install` of this repository would ask the registry for them. */
export function publishedManifest(): Record<string, unknown> {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
  const platforms = (pkg.napi.targets as string[]).map((t) => {
    const dir = join(root, 'npm', parseTriple(t).platformArchABI)
    return JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).name as string
  })
  return { ...pkg, optionalDependencies: Object.fromEntries(platforms.map((name) => [name, pkg.version])) }
}

export interface Packed {
  main: string
  platform: string
  binary: string
}

/** Packs both tarballs into `out` (created); `abi` names the platform package (default: this
 *  machine's; the install test passes it so it needs no Rust toolchain). */
export function packTarballs(out: string, abi = hostAbi()): Packed {
  const pkg = require(join(root, 'package.json'))
  const binaryName = `${pkg.napi.binaryName}.${abi}.node`
  const binary = join(root, binaryName)
  if (!existsSync(binary)) throw new Error(`${binaryName} is not built: run npm run build (or npm run package)`)
  mkdirSync(out, { recursive: true })
  const npmPack = (dir: string) => {
    const [r] = JSON.parse(
      execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', out], { cwd: dir, encoding: 'utf8' }),
    )
    return join(out, r.filename as string)
  }
  const staging = mkdtempSync(join(tmpdir(), 's3vfs-pack-'))
  try {
    // The main package as published: its files, and the manifest prepublish writes.
    const mainDir = join(staging, 'main')
    mkdirSync(mainDir)
    for (const f of [...(pkg.files as string[]), 'README.md', 'LICENSE']) cpSync(join(root, f), join(mainDir, f), { recursive: true })
    writeFileSync(join(mainDir, 'package.json'), JSON.stringify(publishedManifest(), null, 2) + '\n')
    const platformDir = join(staging, 'platform')
    cpSync(join(root, 'npm', abi), platformDir, { recursive: true })
    cpSync(binary, join(platformDir, binaryName))
    return { main: npmPack(mainDir), platform: npmPack(platformDir), binary }
  } finally {
    rmSync(staging, { recursive: true, force: true })
  }
}

if (require.main === module) {
  const out = resolve(process.argv[2] ?? join(root, 'dist'))
  const p = packTarballs(out)
  for (const f of [p.main, p.platform]) console.log(`${f} (${(statSync(f).size / 1e6).toFixed(2)} MB)`)
  console.log(`binary: ${p.binary} (${(statSync(p.binary).size / 1e6).toFixed(2)} MB)`)
}
