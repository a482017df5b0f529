/**
 * A FAULT-INJECTING HTTPS REVERSE PROXY in front of a LocalRegistry, for testing how an OCI distribution client
 * (the pipeline's chunked uploader) survives what real registries and the load balancers in front of them do:
 * error statuses, rate limits, connections that drop before the answer or in the middle of a request body, and
 * upload sessions that expired on the server.
 *
 * It listens on its own 127.0.0.1 port with a certificate from the registry's CA (clients that trust the registry
 * trust the proxy), and forwards every request to the registry: bodies streamed both ways, headers kept except the
 * hop-by-hop ones, `Host` set to the registry's. The registry builds absolute `Location` URLs from that Host (upload
 * URLs, blob URLs); the proxy rewrites those that point at the registry to point at itself, so a client that
 * follows them stays behind the proxy. `WWW-Authenticate` is untouched: with token auth, the client still gets its
 * tokens straight from the token server, as a client behind a registry's load balancer does.
 *
 * Faults are armed by the test, each for the next `count` requests that match a method and a path regex (the path
 * without its query), the first armed fault that matches wins; a request matched by none is forwarded as is. Every
 * request is logged (`requests`): method, path, query (the upload `_state` token redacted), the status, the request
 * and response body bytes, the fault applied. What each fault does on the wire is on its method below.
 *
 * distribution 2.8.2's upload sessions, as a client sees them (registry/handlers/blobupload.go and hmac.go,
 * registry/storage/blobwriter.go and driver/filesystem/driver.go, read at tag v2.8.2; checked by registry-infra.test.ts):
 *   - every upload URL carries `_state`, an HMAC-signed {name, uuid, offset, startedAt}; each POST, PATCH and GET
 *     answer gives a NEW upload URL (Location) with the new offset, `Range: 0-<last byte>` (`0-0` for an EMPTY upload
 *     as for a 1-byte one) and `Docker-Upload-UUID`. GET on the upload URL answers 204 with those headers.
 *   - a request whose `_state` offset differs from the bytes stored (a client that lost a PATCH answer and goes on
 *     with the URL it had) gets 404 BLOB_UPLOAD_INVALID, every time ("upload resumed at wrong offest" in the log).
 *     The handler means to cancel the session then, but the cancel fails (the writer was closed first) and the
 *     session stays in storage, out of that client's reach: 2.8 cannot tell it the offset, it must start a new
 *     upload (POST). `trackUploadOffsets` below makes the proxy stand in for a registry that can.
 *   - PATCH ignores `Content-Range` (a TODO in 2.8): the body is appended at the stored offset, whatever it says.
 *   - PUT ?digest= with a wrong digest: 400 DIGEST_INVALID, and the session stays (same failed cancel): the right
 *     digest on the same URL still completes it.
 *   - a session that is gone (purged as expired, or finished) answers 404 BLOB_UPLOAD_UNKNOWN
 *     (`blob upload unknown to registry`).
 */
import * as fs from 'fs';
import * as http from 'http';
import * as https from 'https';
import { AddressInfo, Socket } from 'net';
import * as path from 'path';
import { Transform } from 'stream';
import { loadCa, TestCa } from './ca';
import { dockerConfigJsonFor, LocalRegistry } from './registry';

/** Which requests a fault applies to. Both parts must match; an empty match takes every request. */
export interface FaultMatch {
  /** HTTP method, or several. Default: any. */
  readonly method?: string | readonly string[];
  /** Tested against the path without its query string, e.g. `/v2/models/x/blobs/uploads/<uuid>`. Default: any. */
  readonly path?: RegExp;
}

/** The requests of a push, as FaultMatch values. */
export const REGISTRY_ROUTES = {
  ping: { method: 'GET', path: /^\/v2\/$/ },
  blobHead: { method: 'HEAD', path: /^\/v2\/.+\/blobs\/[a-z0-9]+:[a-f0-9]+$/ },
  uploadStart: { method: 'POST', path: /^\/v2\/.+\/blobs\/uploads\/$/ },
  uploadPatch: { method: 'PATCH', path: /^\/v2\/.+\/blobs\/uploads\/[^/]+$/ },
  uploadStatus: { method: 'GET', path: /^\/v2\/.+\/blobs\/uploads\/[^/]+$/ },
  uploadFinish: { method: 'PUT', path: /^\/v2\/.+\/blobs\/uploads\/[^/]+$/ },
  /** Any request on an upload session's URL (PATCH, PUT, GET, DELETE). */
  uploadSession: { path: /^\/v2\/.+\/blobs\/uploads\/[^/]+$/ },
  manifestPut: { method: 'PUT', path: /^\/v2\/.+\/manifests\/[^/]+$/ },
} as const satisfies Record<string, FaultMatch>;

