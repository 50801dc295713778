// A user-space latency proxy in front of the S3 server (the kernel here has no netem): every
// request waits `latency` ms before it is forwarded, so each round trip costs what it would
// against a distant store. It also counts requests by kind and bytes in each direction, the same
// way for every system under test.
//   node --import tsx bench/proxy.ts <listenPort> <upstreamPort> <latencyMs>
// GET /__bench/stats returns the counters; POST /__bench/reset zeroes them.
import http from 'node:http'

const [listenPort, upstreamPort, latencyMs] = process.argv.slice(2).map(Number)
const agent = new http.Agent({ keepAlive: true, maxSockets: 1024 })

type Counters = Record<string, number>
let counters: Counters = {}
const add = (k: string, n = 1) => (counters[k] = (counters[k] ?? 0) + n)

/** S3's request kinds, from the method and the query string. */
function kind(method: string, url: string): string {
  const [path, query = ''] = url.split('?')
  const params = new URLSearchParams(query)
  if (method === 'GET' && (params.has('list-type') || path.split('/').filter(Boolean).length <= 1)) return 'list'
  if (method === 'POST' && params.has('delete')) return 'delete'
  if (method === 'PUT' || (method === 'POST' && (params.has('uploads') || params.has('uploadId')))) return 'put'
  return method.toLowerCase()
}

const server = http.createServer((req, res) => {
  if (req.url?.startsWith('/__bench/')) {
    if (req.url === '/__bench/reset') counters = {}
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify(counters))
    return
  }
  const k = kind(req.method ?? 'GET', req.url ?? '/')
  add(k)
  // The body waits, paused, until the request is forwarded.
  setTimeout(() => {
    req.on('data', (c: Buffer) => add('bytesUp', c.length))
    const up = http.request(
      { host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers: req.headers, agent },
      (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.headers)
        ur.on('data', (c: Buffer) => add('bytesDown', c.length))
        ur.pipe(res)
      },
    )
    up.on('error', (e) => {
      res.writeHead(502)
      res.end(String(e))
    })
    req.pipe(up)
  }, latencyMs)
})
server.keepAliveTimeout = 60_000
server.listen(listenPort, '127.0.0.1', () => process.stdout.write('ready\n'))
