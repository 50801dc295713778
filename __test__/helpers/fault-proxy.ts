// A fault-injecting HTTP proxy in front of the test's S3 server (path-style requests), run in the
// test process: each rule matches requests by kind and key and, from its nth match on, answers
// `count` of them with an S3 error status; resets the connection or stalls (never answers) before
// the request is forwarded or after the server has applied it (the write lands, the answer is
// lost); or forwards the answer's headers and half its body, then cuts the connection
// (`truncate`) or stops sending (`stall-body`).
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { endpoint } from './s3'

/** S3 request kinds as the proxy tells them apart. `PUT_INM` is a PUT with `If-None-Match`. */
export type RequestKind = 'GET' | 'HEAD' | 'PUT' | 'PUT_INM' | 'DELETE' | 'LIST' | 'POST'

export interface FaultRule {
  kind?: RequestKind
  key?: RegExp
  /** Only requests with (true) or without (false) a `Range` header. */
  ranged?: boolean
  /** The first matching request (1-based) the fault applies to. Default 1. */
  nth?: number
  /** How many matching requests, from the nth on, get the fault. Default: every one. */
  count?: number
  action: 'status' | 'reset' | 'stall' | 'truncate' | 'stall-body'
  /** For `status`: the HTTP status (the body is an S3 error document with a matching code). */
  status?: number
  /** `reset`, `stall`: before forwarding (nothing lands) or after the server answered (it landed). */
  when?: 'before' | 'after'
}

interface ActiveRule extends FaultRule {
  seen: number
}

const S3_CODES: Record<number, string> = {
  403: 'AccessDenied',
  409: 'ConditionalRequestConflict',
  500: 'InternalError',
  503: 'ServiceUnavailable',
}

function kindOf(req: http.IncomingMessage): { kind: RequestKind; key: string } {
  const url = new URL(req.url ?? '/', 'http://proxy')
  const parts = url.pathname.split('/').filter(Boolean)
  const key = decodeURIComponent(parts.slice(1).join('/')) + (url.pathname.endsWith('/') && parts.length > 1 ? '/' : '')
  const method = req.method ?? 'GET'
  if (method === 'GET' && parts.length <= 1) return { kind: 'LIST', key: url.searchParams.get('prefix') ?? '' }
  if (method === 'PUT' && req.headers['if-none-match']) return { kind: 'PUT_INM', key }
  return { kind: method as RequestKind, key }
}

export class FaultProxy {
  #server: http.Server
  #rules: ActiveRule[] = []
  #hits = 0
  #agent = new http.Agent({ keepAlive: true, maxSockets: 256 })
  /** Every request seen, in order: `KIND key`. */
  readonly log: string[] = []
  /** Every request seen, in order, with its headers. */
  readonly requests: { kind: RequestKind; key: string; headers: http.IncomingHttpHeaders }[] = []
  url = ''
  /** Called with each request before any rule. `'drop'` closes its connection unsent; a function
   *  lets the request land, then is called once the server has answered (the answer is lost). */
  onRequest?: (kind: RequestKind, key: string) => 'drop' | (() => void) | void
  /** Drop `If-None-Match` from PUTs: the proxy then plays a store without conditional writes. */
  stripIfNoneMatch = false

  private constructor() {
    const upstream = new URL(endpoint)
    this.#server = http.createServer((req, res) => {
      const { kind, key } = kindOf(req)
      this.log.push(`${kind} ${key}`)
      this.requests.push({ kind, key, headers: req.headers })
      const hook = this.onRequest?.(kind, key)
      if (hook === 'drop') {
        req.socket.destroy()
        return
      }
      const landed = typeof hook === 'function' ? hook : undefined
      const rule = this.#match(kind, key, req.headers.range !== undefined)
      if (rule?.action === 'status') {
        const status = rule.status ?? 503
        const code = S3_CODES[status] ?? `HTTP${status}`
        req.resume()
        res.writeHead(status, { 'content-type': 'application/xml' })
        res.end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>injected by the test proxy</Message></Error>`)
        return
      }
      if (rule?.action === 'reset' && rule.when !== 'after') {
        req.socket.destroy()
        return
      }
      if (rule?.action === 'stall' && rule.when !== 'after') {
        req.resume() // read the request, never answer: the client must give up on its own
        return
      }
      const headers = { ...req.headers }
      if (this.stripIfNoneMatch && req.method === 'PUT') delete headers['if-none-match']
      const up = http.request(
        { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers, agent: this.#agent },
        (ur) => {
          if (landed) {
            ur.resume()
            ur.on('end', () => {
              landed()
              req.socket.destroy()
            })
            return
          }
          if (rule?.action === 'reset' || rule?.action === 'stall') {
            // The server applied the request; its answer never arrives.
            ur.resume()
            if (rule.action === 'reset') ur.on('end', () => req.socket.destroy())
            return
          }
          res.writeHead(ur.statusCode ?? 502, ur.headers)
          if (rule?.action === 'truncate' || rule?.action === 'stall-body') {
            const chunks: Buffer[] = []
            ur.on('data', (c: Buffer) => chunks.push(c))
            ur.on('end', () => {
              const body = Buffer.concat(chunks)
              res.write(body.subarray(0, Math.floor(body.length / 2)))
              if (rule.action === 'truncate') setTimeout(() => req.socket.destroy(), 20)
            })
            return
          }
          ur.pipe(res)
        },
      )
      up.on('error', () => req.socket.destroy())
      req.pipe(up)
    })
  }

  static async start(): Promise<FaultProxy> {
    const p = new FaultProxy()
    await new Promise<void>((ok) => p.#server.listen(0, '127.0.0.1', ok))
    p.url = `http://127.0.0.1:${(p.#server.address() as AddressInfo).port}`
    return p
  }

  /** Adds a rule; rules are tried in the order added, the first that applies wins. */
  add(rule: FaultRule): void {
    this.#rules.push({ ...rule, seen: 0 })
  }

  /** Requests a rule has applied to so far. */
  hits(): number {
    return this.#hits
  }

  clear(): void {
    this.#rules = []
  }

  #match(kind: RequestKind, key: string, ranged: boolean): ActiveRule | undefined {
    let hit: ActiveRule | undefined
    for (const r of this.#rules) {
      if (r.kind !== undefined && r.kind !== kind) continue
      if (r.ranged !== undefined && r.ranged !== ranged) continue
      if (r.key !== undefined && !r.key.test(key)) continue
      r.seen++
      const nth = r.nth ?? 1
      const inWindow = r.seen >= nth && (r.count === undefined || r.seen < nth + r.count)
      if (inWindow && hit === undefined) hit = r
    }
    if (hit) this.#hits++
    return hit
  }

  async stop(): Promise<void> {
    this.#agent.destroy()
    this.#server.closeAllConnections()
    await new Promise<void>((ok) => this.#server.close(() => ok()))
  }
}