export type FaultKind = 'failWith' | 'cutAfterForwarding' | 'cutRequestBody' | 'expireUpload';

/** One request the proxy took, and what became of it. */
export interface ProxyRequest {
  readonly method: string;
  /** Path without the query string. */
  readonly path: string;
  /** The query string (`?...`, or ''), with the upload `_state` token replaced by `_state=REDACTED`. */
  readonly query: string;
  /**
   * The status the registry answered (also when a cutAfterForwarding kept it from the client), or the one a
   * failWith answered; undefined when nothing answered (cutRequestBody, registry unreachable).
   */
  status?: number;
  /** The fault applied to this request, if any. */
  fault?: FaultKind;
  /** Request body bytes the proxy read from the client (for cutRequestBody: up to the cut). */
  requestBytes: number;
  /** Response body bytes sent to the client. */
  responseBytes: number;
  /** Set when the proxy could not reach the registry, or a side broke off mid-stream. */
  error?: string;
}

export interface FailWithOptions {
  /** `Retry-After: N` (seconds). Default 1 for 429, none otherwise. */
  readonly retryAfterSeconds?: number;
  /** The `code` of the error body. Default by status: TOOMANYREQUESTS (429), UNAVAILABLE (502, 503), UNKNOWN. */
  readonly code?: string;
  /** The `message` of the error body. Default distribution's message for the code. */
  readonly message?: string;
}

export interface FaultProxyOptions {
  /** Signs the proxy's certificate. Default: the registry's CA (the directory of `registry.caCertPath`). */
  readonly ca?: TestCa;
  /** For the proxy's certificate, certs.d and authfile. Default: a new directory in the registry's workDir. */
  readonly workDir?: string;
  /**
   * Stand in for a registry that keeps upload offsets server-side: the proxy remembers the newest upload URL the
   * registry gave for each session (also from an answer it kept from the client) and sends every request on that
   * session with the newest `_state`, so GET on a stale upload URL answers 204 with the real `Range` instead of
   * distribution 2.8's BLOB_UPLOAD_INVALID (see the module comment). Default false: distribution 2.8 as it is.
   */
  readonly trackUploadOffsets?: boolean;
}

interface ArmedFault {
  readonly kind: FaultKind;
  readonly match: FaultMatch;
  left: number;
  readonly status?: number;
  readonly failOptions?: FailWithOptions;
  readonly afterBytes?: number;
}

/** Headers that belong to one connection, not to the message (RFC 9110 7.6.1): not forwarded. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

/** distribution's errcode messages (registry/api/errcode/register.go) by code. */
const ERROR_MESSAGES: Record<string, string> = {
  UNKNOWN: 'unknown error',
  UNAVAILABLE: 'service unavailable',
  TOOMANYREQUESTS: 'too many requests',
  UNAUTHORIZED: 'authentication required',
  DENIED: 'requested access to the resource is denied',
};

const UPLOAD_URL = /^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/;

function matches(m: FaultMatch, method: string, pathname: string): boolean {
  const methods = m.method === undefined ? undefined : typeof m.method === 'string' ? [m.method] : m.method;
  if (methods && !methods.some((x) => x.toUpperCase() === method)) return false;
  return !m.path || m.path.test(pathname);
}

function redactQuery(search: string): string {
  return search.replace(/([?&]_state=)[^&]*/, '$1REDACTED');
}

/** Raw headers ([k, v, k, v, ...]) without the hop-by-hop ones, as a header object (repeated names as arrays). */
function forwardableHeaders(raw: readonly string[], replace: Record<string, string> = {}): http.OutgoingHttpHeaders {
  const out: Record<string, string | string[]> = {};
  const replaced = new Set(Object.keys(replace).map((k) => k.toLowerCase()));
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || replaced.has(lower)) continue;
    const prev = out[name];
    out[name] = prev === undefined ? raw[i + 1] : [...(Array.isArray(prev) ? prev : [prev]), raw[i + 1]];
  }
  return { ...out, ...replace };
}

/** A pass-through stream that counts bytes into `add`. */
function counter(add: (n: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      add(chunk.length);
      cb(null, chunk);
    },
  });
}

