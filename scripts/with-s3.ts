// Runs a command with local S3-protocol servers on 127.0.0.1 and stops them afterwards:
//  - gofakes3 (memory backend): the main test server; atomic If-None-Match, no SigV4 check;
//  - versitygw (posix backend): verifies SigV4, for the wrong-credentials tests.
// With SQLITE_S3VFS_TEST_ENDPOINT set, no server is started and the command runs against that
// endpoint (credentials and region from the usual AWS_* variables).
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer, connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

const root = resolve(__dirname, '..')
const tools = join(root, '.tools', 'bin')

export function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const srv = createServer()
    srv.once('error', fail)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number }
      srv.close(() => ok(port))
    })
  })
}

export async function waitForPort(port: number, proc: ChildProcess, name: string): Promise<void> {
  const deadline = Date.now() + 30_000
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`${name} exited with code ${proc.exitCode}`)
    const up = await new Promise<boolean>((ok) => {
      const sock = connect(port, '127.0.0.1', () => {
        sock.destroy()
        ok(true)
      })
      sock.on('error', () => ok(false))
    })
    if (up) return
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`${name} did not listen on ${port} within 30 s`)
}

export interface Servers {
  env: Record<string, string>
  stop(): void
}

export async function startServers(): Promise<Servers> {
  const procs: ChildProcess[] = []
  const dirs: string[] = []
  const stop = () => {
    for (const p of procs) p.kill('SIGTERM')
    for (const d of dirs) rmSync(d, { recursive: true, force: true })
  }
  try {
    const mainPort = await freePort()
    const gofakes3 = spawn(join(tools, 'gofakes3'), ['-backend', 'memory', '-host', `127.0.0.1:${mainPort}`, '-autobucket', '-quiet'], {
      stdio: ['ignore', 'ignore', 'inherit'],
    })
    procs.push(gofakes3)
    await waitForPort(mainPort, gofakes3, 'gofakes3')

    const sigPort = await freePort()
    const dir = mkdtempSync(join(tmpdir(), 'versitygw-'))
    dirs.push(dir)
    for (const sub of ['meta', 'data']) mkdirSync(join(dir, sub), { recursive: true })
    const versity = spawn(
      join(tools, 'versitygw'),
      ['--port', `127.0.0.1:${sigPort}`, 'posix', '--sidecar', join(dir, 'meta'), join(dir, 'data')],
      {
        stdio: ['ignore', 'ignore', 'inherit'],
        env: { ...process.env, ROOT_ACCESS_KEY: 'sigv4-key', ROOT_SECRET_KEY: 'sigv4-secret' },
      },
    )
    procs.push(versity)
    await waitForPort(sigPort, versity, 'versitygw')
    return {
      env: {
        SQLITE_S3VFS_TEST_ENDPOINT: `http://127.0.0.1:${mainPort}`,
        SQLITE_S3VFS_TEST_SIGV4_ENDPOINT: `http://127.0.0.1:${sigPort}`,
        SQLITE_S3VFS_TEST_SIGV4_KEY: 'sigv4-key',
        SQLITE_S3VFS_TEST_SIGV4_SECRET: 'sigv4-secret',
        AWS_ACCESS_KEY_ID: 'test',
        AWS_SECRET_ACCESS_KEY: 'test',
        AWS_REGION: 'us-east-1',
      },
      stop,
    }
  } catch (e) {
    stop()
    throw e
  }
}

async function main() {
  const [cmd, ...args] = process.argv.slice(2)
  if (!cmd) throw new Error('usage: with-s3 <command> [args...]')
  let servers: Servers | null = null
  let env: Record<string, string | undefined> = { ...process.env }
  if (!process.env.SQLITE_S3VFS_TEST_ENDPOINT) {
    servers = await startServers()
    env = { ...env, ...servers.env }
  }
  const child = spawn(cmd, args, { stdio: 'inherit', env })
  const forward = (sig: NodeJS.Signals) => child.kill(sig)
  process.on('SIGINT', forward)
  process.on('SIGTERM', forward)
  child.on('exit', (code, signal) => {
    servers?.stop()
    process.exit(code ?? (signal ? 1 : 0))
  })
}

if (require.main === module) {
  main().catch((e) => {
    console.error(e)
    process.exit(1)
  })
}
