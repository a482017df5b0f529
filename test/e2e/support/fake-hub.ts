/**
 * STAND-IN FOR THE HUGGING FACE HUB (huggingface.co and its LFS/Xet CDN): there is no internet here, so this serves
 * model repositories from files on this host, over TLS on 127.0.0.1 (a certificate from the test CA, see ca.ts),
 * with the request and response shapes of the real hub as huggingface_hub reads them:
 *
 *   GET /api/models/{repo}/revision/{rev}?blobs=true  {id, sha, siblings: [{rfilename, size, blobId, lfs?: {sha256, size, pointerSize}}]}
 *   GET /api/models/{repo}/tree/{rev}?recursive=true  [{type: 'file'|'directory', oid, size, path, lfs?: {oid, size, pointerSize}}],
 *                                                      paged with `Link: <next url>; rel="next"` (hf_api.list_repo_tree / utils/_pagination.py)
 *   GET|HEAD /{repo}/resolve/{rev}/{path}             a small file (X-Repo-Commit, ETag = git blob id), or for an LFS file a 302 to the
 *                                                      CDN (another host: here another port) with X-Repo-Commit, X-Linked-Etag
 *                                                      (the sha256), X-Linked-Size (file_download.py reads these)
 *   GET /{sha256}?X-Signature=...                      the CDN: honours `Range: bytes=a-b` / `bytes=a-` (206 + Content-Range)
 *
 * Everything else a test needs to stage the faults a real hub and CDN show: a cap per CDN connection (the CDN's
 * per-stream limit), bodies cut after some bytes, 429s with `Retry-After` or the `RateLimit` header, a tree listing
 * over several pages, and a log of every request (path, range, status) to assert on what the client asked for.
 * One process, two TLS servers (hub and CDN), closed by `stop()`.
 */
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as http from 'http';
import * as https from 'https';
import { AddressInfo } from 'net';
import * as path from 'path';
import { TestCa } from './ca';

export interface HubFileSource {
  /** Repo-relative path, '/'-separated. */
  readonly path: string;
  /** Where the bytes are on this host. */
  readonly hostPath: string;
  readonly size: number;
  /** Hex sha256 of the content. */
  readonly sha256: string;
}

interface HubFile extends HubFileSource {
  readonly lfs: boolean;
  /** git blob id: sha1("blob <len>\0" + content), of the LFS pointer for an LFS file. */
  readonly oid: string;
}

interface Commit {
  readonly sha: string;
  readonly files: HubFile[];
}

export interface HubRequest {
  readonly server: 'hub' | 'cdn';
  readonly method: string;
  /** Path without the query string (the CDN's signature is not recorded). */
  readonly path: string;
  readonly query: string;
  readonly range?: string;
  readonly authorization?: string;
  status?: number;
  /** Body bytes sent (for cut bodies: before the cut). */
  bytesSent?: number;
}

export interface FakeHubOptions {
  /** The CA that signs the hub's and the CDN's certificate (clients trust its ca.crt). */
  readonly ca: TestCa;
  /** Directory for the server certificates. */
  readonly workDir: string;
  /** Cap per CDN connection, bytes per second (real CDNs cap each stream). Default: none. */
  readonly cdnBytesPerSecond?: number;
  /** Entries per page of the tree API. Default 1000 (like the hub). */
  readonly treePageSize?: number;
  /** Files at least this large are LFS files (served by the CDN). Default 1 MiB; *.safetensors always. */
  readonly lfsMinBytes?: number;
}

/** A fault for the next `count` matching requests. */
export interface RateLimitFault {
  readonly count: number;
  readonly status?: 429 | 503;
  /** `Retry-After: N`. */
  readonly retryAfterSeconds?: number;
  /** `RateLimit: "resolvers";r=0;t=N` (the IETF draft the hub follows) instead of Retry-After. */
  readonly rateLimitResetSeconds?: number;
  /** Which requests: default resolve requests. */
  readonly on?: 'resolve' | 'api' | 'cdn';
}