export class FaultProxy {
  /** Every request since the start or the last `reset()`, in arrival order. */
  readonly requests: ProxyRequest[] = [];
  /** `127.0.0.1:PORT`: the registry host for image references through the proxy. */
  host = '';
  port = 0;
  /** `https://127.0.0.1:PORT`. */
  url = '';
  /** The CA certificate that signed the proxy's (and the registry's) certificate. */
  caCertPath = '';
  /** Per-host directory holding ca.crt, for `--cert-dir` (see registry.ts). */
  certDir = '';
  certsDRoot = '';
  /** The registry's credentials. */
  readonly username: string;
  readonly password: string;
  /** The registry's credentials under the proxy's host: `--authfile` through the proxy. */
  dockerConfigJson = '';
  authFile = '';
  private faults: ArmedFault[] = [];
  private server!: https.Server;
  private readonly sockets = new Set<Socket>();
  private readonly upstreamRequests = new Set<http.ClientRequest>();
  private agent!: https.Agent;
  /** upload uuid -> the newest `_state` the registry gave for it (trackUploadOffsets). */
  private readonly latestState = new Map<string, string>();

  constructor(readonly registry: LocalRegistry, private readonly options: FaultProxyOptions = {}) {
    this.username = registry.username;
    this.password = registry.password;
  }

  async start(): Promise<void> {
    const workDir = this.options.workDir ?? fs.mkdtempSync(path.join(this.registry.workDir, 'fault-proxy-'));
    fs.mkdirSync(workDir, { recursive: true });
    const ca = this.options.ca ?? loadCa(path.dirname(this.registry.caCertPath));
    const cert = await ca.issueServerCert(path.join(workDir, 'tls'), { ips: ['127.0.0.1'], dnsNames: ['localhost'] });
    // One keep-alive agent for the registry side, destroyed by close(): no idle socket outlives the proxy.
    this.agent = new https.Agent({ keepAlive: true, ca: fs.readFileSync(this.registry.caCertPath) });
    const tls = { key: fs.readFileSync(cert.keyPath), cert: fs.readFileSync(cert.certPath) };
    this.server = https.createServer(tls, (req, res) => this.handle(req, res));
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.port = (this.server.address() as AddressInfo).port;
    this.host = `127.0.0.1:${this.port}`;
    this.url = `https://${this.host}`;
    this.caCertPath = ca.certPath;
    this.certsDRoot = path.join(workDir, 'certs.d');
    this.certDir = path.join(this.certsDRoot, this.host);
    fs.mkdirSync(this.certDir, { recursive: true });
    fs.copyFileSync(ca.certPath, path.join(this.certDir, 'ca.crt'));
    this.dockerConfigJson = dockerConfigJsonFor([{ host: this.host, username: this.username, password: this.password }]);
    this.authFile = path.join(workDir, 'auth.json');
    fs.writeFileSync(this.authFile, this.dockerConfigJson, { mode: 0o600 });
  }

  /**
   * The next `count` matching requests get `status` from the proxy, the registry never sees them: the proxy reads
   * the whole request body first (as a gateway that buffers requests does), then answers with a registry-style
   * body `{"errors":[{"code","message","detail"}]}` (Content-Type application/json; `Retry-After` for 429 by
   * default) on the same keep-alive connection. (skopeo 1.9.3 shows the body's `code: message` for a 4xx only; for a
   * 5xx it says `received unexpected HTTP status: 500 Internal Server Error`: docker/distribution's client code.)
   */
  failWith(status: number, count: number, match: FaultMatch = {}, opts: FailWithOptions = {}): void {
    this.faults.push({ kind: 'failWith', match, left: count, status, failOptions: opts });
  }

  /**
   * The next `count` matching requests are forwarded whole and the registry answers them (a PATCH is committed),
   * then the proxy destroys the client's socket before writing any byte of the answer (TCP FIN, no TLS close_notify,
   * no status line): the client sees the connection closed while it waits for the response. The registry's answer
   * is read and dropped (its status is in the log).
   */
  cutAfterForwarding(count: number, match: FaultMatch = {}): void {
    this.faults.push({ kind: 'cutAfterForwarding', match, left: count });
  }

  /**
   * The next `count` matching requests: the proxy reads `afterBytes` bytes of the body (at least; it counts whole
   * TLS records as they come), forwards nothing, and destroys the client's socket: the client's write fails
   * mid-body (EPIPE/ECONNRESET: the unread bytes make the kernel send RST). A body shorter than `afterBytes` is
   * cut at its end, still unanswered. The registry never sees the request.
   */
  cutRequestBody(count: number, match: FaultMatch = {}, afterBytes: number): void {
    this.faults.push({ kind: 'cutRequestBody', match, left: count, afterBytes });
  }

