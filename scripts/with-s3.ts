// Runs a command with local S3-protocol servers on 127.0.0.1 and stops them afterwards:
//  - the main test server, SQLITE_S3VFS_TEST_SERVER: gofakes3 (default; memory backend, atomic
//    If-None-Match, no SigV4 check), versitygw (posix backend), moto (moto_server) or s3proxy
//    (filesystem-nio2 provider);
//  - versitygw (posix backend): verifies SigV4, for the wrong-credentials tests.
// With SQLITE_S3VFS_TEST_ENDPOINT set, no server is started and the command runs against that
// endpoint (credentials and region from the usual AWS_* variables).
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
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

export const SERVERS = ['gofakes3', 'versitygw', 'moto', 's3proxy'] as const
export type ServerName = (typeof SERVERS)[number]

/** Starts one S3 server on a free port; every server accepts the access key `test` / `test`
 *  (versitygw and s3proxy verify SigV4 with it). */
export async function startServer(
  name: ServerName,
  procs: ChildProcess[],
  dirs: string[],
  creds = { key: 'test', secret: 'test' },
): Promise<string> {
  const port = await freePort()
  const out: { stdio: ['ignore', 'ignore', 'inherit'] } = { stdio: ['ignore', 'ignore', 'inherit'] }
  let proc: ChildProcess
  if (name === 'gofakes3') {
    proc = spawn(join(tools, 'gofakes3'), ['-backend', 'memory', '-host', `127.0.0.1:${port}`, '-autobucket', '-quiet'], out)
  } else if (name === 'versitygw') {
    const dir = mkdtempSync(join(tmpdir(), 'versitygw-'))
    dirs.push(dir)
    for (const sub of ['meta', 'data']) mkdirSync(join(dir, sub), { recursive: true })
    proc = spawn(join(tools, 'versitygw'), ['--port', `127.0.0.1:${port}`, 'posix', '--sidecar', join(dir, 'meta'), join(dir, 'data')], {
      ...out,
      env: { ...process.env, ROOT_ACCESS_KEY: creds.key, ROOT_SECRET_KEY: creds.secret },
    })
  } else if (name === 'moto') {
    // moto logs every request on stderr.
    proc = spawn(join(root, '.venv', 'bin', 'moto_server'), ['-H', '127.0.0.1', '-p', `${port}`], { stdio: 'ignore' })
  } else {
    const dir = mkdtempSync(join(tmpdir(), 's3proxy-'))
    dirs.push(dir)
    const conf = join(dir, 's3proxy.conf')
    mkdirSync(join(dir, 'data'))
    writeFileSync(
      conf,
      [
        `s3proxy.endpoint=http://127.0.0.1:${port}`,
        's3proxy.authorization=aws-v2-or-v4',
        `s3proxy.identity=${creds.key}`,
        `s3proxy.credential=${creds.secret}`,
        // On disk: the in-memory provider keeps every object in the JVM heap, which the suite's
        // 1-GiB lock-byte database exhausts (every request then answers 500).
        'jclouds.provider=filesystem-nio2',
        `jclouds.filesystem.basedir=${join(dir, 'data')}`,
        'jclouds.identity=x',
        'jclouds.credential=x',
      ].join('\n'),
    )
    proc = spawn('java', ['-jar', join(root, '.tools', 's3proxy', 's3proxy-4.0.0-jar-with-dependencies.jar'), '--properties', conf], out)
  }
  procs.push(proc)
  await waitForPort(port, proc, name)
  return `http://127.0.0.1:${port}`
}

export async function startServers(main: ServerName = 'gofakes3'): Promise<Servers> {
  const procs: ChildProcess[] = []
  const dirs: string[] = []
  const stop = () => {
    for (const p of procs) p.kill('SIGTERM')
    for (const d of dirs) rmSync(d, { recursive: true, force: true })
  }
  try {
    const mainEndpoint = await startServer(main, procs, dirs)
    const sigEndpoint = await startServer('versitygw', procs, dirs, { key: 'sigv4-key', secret: 'sigv4-secret' })
    return {
      env: {
        SQLITE_S3VFS_TEST_SERVER: main,
        SQLITE_S3VFS_TEST_ENDPOINT: mainEndpoint,
        SQLITE_S3VFS_TEST_SIGV4_ENDPOINT: sigEndpoint,
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
    const main = (process.env.SQLITE_S3VFS_TEST_SERVER ?? 'gofakes3') as ServerName
    if (!SERVERS.includes(main)) throw new Error(`SQLITE_S3VFS_TEST_SERVER must be one of ${SERVERS.join(', ')}`)
    servers = await startServers(main)
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