export interface CutFault {
  readonly count: number;
  /** Close the connection after this many body bytes. */
  readonly afterBytes: number;
  /** Only bodies of files whose path matches. Default every CDN body. */
  readonly pathMatches?: RegExp;
}

const gitBlobId = (content: Buffer): string => createHash('sha1').update(`blob ${content.length}\0`).update(content).digest('hex');

function lfsPointer(sha256: string, size: number): Buffer {
  return Buffer.from(`version https://git-lfs.github.com/spec/v1\noid sha256:${sha256}\nsize ${size}\n`);
}

export class FakeHub {
  /** Every request both servers answered, in order. */
  readonly requests: HubRequest[] = [];
  /** repo -> revision (branch, tag or commit sha) -> commit. */
  private readonly repos = new Map<string, Map<string, Commit>>();
  private readonly blobs = new Map<string, HubFile>();
  private hubServer!: https.Server;
  private cdnServer!: https.Server;
  private rateLimits: Array<RateLimitFault & { left: number }> = [];
  private cuts: Array<CutFault & { left: number }> = [];
  /** Paths the tree lists that resolve answers 404 for (a listing that disagrees with itself). */
  readonly missingOnResolve = new Set<string>();
  /** When set, hub requests need `Authorization: Bearer <token>`. */
  requiredToken: string | undefined;
  /** Per CDN connection cap (bytes/s); can be changed between runs. */
  cdnBytesPerSecond: number | undefined;
  treePageSize: number;
  hubUrl = '';
  cdnUrl = '';

  constructor(private readonly options: FakeHubOptions) {
    this.cdnBytesPerSecond = options.cdnBytesPerSecond;
    this.treePageSize = options.treePageSize ?? 1000;
  }