  /**
   * The next `count` matching requests ON AN UPLOAD SESSION URL (`/v2/<name>/blobs/uploads/<uuid>`; other requests
   * do not use it up): before forwarding, the proxy removes the session from the registry's storage
   * (`<storage>/docker/registry/v2/repositories/<name>/_uploads/<uuid>`, what distribution's upload purger does to
   * an expired session), then forwards the request unchanged: the registry answers 404 BLOB_UPLOAD_UNKNOWN as for
   * any expired session. (Not a DELETE on the upload URL: under token auth that needs the `delete` action, which
   * the client's token does not carry, and the registry would log a client cancel, not an expiry.)
   */
  expireUpload(count: number, match: FaultMatch = {}): void {
    this.faults.push({ kind: 'expireUpload', match, left: count });
  }

  /** The faults still armed, with the requests each has left. */
  pendingFaults(): Array<{ kind: FaultKind; left: number; match: FaultMatch }> {
    return this.faults.filter((f) => f.left > 0).map((f) => ({ kind: f.kind, left: f.left, match: f.match }));
  }

  /** Disarms every fault and clears the request log (and the tracked upload offsets). */
  reset(): void {
    this.faults = [];
    this.requests.length = 0;
    this.latestState.clear();
  }

  /** Stops listening, ends every client connection and every request to the registry, and the agent's sockets. */
  async close(): Promise<void> {
    if (!this.server) return;
    const closed = this.server.listening ? new Promise<void>((resolve) => this.server.close(() => resolve())) : Promise.resolve();
    for (const r of this.upstreamRequests) r.destroy();
    for (const s of this.sockets) s.destroy();
    this.agent.destroy();
    await closed;
  }

  private take(method: string, pathname: string): ArmedFault | undefined {
    const f = this.faults.find((x) => x.left > 0 && matches(x.match, method, pathname) && (x.kind !== 'expireUpload' || UPLOAD_URL.test(pathname)));
    if (f) f.left--;
    return f;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const method = (req.method ?? 'GET').toUpperCase();
    const url = new URL(req.url ?? '/', this.url);
    const rec: ProxyRequest = { method, path: url.pathname, query: redactQuery(url.search), requestBytes: 0, responseBytes: 0 };
    this.requests.push(rec);
    const fault = this.take(method, url.pathname);
    if (fault) rec.fault = fault.kind;

    if (fault?.kind === 'failWith') {
      req.on('data', (b: Buffer) => { rec.requestBytes += b.length; });
      req.on('end', () => this.answerError(res, rec, fault.status!, fault.failOptions ?? {}));
      return;
    }
    if (fault?.kind === 'cutRequestBody') {
      const cut = () => {
        if (req.socket.destroyed) return;
        req.socket.destroy();
      };
      req.on('data', (b: Buffer) => {
        rec.requestBytes += b.length;
        if (rec.requestBytes >= fault.afterBytes!) cut();
      });
      req.on('end', cut);
      return;
    }
    if (fault?.kind === 'expireUpload') {
      const [, name, uuid] = UPLOAD_URL.exec(url.pathname)!;
      const sessionDir = path.join(this.registry.storageDir, 'docker', 'registry', 'v2', 'repositories', ...name.split('/'), '_uploads', uuid);
      // The request body waits in the socket meanwhile (nothing reads it until forward pipes it).
      fs.promises.rm(sessionDir, { recursive: true, force: true })
        .then(() => this.forward(req, res, rec, url, undefined))
        .catch((e: Error) => this.upstreamFailed(res, rec, e));
      return;
    }
    this.forward(req, res, rec, url, fault);
  }

  private forward(req: http.IncomingMessage, res: http.ServerResponse, rec: ProxyRequest, url: URL, fault: ArmedFault | undefined): void {
    const upload = UPLOAD_URL.exec(url.pathname);
    if (this.options.trackUploadOffsets && upload && this.latestState.has(upload[2])) {
      url.searchParams.set('_state', this.latestState.get(upload[2])!);
    }
    const up = https.request({
      host: '127.0.0.1',
      port: this.registry.port,
      method: rec.method,
      path: `${url.pathname}${url.search}`,
      headers: forwardableHeaders(req.rawHeaders, { Host: this.registry.host }),
      agent: this.agent,
    });
    this.upstreamRequests.add(up);
    up.on('close', () => this.upstreamRequests.delete(up));
    up.on('error', (e) => this.upstreamFailed(res, rec, e));
    let cut = false;
    // The client went away before its answer was complete: stop the registry side too (not when we cut it
    // ourselves after the registry answered: that answer is drained so the connection to the registry stays usable).
    res.on('close', () => {
      if (!res.writableFinished && !cut) up.destroy();
    });

    up.on('response', (ures) => {
      rec.status = ures.statusCode;
      const location = ures.headers.location;
      if (this.options.trackUploadOffsets && location) {
        const loc = new URL(location, this.registry.url);
        const session = UPLOAD_URL.exec(loc.pathname);
        const state = loc.searchParams.get('_state');
        if (session && state) this.latestState.set(session[2], state);
      }
      if (fault?.kind === 'cutAfterForwarding') {
        cut = true;
        ures.resume(); // drain the registry's answer so its connection can serve the next request
        req.socket.destroy();
        return;
      }
      const headers = forwardableHeaders(ures.rawHeaders);
      for (const name of Object.keys(headers)) {
        const v = headers[name];
        if (name.toLowerCase() === 'location' && typeof v === 'string' && v.startsWith(this.registry.url)) {
          headers[name] = `${this.url}${v.slice(this.registry.url.length)}`;
        }
      }
      res.writeHead(ures.statusCode ?? 502, ures.statusMessage, headers);
      ures.pipe(counter((n) => { rec.responseBytes += n; })).pipe(res);
      ures.on('error', (e) => {
        rec.error = `registry response: ${e.message}`;
        res.destroy();
      });
    });

    req.pipe(counter((n) => { rec.requestBytes += n; })).pipe(up);
    req.on('error', (e) => {
      rec.error = `client request: ${e.message}`;
      up.destroy();
    });
  }

  private upstreamFailed(res: http.ServerResponse, rec: ProxyRequest, e: Error): void {
    rec.error = rec.error ?? `registry: ${e.message}`;
    if (res.headersSent || res.destroyed) {
      res.destroy();
      return;
    }
    // As a gateway answers when the backend is down.
    this.answerError(res, rec, 502, { message: `bad gateway: ${e.message}` }, false);
  }

  private answerError(res: http.ServerResponse, rec: ProxyRequest, status: number, o: FailWithOptions, injected = true): void {
    const code = o.code ?? (status === 429 ? 'TOOMANYREQUESTS' : status === 502 || status === 503 ? 'UNAVAILABLE' : status === 401 ? 'UNAUTHORIZED' : status === 403 ? 'DENIED' : 'UNKNOWN');
    const body = Buffer.from(JSON.stringify({
      errors: [{ code, message: o.message ?? ERROR_MESSAGES[code] ?? 'unknown error', detail: injected ? 'fault injected by the e2e fault proxy' : undefined }],
    }));
    const headers: http.OutgoingHttpHeaders = { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': body.length };
    const retryAfter = o.retryAfterSeconds ?? (status === 429 ? 1 : undefined);
    if (retryAfter !== undefined) headers['Retry-After'] = String(retryAfter);
    rec.status = status;
    rec.responseBytes = rec.method === 'HEAD' ? 0 : body.length;
    res.writeHead(status, headers);
    res.end(body);
  }
}

/**
 * Starts a fault proxy in front of `registry` on a free 127.0.0.1 port. Point the client at `proxy.host` with
 * `proxy.certDir` and `proxy.authFile`. Always `await proxy.close()` in afterAll (before stopping the registry).
 */
export async function startFaultProxy(registry: LocalRegistry, options: FaultProxyOptions = {}): Promise<FaultProxy> {
  const proxy = new FaultProxy(registry, options);
  try {
    await proxy.start();
  } catch (e) {
    await proxy.close();
    throw e;
  }
  return proxy;
}

/** An HTTPS exchange with a registry or proxy, for tests that speak the protocol themselves. */
export interface HttpsExchange {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
}

/**
 * One HTTPS request trusting `ca` (PEM), on a fresh connection (no agent: nothing stays open), with an optional
 * body. Rejects when the connection fails or is cut before a complete answer, with the socket error
 * (e.g. 'socket hang up', ECONNRESET, EPIPE).
 */
export async function httpsRequest(url: string, o: {
  method?: string;
  headers?: http.OutgoingHttpHeaders;
  body?: Buffer | string;
  ca: Buffer | string;
  timeoutMs?: number;
}): Promise<HttpsExchange> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method: o.method ?? 'GET', headers: o.headers, ca: o.ca, agent: false, timeout: o.timeoutMs ?? 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (b: Buffer) => chunks.push(b));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout after ${o.timeoutMs ?? 10_000} ms: ${o.method ?? 'GET'} ${url}`)));
    req.on('error', reject);
    req.end(o.body);
  });
}