  async start(): Promise<void> {
    const cert = await this.options.ca.issueServerCert(path.join(this.options.workDir, 'tls'));
    const tls = { key: fs.readFileSync(cert.keyPath), cert: fs.readFileSync(cert.certPath) };
    this.hubServer = https.createServer(tls, (req, res) => this.handleHub(req, res));
    this.cdnServer = https.createServer(tls, (req, res) => this.handleCdn(req, res));
    for (const s of [this.hubServer, this.cdnServer]) {
      s.keepAliveTimeout = 30_000;
      await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
    }
    this.hubUrl = `https://127.0.0.1:${(this.hubServer.address() as AddressInfo).port}`;
    this.cdnUrl = `https://127.0.0.1:${(this.cdnServer.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    for (const s of [this.hubServer, this.cdnServer]) {
      if (!s) continue;
      s.closeAllConnections();
      await new Promise<void>((resolve) => s.close(() => resolve()));
    }
  }

  /**
   * Publishes `files` as commit `sha` of `repo`, reachable by its sha and by each of `revisions` (e.g. 'main').
   * Small files are read to compute their git blob id.
   */
  addCommit(repo: string, sha: string, files: readonly HubFileSource[], revisions: readonly string[] = ['main']): void {
    const lfsMin = this.options.lfsMinBytes ?? 1024 * 1024;
    const commit: Commit = {
      sha,
      files: files.map((f) => {
        const lfs = f.size >= lfsMin || f.path.endsWith('.safetensors');
        const oid = lfs ? gitBlobId(lfsPointer(f.sha256, f.size)) : gitBlobId(fs.readFileSync(f.hostPath));
        const file: HubFile = { ...f, lfs, oid };
        if (lfs) this.blobs.set(f.sha256, file);
        return file;
      }).sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)),
    };
    const revs = this.repos.get(repo) ?? new Map<string, Commit>();
    revs.set(sha, commit);
    for (const r of revisions) revs.set(r, commit);
    this.repos.set(repo, revs);
  }

  /** The next `count` matching requests get a 429 (or 503). */
  rateLimit(fault: RateLimitFault): void {
    this.rateLimits.push({ ...fault, left: fault.count });
  }

  /** The next `count` CDN bodies are cut after `afterBytes` bytes (the connection closes). */
  cutBodies(fault: CutFault): void {
    this.cuts.push({ ...fault, left: fault.count });
  }

  /** Clears faults and the request log (the published repos stay). */
  reset(): void {
    this.requests.length = 0;
    this.rateLimits = [];
    this.cuts = [];
    this.missingOnResolve.clear();
    this.requiredToken = undefined;
    this.cdnBytesPerSecond = this.options.cdnBytesPerSecond;
    this.treePageSize = this.options.treePageSize ?? 1000;
  }

  /** Requests for a repo file's content (resolve on the hub, or the CDN blob of that file). */
  fileRequests(filePath: string): HubRequest[] {
    const blob = [...this.blobs.values()].find((b) => b.path === filePath);
    return this.requests.filter((r) => (r.server === 'hub' && r.path.includes('/resolve/') && decodeURIComponent(r.path).endsWith(`/${filePath}`))
      || (r.server === 'cdn' && blob !== undefined && r.path === `/${blob.sha256}`));
  }

  /** Number of requests per path. */
  countsByPath(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const r of this.requests) out[`${r.server} ${r.path}`] = (out[`${r.server} ${r.path}`] ?? 0) + 1;
    return out;
  }

  private record(server: 'hub' | 'cdn', req: http.IncomingMessage): HubRequest {
    const url = new URL(req.url ?? '/', 'https://x');
    const r: HubRequest = {
      server,
      method: req.method ?? '',
      path: url.pathname,
      query: server === 'cdn' ? '' : url.search,
      range: req.headers.range,
      authorization: req.headers.authorization,
    };
    this.requests.push(r);
    return r;
  }

  private takeRateLimit(on: 'resolve' | 'api' | 'cdn'): (RateLimitFault & { left: number }) | undefined {
    const f = this.rateLimits.find((x) => x.left > 0 && (x.on ?? 'resolve') === on);
    if (f) f.left--;
    return f;
  }

  private sendRateLimit(res: http.ServerResponse, rec: HubRequest, f: RateLimitFault): void {
    const headers: http.OutgoingHttpHeaders = { 'Content-Type': 'text/plain' };
    if (f.retryAfterSeconds !== undefined) headers['Retry-After'] = String(f.retryAfterSeconds);
    if (f.rateLimitResetSeconds !== undefined) {
      headers.RateLimit = `"resolvers";r=0;t=${f.rateLimitResetSeconds}`;
      headers['RateLimit-Policy'] = '"fixed window";"resolvers";q=3000;w=300';
    }
    send(res, rec, f.status ?? 429, 'rate limited: slow down', headers);
  }

  private handleHub(req: http.IncomingMessage, res: http.ServerResponse): void {
    const rec = this.record('hub', req);
    if (this.requiredToken !== undefined && req.headers.authorization !== `Bearer ${this.requiredToken}`) {
      return send(res, rec, req.headers.authorization ? 403 : 401, 'unauthorized', { 'X-Error-Code': 'RepoNotFound', 'X-Error-Message': 'Repository not found' });
    }
    const url = new URL(req.url ?? '/', this.hubUrl);
    const api = /^\/api\/models\/([^/]+\/[^/]+)\/(revision|tree)\/([^/]+)$/.exec(url.pathname);
    if (api) {
      const limited = this.takeRateLimit('api');
      if (limited) return this.sendRateLimit(res, rec, limited);
      const revs = this.repos.get(api[1]);
      if (!revs) return send(res, rec, 401, 'no such repo', { 'X-Error-Code': 'RepoNotFound', 'X-Error-Message': 'Repository not found' });
      const commit = revs.get(decodeURIComponent(api[3]));
      if (!commit) return send(res, rec, 404, 'no such revision', { 'X-Error-Code': 'RevisionNotFound', 'X-Error-Message': 'Invalid rev id' });
      if (api[2] === 'revision') {
        const siblings = commit.files.map((f) => ({
          rfilename: f.path,
          size: f.size,
          blobId: f.oid,
          ...(f.lfs ? { lfs: { sha256: f.sha256, size: f.size, pointerSize: 134 } } : {}),
        }));
        return sendJson(res, rec, { id: api[1], sha: commit.sha, siblings });
      }
      return this.sendTreePage(res, rec, url, api[1], commit);
    }
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    if (resolve) {
      const limited = this.takeRateLimit('resolve');
      if (limited) return this.sendRateLimit(res, rec, limited);
      const commit = this.repos.get(resolve[1])?.get(decodeURIComponent(resolve[2]));
      if (!commit) return send(res, rec, 404, 'no such revision', { 'X-Error-Code': 'RevisionNotFound' });
      const name = decodeURIComponent(resolve[3]);
      const file = commit.files.find((f) => f.path === name);
      if (!file || this.missingOnResolve.has(name)) return send(res, rec, 404, 'no such entry', { 'X-Error-Code': 'EntryNotFound', 'X-Error-Message': `${name} does not exist on "${commit.sha}"` });
      if (file.lfs) {
        res.writeHead(302, {
          'Location': `${this.cdnUrl}/${file.sha256}?X-Signature=signed-${Date.now()}`,
          'X-Repo-Commit': commit.sha,
          'X-Linked-Etag': `"${file.sha256}"`,
          'X-Linked-Size': String(file.size),
          'Content-Length': 0,
        });
        rec.status = 302;
        return void res.end();
      }
      return this.sendFile(res, rec, req, file, { 'X-Repo-Commit': commit.sha, 'ETag': `"${file.oid}"` }, false);
    }
    send(res, rec, 404, 'not found');
  }

  private sendTreePage(res: http.ServerResponse, rec: HubRequest, url: URL, repo: string, commit: Commit): void {
    const recursive = url.searchParams.get('recursive') === 'true' || url.searchParams.get('recursive') === 'True';
    const dirs = new Set<string>();
    for (const f of commit.files) {
      const parts = f.path.split('/');
      for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
    }
    const entries: object[] = [];
    const visible = (p: string) => recursive || !p.includes('/');
    for (const d of [...dirs].sort()) if (visible(d)) entries.push({ type: 'directory', oid: createHash('sha1').update(d).digest('hex'), size: 0, path: d });
    for (const f of commit.files) {
      if (!visible(f.path)) continue;
      entries.push({
        type: 'file',
        oid: f.oid,
        size: f.size,
        path: f.path,
        ...(f.lfs ? { lfs: { oid: f.sha256, size: f.size, pointerSize: 134 } } : {}),
      });
    }
    const start = Number(url.searchParams.get('cursor') ?? '0');
    const page = entries.slice(start, start + this.treePageSize);
    const headers: http.OutgoingHttpHeaders = {};
    if (start + this.treePageSize < entries.length) {
      const next = new URL(url.toString());
      next.searchParams.set('cursor', String(start + this.treePageSize));
      headers.Link = `<${this.hubUrl}/api/models/${repo}/tree/${commit.sha}${next.search}>; rel="next"`;
    }
    sendJson(res, rec, page, headers);
  }

  private handleCdn(req: http.IncomingMessage, res: http.ServerResponse): void {
    const rec = this.record('cdn', req);
    const url = new URL(req.url ?? '/', this.cdnUrl);
    const file = this.blobs.get(url.pathname.slice(1));
    if (!file || !(url.searchParams.get('X-Signature') ?? '').startsWith('signed')) return send(res, rec, 403, 'bad signature or no such blob');
    if (req.headers.authorization) return send(res, rec, 400, 'a hub token must never reach the CDN');
    const limited = this.takeRateLimit('cdn');
    if (limited) return this.sendRateLimit(res, rec, limited);
    this.sendFile(res, rec, req, file, { ETag: `"${file.sha256}"` }, true);
  }

  private sendFile(res: http.ServerResponse, rec: HubRequest, req: http.IncomingMessage, file: HubFile,
    headers: http.OutgoingHttpHeaders, cdn: boolean): void {
    let start = 0;
    let end = file.size - 1;
    let status = 200;
    const range = req.headers.range;
    if (range) {
      const m = /^bytes=(\d+)-(\d*)$/.exec(range);
      if (!m || Number(m[1]) >= file.size || (m[2] !== '' && Number(m[2]) < Number(m[1]))) {
        return send(res, rec, 416, 'range not satisfiable', { 'Content-Range': `bytes */${file.size}` });
      }
      start = Number(m[1]);
      end = m[2] === '' ? file.size - 1 : Math.min(Number(m[2]), file.size - 1);
      status = 206;
      headers = { ...headers, 'Content-Range': `bytes ${start}-${end}/${file.size}` };
    }
    const length = end - start + 1;
    res.writeHead(status, { ...headers, 'Content-Length': length, 'Accept-Ranges': 'bytes', 'Content-Type': 'application/octet-stream' });
    rec.status = status;
    rec.bytesSent = 0;
    if (req.method === 'HEAD') return void res.end();
    // Only a body longer than the cut point can be cut (not the 1-byte probe a client sends to find the CDN URL).
    const cut = cdn ? this.cuts.find((c) => c.left > 0 && length > c.afterBytes && (!c.pathMatches || c.pathMatches.test(file.path))) : undefined;
    if (cut) cut.left--;
    const limit = cdn ? this.cdnBytesPerSecond : undefined;
    void this.stream(res, rec, file.hostPath, start, length, limit, cut?.afterBytes);
  }

  /** Streams [start, start+length) of a host file, paced to `bytesPerSecond`, cut after `cutAfter` bytes. */
  private async stream(res: http.ServerResponse, rec: HubRequest, hostPath: string, start: number, length: number,
    bytesPerSecond: number | undefined, cutAfter: number | undefined): Promise<void> {
    const fd = await fs.promises.open(hostPath, 'r');
    const began = Date.now();
    let sent = 0;
    let closed = false;
    res.on('close', () => { closed = true; });
    try {
      const piece = 256 * 1024;
      while (sent < length && !closed) {
        let n = Math.min(piece, length - sent);
        if (cutAfter !== undefined) n = Math.min(n, cutAfter - sent);
        if (n <= 0) break;
        const buf = Buffer.allocUnsafe(n);
        const { bytesRead } = await fd.read(buf, 0, n, start + sent);
        if (bytesRead <= 0) break;
        const ok = res.write(bytesRead === n ? buf : buf.subarray(0, bytesRead));
        sent += bytesRead;
        rec.bytesSent = sent;
        if (!ok && !closed) {
          await new Promise<void>((resolve) => {
            const done = () => { res.off('drain', done); res.off('close', done); resolve(); };
            res.on('drain', done);
            res.on('close', done);
          });
        }
        if (bytesPerSecond) {
          const due = began + (sent / bytesPerSecond) * 1000;
          const wait = due - Date.now();
          if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        }
      }
      if (cutAfter !== undefined && sent >= cutAfter && sent < length) {
        res.socket?.destroy(); // the connection drops mid-body, as a CDN or a proxy does
      } else {
        res.end();
      }
    } finally {
      await fd.close();
    }
  }
}

function send(res: http.ServerResponse, rec: HubRequest, status: number, body: string, headers: http.OutgoingHttpHeaders = {}): void {
  const data = Buffer.from(body);
  rec.status = status;
  res.writeHead(status, { 'Content-Length': data.length, ...headers });
  res.end(data);
}

function sendJson(res: http.ServerResponse, rec: HubRequest, body: unknown, headers: http.OutgoingHttpHeaders = {}): void {
  send(res, rec, 200, JSON.stringify(body), { 'Content-Type': 'application/json', ...headers });
}

/** Starts a fake hub (hub and CDN) signed by `ca`. Always `await hub.stop()` in afterAll. */
export async function startFakeHub(options: FakeHubOptions): Promise<FakeHub> {
  const hub = new FakeHub(options);
  await hub.start();
  return hub;
}

/** The files of a model directory (e.g. a SyntheticModel) as hub files. */
export function hubFilesOf(model: { dir: string; files: readonly { path: string; size: number; sha256: string }[] }): HubFileSource[] {
  return model.files.map((f) => ({ path: f.path, hostPath: path.join(model.dir, ...f.path.split('/')), size: f.size, sha256: f.sha256 }));
}
