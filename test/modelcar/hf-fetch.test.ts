/**
 * Tests of the hub step scripts: hf-fetch.py (download-model's fetch step) and hf-resolve.py (check-published's
 * resolve step), with the modules they import (hf_hub.py, hf_tree.py, hf_files.py, hf_transfer.py). They run for
 * real with `python3`, configured by environment variables only, exactly as the Tekton step runs them: the script
 * as `loadScript` embeds it at synth, alone in a directory. A few tests run them from the source tree instead, where
 * Python imports the modules from beside the script.
 *
 * STAND-IN FOR THE HUGGING FACE HUB: there is no internet here, so `FakeHub` (a Node `http` server on 127.0.0.1)
 * answers the three hub endpoints the script uses, for a small synthetic repo:
 *   GET /api/models/{org}/{name}/revision/{revision}              -> { sha, siblings: [{ rfilename, size, lfs? }] }
 *   GET /api/models/{org}/{name}/tree/{commit}?recursive=true     -> [{ type, path, size, oid, lfs?: { oid, size } }],
 *                                                                    paged with `Link: <...>; rel="next"`
 *   GET /{org}/{name}/resolve/{commit}/{path}                     -> the file, or for an "LFS" file a 302 to a
 *                                                                    second fake host (`FakeCdn`, the CDN stand-in)
 * Everything else (the script, Python's urllib, hashing, the file system) is the real thing.
 */
import { ChildProcess, spawn } from 'child_process';
import { createHash, randomBytes } from 'crypto';
import * as fs from 'fs';
import * as http from 'http';
import { AddressInfo } from 'net';
import * as os from 'os';
import * as path from 'path';
import { loadScript } from '../../src/modelcar/scripts';

const SOURCE_DIR = path.join(__dirname, '..', '..', 'src', 'modelcar', 'scripts');
/** The step scripts as the Tasks embed them, written alone into a directory of their own (beforeAll). */
let FETCH_SCRIPT = '';
let RESOLVE_SCRIPT = '';
let scriptsDir = '';
const REPO = 'test-org/tiny-model';
const TOKEN = 'hf_TESTtokenNeverPrinted';
const MiB = 1024 * 1024;

const sha1 = (s: string) => createHash('sha1').update(s).digest('hex');
const gitBlobId = (b: Buffer) => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

interface RepoFile {
  readonly path: string;
  readonly content: Buffer;
  /** Stored with git-lfs: listed with `lfs.sha256` and served through a redirect to the fake CDN. */
  readonly lfs: boolean;
}

interface Commit {
  readonly sha: string;
  readonly files: RepoFile[];
  /** Extra raw tree entries (a hostile listing). */
  readonly extraEntries?: object[];
  /** Names the revision's siblings list beyond the files (a tree that lacks them). */
  readonly extraSiblingNames?: string[];
}

const MAIN_FILES: RepoFile[] = [
  { path: '.gitattributes', content: Buffer.from('*.safetensors filter=lfs diff=lfs merge=lfs -text\n'), lfs: false },
  { path: 'README.md', content: Buffer.from('# tiny model\nA synthetic repo for the hf-fetch test.\n'), lfs: false },
  { path: 'config.json', content: Buffer.from('{"architectures": ["TinyForCausalLM"], "hidden_size": 8}\n'), lfs: false },
  // Larger than one 8 MiB chunk of the script, so the streaming crosses a chunk boundary.
  { path: 'model.safetensors', content: randomBytes(9 * MiB + 123), lfs: true },
  { path: 'tokenizer/tokenizer.json', content: Buffer.from('{"version": "1.0", "model": {"type": "BPE"}}\n'), lfs: false },
  // Nested, LFS, and a space in the name (URL-quoted by the script).
  { path: 'onnx/model v2.onnx', content: randomBytes(64 * 1024), lfs: true },
];
const PR_FILES: RepoFile[] = [
  { path: 'config.json', content: Buffer.from('{"architectures": ["TinyForCausalLM"], "hidden_size": 16}\n'), lfs: false },
  { path: 'model.safetensors', content: randomBytes(2048), lfs: true },
];
const SHA_MAIN = sha1('main');
const SHA_PR = sha1('refs/pr/1');

interface SeenRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: http.IncomingHttpHeaders;
}

type Hook = (req: http.IncomingMessage, res: http.ServerResponse, seen: SeenRequest[]) => boolean;

/** A recording HTTP server on 127.0.0.1 with a per-test hook that can take over any request. */
abstract class FakeServer {
  readonly requests: SeenRequest[] = [];
  hook: Hook | undefined;
  base = '';
  private readonly server = http.createServer((req, res) => {
    this.requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    if (this.hook && this.hook(req, res, this.requests)) return;
    this.handle(req, res);
  });

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.base = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  reset(): void {
    this.requests.length = 0;
    this.hook = undefined;
  }

  protected abstract handle(req: http.IncomingMessage, res: http.ServerResponse): void;
}

function send(res: http.ServerResponse, status: number, body: Buffer | string, headers: http.OutgoingHttpHeaders = {}): void {
  const data = typeof body === 'string' ? Buffer.from(body) : body;
  res.writeHead(status, { 'Content-Length': data.length, ...headers });
  res.end(data);
}

/** STAND-IN FOR THE LFS CDN the real hub redirects to: serves blobs by sha256, honours `Range: bytes=a-b` and `bytes=a-`. */
class FakeCdn extends FakeServer {
  readonly blobs = new Map<string, Buffer>();

  protected handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', this.base);
    const blob = this.blobs.get(url.pathname.replace(/^\/blobs\//, ''));
    if (!blob || url.searchParams.get('X-Signature') !== 'signed') return send(res, 404, 'no such blob');
    if (req.headers.authorization) return send(res, 400, 'a hub token must never reach the CDN');
    sendRange(req, res, blob);
  }
}

function sendRange(req: http.IncomingMessage, res: http.ServerResponse, blob: Buffer, headers: http.OutgoingHttpHeaders = {}): void {
  const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
  if (range) {
    const start = Number(range[1]);
    const end = range[2] === '' ? blob.length - 1 : Math.min(Number(range[2]), blob.length - 1);
    return send(res, 206, blob.subarray(start, end + 1), { ...headers, 'Content-Range': `bytes ${start}-${end}/${blob.length}` });
  }
  send(res, 200, blob, headers);
}

/** STAND-IN FOR THE HUGGING FACE HUB (huggingface.co): the revision API and the resolve endpoint of one repo. */
class FakeHub extends FakeServer {
  /** Revision name (branch, tag, or the commit sha itself) -> commit. */
  readonly revisions = new Map<string, Commit>();
  /** When set, requests must carry `Authorization: Bearer <requiredToken>` (401 without, 403 with another). */
  requiredToken: string | undefined;
  /** Entries per tree page. */
  treePageSize = 1000;

  constructor(private readonly cdn: FakeCdn) {
    super();
  }

  override reset(): void {
    super.reset();
    this.requiredToken = undefined;
    this.treePageSize = 1000;
    this.revisions.clear();
    this.addCommit('main', { sha: SHA_MAIN, files: MAIN_FILES });
    this.addCommit('refs/pr/1', { sha: SHA_PR, files: PR_FILES });
  }

  addCommit(revision: string, commit: Commit): void {
    this.revisions.set(revision, commit);
    this.revisions.set(commit.sha, commit);
    for (const f of commit.files) if (f.lfs) this.cdn.blobs.set(sha256(f.content), f.content);
  }

  protected handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (this.requiredToken !== undefined) {
      const auth = req.headers.authorization;
      if (auth !== `Bearer ${this.requiredToken}`) {
        return send(res, auth ? 403 : 401, 'unauthorized', { 'X-Error-Code': 'RepoNotFound', 'X-Error-Message': 'Repository not found' });
      }
    }
    const url = new URL(req.url ?? '/', this.base);
    const api = /^\/api\/models\/([^/]+\/[^/]+)\/(revision|tree)\/([^/]+)$/.exec(url.pathname);
    if (api) {
      if (api[1] !== REPO) return send(res, 401, 'no repo', { 'X-Error-Code': 'RepoNotFound' });
      const commit = this.revisions.get(decodeURIComponent(api[3]));
      if (!commit) return send(res, 404, 'no revision', { 'X-Error-Code': 'RevisionNotFound', 'X-Error-Message': 'Invalid rev id' });
      if (api[2] === 'revision') {
        const siblings: object[] = [...commit.files.map((f) => f.path), ...(commit.extraSiblingNames ?? [])].map((name) => ({ rfilename: name }));
        return send(res, 200, JSON.stringify({ id: REPO, sha: commit.sha, siblings }), { 'Content-Type': 'application/json' });
      }
      const entries: object[] = commit.files.map((f) => ({
        type: 'file',
        path: f.path,
        size: f.content.length,
        oid: f.lfs ? gitBlobId(Buffer.from(`version https://git-lfs.github.com/spec/v1\noid sha256:${sha256(f.content)}\nsize ${f.content.length}\n`)) : gitBlobId(f.content),
        ...(f.lfs ? { lfs: { oid: sha256(f.content), size: f.content.length, pointerSize: 134 } } : {}),
      }));
      entries.push(...(commit.extraEntries ?? []));
      entries.push({ type: 'directory', path: 'tokenizer', oid: sha1('tokenizer'), size: 0 });
      const start = Number(url.searchParams.get('cursor') ?? '0');
      const headers: http.OutgoingHttpHeaders = { 'Content-Type': 'application/json' };
      if (start + this.treePageSize < entries.length) {
        headers.Link = `<${this.base}${url.pathname}?recursive=true&expand=false&cursor=${start + this.treePageSize}>; rel="next"`;
      }
      return send(res, 200, JSON.stringify(entries.slice(start, start + this.treePageSize)), headers);
    }
    const resolve = new RegExp(`^/${REPO}/resolve/([^/]+)/(.+)$`).exec(url.pathname);
    if (resolve) {
      const commit = this.revisions.get(decodeURIComponent(resolve[1]));
      if (!commit) return send(res, 404, 'no revision', { 'X-Error-Code': 'RevisionNotFound' });
      const file = commit.files.find((f) => f.path === decodeURIComponent(resolve[2]));
      if (!file) return send(res, 404, 'no entry', { 'X-Error-Code': 'EntryNotFound' });
      if (file.lfs) {
        res.writeHead(302, { 'Location': `${this.cdn.base}/blobs/${sha256(file.content)}?X-Signature=signed`, 'Content-Length': 0 });
        return void res.end();
      }
      return sendRange(req, res, file.content, { 'X-Repo-Commit': commit.sha });
    }
    send(res, 404, 'not found');
  }
}

const cdn = new FakeCdn();
const hub = new FakeHub(cdn);
let tmp: string;
let modelDir: string;
let revisionFile: string;

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

const children = new Set<ChildProcess>();

/**
 * Runs a real script with python3 (the embedded download script unless told); the inputs are environment
 * variables only (a clean environment, no proxy). Python writes no bytecode beside the source modules.
 */
function runFetch(env: Record<string, string | undefined> = {}, script = FETCH_SCRIPT): Promise<Run> {
  const full: Record<string, string | undefined> = {
    PATH: process.env.PATH,
    LANG: 'C.UTF-8',
    HF_ENDPOINT: hub.base,
    HF_REPO: REPO,
    MODEL_DIR: modelDir,
    RESOLVED_REVISION_FILE: revisionFile,
    HF_RETRY_BACKOFF_SECONDS: '0.01',
    HF_TIMEOUT_SECONDS: '5',
    PYTHONDONTWRITEBYTECODE: '1',
    ...env,
  };
  const clean = Object.fromEntries(Object.entries(full).filter((e): e is [string, string] => e[1] !== undefined));
  return new Promise((resolve, reject) => {
    const child = spawn('python3', [script], { env: clean, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('error', reject);
    child.on('close', (code) => {
      children.delete(child);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Every file under dir, '/'-separated and sorted ([] when dir does not exist). */
function listFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true }) as string[])
    .filter((p) => fs.statSync(path.join(dir, p)).isFile())
    .map((p) => p.split(path.sep).join('/'))
    .sort();
}

const resolveRequests = () => hub.requests.filter((r) => r.url.includes('/resolve/'));
const apiRequests = () => hub.requests.filter((r) => r.url.startsWith('/api/'));
const paths = (files: RepoFile[]) => files.map((f) => f.path).sort();
/** Permission bits, e.g. 0o664. */
const modeOf = (p: string) => fs.statSync(p).mode % 0o1000;

/** Runs the resolve script (embedded unless told); MODEL_DIR is not among its inputs. */
const runResolve = (env: Record<string, string | undefined> = {}, script = RESOLVE_SCRIPT) => runFetch({ MODEL_DIR: undefined, ...env }, script);

beforeAll(async () => {
  scriptsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hf-scripts-'));
  FETCH_SCRIPT = path.join(scriptsDir, 'fetch.py');
  RESOLVE_SCRIPT = path.join(scriptsDir, 'resolve.py');
  fs.writeFileSync(FETCH_SCRIPT, loadScript('hf-fetch.py'), { mode: 0o755 });
  fs.writeFileSync(RESOLVE_SCRIPT, loadScript('hf-resolve.py'), { mode: 0o755 });
  await cdn.start();
  await hub.start();
});

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await hub.stop();
  await cdn.stop();
  fs.rmSync(scriptsDir, { recursive: true, force: true });
});

beforeEach(() => {
  cdn.reset();
  hub.reset();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hf-fetch-'));
  modelDir = path.join(tmp, 'model'); // does not exist yet: the script creates it
  revisionFile = path.join(tmp, 'resolved-revision');
});

afterEach(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('hf-fetch.py and hf-resolve.py against a fake hub', () => {
  test('the step scripts are executable Python, and so is what the Tasks embed', async () => {
    const compiles = (file: string) => new Promise<number | null>((resolve) => {
      // compile() only: no __pycache__ is written next to the script.
      const child = spawn('python3', ['-c', 'import sys; compile(open(sys.argv[1]).read(), sys.argv[1], "exec")', file]);
      child.on('close', resolve);
    });
    for (const name of ['hf-fetch.py', 'hf-resolve.py']) {
      const source = path.join(SOURCE_DIR, name);
      expect(modeOf(source).toString(8)).toMatch(/^[1357]{3}$/); // executable by everyone
      expect(fs.readFileSync(source, 'utf8').startsWith('#!/usr/bin/env python3\n')).toBe(true);
      expect(await compiles(source)).toBe(0);
    }
    for (const embedded of [FETCH_SCRIPT, RESOLVE_SCRIPT]) {
      expect(fs.readFileSync(embedded, 'utf8').startsWith('#!/usr/bin/env python3\n')).toBe(true);
      expect(fs.readFileSync(embedded, 'utf8')).not.toMatch(/^from hf_\w+ import/m);
      expect(await compiles(embedded)).toBe(0);
    }
  });

  test('from the source tree, both scripts import their modules from beside them and work; each module imports on its own', async () => {
    const resolve = await runResolve({}, path.join(SOURCE_DIR, 'hf-resolve.py'));
    expect(resolve.stderr).toBe('');
    expect(resolve.code).toBe(0);
    expect(fs.readFileSync(revisionFile, 'utf8')).toBe(SHA_MAIN);
    const fetch = await runFetch({ HF_INCLUDE: 'config.json model.safetensors' }, path.join(SOURCE_DIR, 'hf-fetch.py'));
    expect(fetch.stderr).toBe('');
    expect(fetch.code).toBe(0);
    expect(listFiles(modelDir)).toEqual(['config.json', 'model.safetensors']);
    // A module on its own: its pure parts can be tested without a step script (here the hub's RateLimit header).
    const module = await new Promise<string>((resolve, reject) => {
      const child = spawn('python3', ['-B', '-c', 'import hf_files, hf_transfer, hf_tree, hf_hub; print(hf_hub.server_wait({"RateLimit": \'"api";r=0;t=55\'}))'],
        { cwd: SOURCE_DIR, stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
      child.on('error', reject);
      child.on('close', () => resolve(out));
    });
    expect(module).toBe(`(55.0, 'RateLimit: "api";r=0;t=55')\n`);
    expect(fs.existsSync(path.join(SOURCE_DIR, '__pycache__'))).toBe(false);
  });

  test('the resolve script asks the revision and tree APIs only and downloads nothing: commit and selected size, no MODEL_DIR', async () => {
    // GIVEN the check before a build: it needs the commit, never a model file
    const sizeFile = path.join(tmp, 'model-size');
    // WHEN
    const run = await runResolve({ MODEL_SIZE_FILE: sizeFile, HF_EXCLUDE: 'onnx/' });
    // THEN
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    // The size comes from the commit's tree (the revision's file list may be truncated), not from any file.
    expect(hub.requests.map((r) => r.url)).toEqual([`/api/models/${REPO}/revision/main`, `/api/models/${REPO}/tree/${SHA_MAIN}?recursive=true&expand=false`]);
    expect(cdn.requests).toHaveLength(0);
    expect(fs.readFileSync(revisionFile, 'utf8')).toBe(SHA_MAIN);
    const selected = MAIN_FILES.filter((f) => !f.path.startsWith('onnx/'));
    expect(fs.readFileSync(sizeFile, 'utf8')).toBe(String(selected.reduce((n, f) => n + f.content.length, 0)));
    expect(run.stdout).toContain(`resolve only: ${selected.length} of ${MAIN_FILES.length} files selected`);
    expect(fs.existsSync(modelDir)).toBe(false);
  });

  test('the resolve script still fails when no file matches, when a pinned commit resolves to another, and on bad configuration', async () => {
    const none = await runResolve({ HF_INCLUDE: '*.gguf' });
    expect(none.code).toBe(1);
    expect(none.stderr).toContain(`hf-resolve: error: no file of ${REPO}@${SHA_MAIN} matches include '*.gguf'`);
    expect(fs.existsSync(revisionFile)).toBe(false);
    // A hub that answers a commit sha with another commit (a mirror that rewrote its history).
    const pinnedSha = sha1('rewritten');
    hub.addCommit(pinnedSha, { sha: SHA_MAIN, files: MAIN_FILES });
    const pinned = await runResolve({ HF_REVISION: pinnedSha });
    expect(pinned.code).toBe(1);
    expect(pinned.stderr).toContain(`asked for commit ${pinnedSha} but the hub resolved it to ${SHA_MAIN}`);
    expect(fs.existsSync(revisionFile)).toBe(false);
    const bad = await runResolve({ HF_RETRIES: 'many' });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("hf-resolve: configuration error: HF_RETRIES='many' is not a number");
  });

  test('downloads every file of the resolved commit byte-identical, pinned to the commit sha', async () => {
    const run = await runFetch();
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);

    expect(listFiles(modelDir)).toEqual(paths(MAIN_FILES));
    for (const f of MAIN_FILES) {
      expect(fs.readFileSync(path.join(modelDir, f.path)).equals(f.content)).toBe(true);
    }
    expect(fs.readFileSync(revisionFile, 'utf8')).toBe(SHA_MAIN);

    // One revision lookup by name, the recursive tree of the commit it resolved to; then every file by the commit
    // sha, never by `main`.
    expect(apiRequests().map((r) => r.url)).toEqual([`/api/models/${REPO}/revision/main`, `/api/models/${REPO}/tree/${SHA_MAIN}?recursive=true&expand=false`]);
    const resolved = resolveRequests().map((r) => r.url);
    expect(resolved).toHaveLength(MAIN_FILES.length);
    for (const url of resolved) expect(url.startsWith(`/${REPO}/resolve/${SHA_MAIN}/`)).toBe(true);
    expect(resolved).toContain(`/${REPO}/resolve/${SHA_MAIN}/onnx/model%20v2.onnx`);
    expect(resolved.some((u) => u.includes('/resolve/main/'))).toBe(false);
    // The LFS files came through the redirect to the CDN.
    expect(cdn.requests).toHaveLength(MAIN_FILES.filter((f) => f.lfs).length);

    // Group-writable for later tasks running under another uid of the same group.
    expect(modeOf(modelDir)).toBe(0o775);
    expect(modeOf(path.join(modelDir, 'tokenizer'))).toBe(0o775);
    expect(modeOf(path.join(modelDir, 'tokenizer', 'tokenizer.json'))).toBe(0o664);
    expect(modeOf(path.join(modelDir, 'model.safetensors'))).toBe(0o664);

    expect(run.stdout).toContain(`resolved ${REPO}@main -> commit ${SHA_MAIN}: 6 files, 9.1 MiB in the repo (tree listing, 1 page)`);
    expect(run.stdout).toContain('model.safetensors: 9.0 MiB, sha256 verified against the hub\'s LFS oid');
    expect(run.stdout).toMatch(/config\.json: 57 B, git blob id verified, sha256 [0-9a-f]{64}/);
    expect(run.stdout).toMatch(/downloaded 6 files \(0 kept from an earlier attempt\), 9\.1 MiB in [\d.]+s \(/);

    // SHA256SUMS beside the model directory (no repo file can collide with it), from the digests checked while
    // downloading, in byte order of the paths; the temporary files are gone.
    const sums = MAIN_FILES.map((f) => `${sha256(f.content)}  ${f.path}`).sort((a, b) => (a.split('  ')[1] < b.split('  ')[1] ? -1 : 1));
    expect(fs.readFileSync(path.join(tmp, 'SHA256SUMS'), 'utf8')).toBe(sums.join('\n') + '\n');
    expect(listFiles(tmp).filter((p) => !p.startsWith('model/'))).toEqual(['SHA256SUMS', 'resolved-revision']);
  });

  test('a revision name with a slash is URL-quoted and its files come from the commit it resolves to', async () => {
    const run = await runFetch({ HF_REVISION: 'refs/pr/1' });
    expect(run.code).toBe(0);
    expect(apiRequests().map((r) => r.url)).toEqual([`/api/models/${REPO}/revision/refs%2Fpr%2F1`, `/api/models/${REPO}/tree/${SHA_PR}?recursive=true&expand=false`]);
    for (const r of resolveRequests()) expect(r.url.startsWith(`/${REPO}/resolve/${SHA_PR}/`)).toBe(true);
    expect(listFiles(modelDir)).toEqual(paths(PR_FILES));
    expect(fs.readFileSync(path.join(modelDir, 'config.json')).equals(PR_FILES[0].content)).toBe(true);
    expect(fs.readFileSync(revisionFile, 'utf8')).toBe(SHA_PR);
  });

  test('a commit sha as HF_REVISION is used as is', async () => {
    const run = await runFetch({ HF_REVISION: SHA_PR });
    expect(run.code).toBe(0);
    expect(apiRequests().map((r) => r.url)).toEqual([`/api/models/${REPO}/revision/${SHA_PR}`, `/api/models/${REPO}/tree/${SHA_PR}?recursive=true&expand=false`]);
    expect(fs.readFileSync(revisionFile, 'utf8')).toBe(SHA_PR);
  });

  test.each([
    ['*.json *.safetensors', 'tokenizer/*', ['config.json', 'model.safetensors']],
    ['', '*.md .gitattributes onnx/*', ['config.json', 'model.safetensors', 'tokenizer/tokenizer.json']],
    ['onnx/', '', ['onnx/model v2.onnx']],
    ['*.JSON', '', []],
  ])('HF_INCLUDE=%j HF_EXCLUDE=%j selects by fnmatch on the repo path', async (include, exclude, expected) => {
    const run = await runFetch({ HF_INCLUDE: include, HF_EXCLUDE: exclude });
    if (expected.length === 0) {
      // Matching is case-sensitive; nothing matching is an error, not an empty model.
      expect(run.code).toBe(1);
      expect(run.stderr).toContain(`no file of ${REPO}@${SHA_MAIN} matches include '*.JSON' exclude ''`);
      expect(resolveRequests()).toHaveLength(0);
      expect(fs.existsSync(revisionFile)).toBe(false);
      return;
    }
    expect(run.code).toBe(0);
    expect(listFiles(modelDir)).toEqual(expected);
    expect(resolveRequests()).toHaveLength(expected.length);
  });

  test('an LFS sha256 mismatch fails, prints both hashes and leaves neither the file nor its .part', async () => {
    const good = MAIN_FILES.find((f) => f.path === 'model.safetensors')!;
    const bad = Buffer.from(good.content);
    bad[bad.length - 1] = 255 - bad[bad.length - 1]; // same size, one byte different
    cdn.hook = (req, res) => {
      if (!req.url?.startsWith(`/blobs/${sha256(good.content)}`)) return false;
      send(res, 200, bad);
      return true;
    };
    const run = await runFetch({ HF_INCLUDE: 'model.safetensors config.json' });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`sha256 mismatch for model.safetensors: the hub listed ${sha256(good.content)}, the downloaded file has ${sha256(bad)}`);
    expect(listFiles(modelDir)).toEqual(['config.json']);
    expect(fs.existsSync(revisionFile)).toBe(false);
  });

  test.each([
    ['no token', 401, undefined, 'was not set'],
    ['a token without access', 403, 'hf_wrong', 'was set'],
  ])('%s gives HTTP %i with a clear message, not retried', async (_name, status, token, tokenState) => {
    hub.requiredToken = TOKEN;
    const run = await runFetch({ HF_TOKEN: token });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(
      `HTTP ${status} for revision main of ${REPO}: token missing or lacks access to ${REPO}; set the hf token secret (HF_TOKEN ${tokenState})`,
    );
    expect(run.stderr).toContain('hub says: RepoNotFound: Repository not found');
    expect(hub.requests).toHaveLength(1); // not retried
    expect(run.stdout + run.stderr).not.toContain('hf_wrong');
  });

  test('an unknown revision gives a clear 404 and is not retried', async () => {
    const run = await runFetch({ HF_REVISION: 'v9.9' });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/HTTP 404 for revision v9\.9 of test-org\/tiny-model .*: repo or revision not found: test-org\/tiny-model@v9\.9 \(hub says: RevisionNotFound: Invalid rev id\)/);
    expect(hub.requests).toHaveLength(1);
  });

  test('transient 503s, a timeout and a cut connection are retried, the cut download resumed with a Range request', async () => {
    const model = MAIN_FILES.find((f) => f.path === 'model.safetensors')!;
    const onnx = MAIN_FILES.find((f) => f.path === 'onnx/model v2.onnx')!;
    hub.hook = (req, res, seen) => {
      if (!req.url?.startsWith('/api/') || seen.length > 2) return false;
      send(res, 503, 'try later'); // the first two revision lookups
      return true;
    };
    cdn.hook = (req, res, seen) => {
      const first = seen.filter((r) => r.url === req.url).length === 1;
      if (first && req.url?.startsWith(`/blobs/${sha256(model.content)}`)) {
        // Full length announced, 3 MiB sent, then the connection is closed.
        res.writeHead(200, { 'Content-Length': model.content.length });
        res.write(model.content.subarray(0, 3 * MiB));
        res.socket?.end();
        return true;
      }
      if (first && req.url?.startsWith(`/blobs/${sha256(onnx.content)}`)) {
        return true; // never answers: the per-request timeout fires
      }
      return false;
    };
    const run = await runFetch({ HF_RETRIES: '3', HF_TIMEOUT_SECONDS: '1', HF_INCLUDE: 'model.safetensors onnx/*' });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(apiRequests()).toHaveLength(4); // two 503s, the revision, the tree
    expect(run.stdout).toContain('attempt 1/3 without progress failed: HTTP 503');
    expect(run.stdout).toContain('attempt 2/3 without progress failed: HTTP 503');
    expect(run.stdout).toMatch(/attempt 1\/3 without progress failed: timed out after 1s waiting for file onnx\/model v2\.onnx/);

    // The cut body is resumed from the last byte received, straight from the CDN (no second resolve).
    const modelRequests = cdn.requests.filter((r) => r.url.startsWith(`/blobs/${sha256(model.content)}`));
    expect(modelRequests).toHaveLength(2);
    expect(modelRequests[0].headers.range).toBeUndefined();
    expect(modelRequests[1].headers.range).toBe(`bytes=${3 * MiB}-${model.content.length - 1}`);
    expect(run.stdout).toContain(`model.safetensors: connection lost at byte ${3 * MiB} of ${model.content.length}`);
    expect(resolveRequests().filter((r) => r.url.endsWith('/model.safetensors'))).toHaveLength(1);
    expect(fs.readFileSync(path.join(modelDir, 'model.safetensors')).equals(model.content)).toBe(true);
    expect(fs.readFileSync(path.join(modelDir, 'onnx', 'model v2.onnx')).equals(onnx.content)).toBe(true);
    expect(fs.readFileSync(revisionFile, 'utf8')).toBe(SHA_MAIN);
  });

  test.each([
    [undefined, 5],
    ['2', 2],
  ])('a permanent 503 fails after HF_RETRIES=%s attempts without progress (%s)', async (retries, attempts) => {
    hub.hook = (_req, res) => {
      send(res, 503, 'down');
      return true;
    };
    const run = await runFetch({ HF_RETRIES: retries });
    expect(run.code).toBe(1);
    expect(hub.requests).toHaveLength(attempts);
    expect(run.stderr).toContain(`HTTP 503 for revision main of ${REPO}`);
    expect(run.stderr).toContain(`giving up after ${attempts} attempt(s) in a row without progress`);
    expect(fs.existsSync(revisionFile)).toBe(false);
  });

  test('the token goes to the hub, also after a same-host redirect, but never to the CDN host', async () => {
    hub.requiredToken = TOKEN;
    const config = MAIN_FILES.find((f) => f.path === 'config.json')!;
    hub.hook = (req, res) => {
      if (req.url === `/${REPO}/resolve/${SHA_MAIN}/config.json`) {
        // Like a renamed repo: a relative redirect on the same host.
        res.writeHead(307, { 'Location': `/renamed/resolve/${SHA_MAIN}/config.json`, 'Content-Length': 0 });
        res.end();
        return true;
      }
      if (req.url === `/renamed/resolve/${SHA_MAIN}/config.json`) {
        send(res, req.headers.authorization === `Bearer ${TOKEN}` ? 200 : 401, config.content);
        return true;
      }
      return false;
    };
    const run = await runFetch({ HF_TOKEN: TOKEN });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(hub.requests.length).toBe(MAIN_FILES.length + 3); // revision, tree, each file, the redirect
    for (const r of hub.requests) expect(r.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(cdn.requests).toHaveLength(2);
    for (const r of cdn.requests) expect(r.headers.authorization).toBeUndefined();
    expect(fs.readFileSync(path.join(modelDir, 'model.safetensors')).equals(MAIN_FILES[3].content)).toBe(true);
    expect(run.stdout).not.toContain(TOKEN);
    expect(run.stdout).toContain('token: set');
  });

  test('large files come in byte ranges over parallel connections, written at their offsets, verified once', async () => {
    const model = MAIN_FILES.find((f) => f.path === 'model.safetensors')!;
    const run = await runFetch({ HF_CHUNK_BYTES: String(MiB), HF_CONNECTIONS: '4' });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(fs.readFileSync(path.join(modelDir, 'model.safetensors')).equals(model.content)).toBe(true);
    const ranges = cdn.requests.filter((r) => r.url.startsWith(`/blobs/${sha256(model.content)}`)).map((r) => r.headers.range!);
    // One resolve for the file (a 1-byte probe that follows the redirect); then 9 MiB + 123 bytes in 1 MiB
    // ranges: 10 requests straight to the CDN's signed URL, each range asked once.
    expect(resolveRequests().filter((r) => r.url.endsWith('/model.safetensors')).map((r) => r.headers.range)).toEqual(['bytes=0-0']);
    expect(ranges[0]).toBe('bytes=0-0');
    const expected = Array.from({ length: 10 }, (_, i) => `bytes=${i * MiB}-${Math.min(model.content.length, (i + 1) * MiB) - 1}`).sort();
    expect(ranges.slice(1).sort()).toEqual(expected);
    expect(run.stdout).toContain('connections: 4; range: 1.0 MiB');
    expect(run.stdout).toMatch(/\(\d+\.\d MiB\/s, 10 ranged requests\)/);
  });

  test('a connection cut again and again, each time after progress, still completes: only attempts without progress count', async () => {
    const model = MAIN_FILES.find((f) => f.path === 'model.safetensors')!;
    let cuts = 0;
    cdn.hook = (req, res) => {
      if (!req.url?.startsWith(`/blobs/${sha256(model.content)}`) || cuts >= 6) return false;
      cuts++;
      const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
      const start = range ? Number(range[1]) : 0;
      const end = range ? Number(range[2]) : model.content.length - 1;
      res.writeHead(range ? 206 : 200, { 'Content-Length': end - start + 1, ...(range ? { 'Content-Range': `bytes ${start}-${end}/${model.content.length}` } : {}) });
      res.write(model.content.subarray(start, start + 1024 * 1024)); // 1 MiB, then the connection drops
      res.socket?.end();
      return true;
    };
    const run = await runFetch({ HF_RETRIES: '1', HF_INCLUDE: 'model.safetensors' });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(cuts).toBe(6);
    expect(fs.readFileSync(path.join(modelDir, 'model.safetensors')).equals(model.content)).toBe(true);
    const ranges = cdn.requests.map((r) => r.headers.range);
    expect(ranges).toEqual([undefined, ...Array.from({ length: 6 }, (_, i) => `bytes=${(i + 1) * MiB}-${model.content.length - 1}`)]);
    expect(run.stdout.match(/connection lost at byte/g)).toHaveLength(6);
  });

  test.each([
    ['Retry-After', { 'Retry-After': '1' }, 'Retry-After: 1'],
    ['RateLimit', { 'RateLimit': '"resolvers";r=0;t=1', 'RateLimit-Policy': '"fixed window";"resolvers";q=3000;w=300' }, 'RateLimit: "resolvers";r=0;t=1'],
  ])('429 with %s: every connection waits as long as the hub asks, then succeeds', async (_name, headers, reason) => {
    let limited = 0;
    hub.hook = (req, res) => {
      if (!req.url?.includes('/resolve/') || limited >= 3) return false;
      limited++;
      send(res, 429, 'slow down', headers);
      return true;
    };
    const started = Date.now();
    const run = await runFetch({ HF_RETRIES: '1' });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(limited).toBe(3);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(run.stdout).toContain('waiting 1.');
    expect(run.stdout).toContain(`as the hub asks (${reason})`);
    expect(listFiles(modelDir)).toEqual(paths(MAIN_FILES));
  });

  test('a rate limit longer than the deadline fails at once, naming both', async () => {
    hub.hook = (req, res) => {
      if (!req.url?.includes('/resolve/')) return false;
      send(res, 429, 'slow down', { 'Retry-After': '300' });
      return true;
    };
    const run = await runFetch({ HF_DEADLINE_SECONDS: '20', HF_INCLUDE: 'config.json' });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/HTTP 429 for file config\.json .*; the hub asks to wait 300s \(Retry-After: 300\), past the download deadline in \d+s \(HF_DEADLINE_SECONDS=20\)/);
  });

  test('the tree listing is followed over its pages (Link rel="next"): every file arrives', async () => {
    hub.treePageSize = 2;
    const run = await runFetch();
    expect(run.code).toBe(0);
    expect(apiRequests().filter((r) => r.url.includes('/tree/')).map((r) => r.url)).toEqual([
      `/api/models/${REPO}/tree/${SHA_MAIN}?recursive=true&expand=false`,
      `/api/models/${REPO}/tree/${SHA_MAIN}?recursive=true&expand=false&cursor=2`,
      `/api/models/${REPO}/tree/${SHA_MAIN}?recursive=true&expand=false&cursor=4`,
      `/api/models/${REPO}/tree/${SHA_MAIN}?recursive=true&expand=false&cursor=6`,
    ]);
    expect(run.stdout).toContain('6 files, 9.1 MiB in the repo (tree listing, 4 pages)');
    expect(listFiles(modelDir)).toEqual(paths(MAIN_FILES));
  });

  test('a tree listing that disagrees with itself fails with the file\'s name: resolve does not find it, or the revision names more', async () => {
    hub.addCommit('main', { sha: SHA_MAIN, files: MAIN_FILES, extraEntries: [{ type: 'file', path: 'ghost.json', size: 4, oid: gitBlobId(Buffer.from('boo\n')) }] });
    const ghost = await runFetch();
    expect(ghost.code).toBe(1);
    expect(ghost.stderr).toContain(`the hub's tree of commit ${SHA_MAIN} lists ghost.json, but resolve does not find it (HTTP 404 (hub says: EntryNotFound))`);
    expect(fs.existsSync(revisionFile)).toBe(false);

    hub.reset();
    hub.addCommit('main', { sha: SHA_MAIN, files: MAIN_FILES, extraSiblingNames: ['model-00002-of-00002.safetensors'] });
    const truncated = await runFetch();
    expect(truncated.code).toBe(1);
    expect(truncated.stderr).toContain(`the hub's tree listing of ${REPO}@${SHA_MAIN} lacks 1 file(s) its revision info names: model-00002-of-00002.safetensors; refusing an incomplete model`);
    expect(resolveRequests()).toHaveLength(0);
  });

  test('a retry keeps the verified files and resumes the partial one from its completed ranges', async () => {
    const model = MAIN_FILES.find((f) => f.path === 'model.safetensors')!;
    // First attempt: the CDN serves the first 4 ranges of the model, then fails for good.
    cdn.hook = (req, res) => {
      const range = /^bytes=(\d+)-/.exec(req.headers.range ?? '');
      if (!req.url?.startsWith(`/blobs/${sha256(model.content)}`) || !range || Number(range[1]) < 4 * MiB) return false;
      send(res, 500, 'broken');
      return true;
    };
    const first = await runFetch({ HF_CHUNK_BYTES: String(MiB), HF_CONNECTIONS: '1', HF_RETRIES: '1' });
    expect(first.code).toBe(1);
    expect(listFiles(modelDir)).not.toContain('model.safetensors');
    // Nothing beside the repo files: the partial file is in the run's hidden folder, not a `.part` beside it.
    expect(listFiles(modelDir).filter((p) => !paths(MAIN_FILES).includes(p))).toEqual([]);
    expect(listFiles(path.join(tmp, '.download')).some((p) => p.endsWith('.data'))).toBe(true);
    const verified = listFiles(modelDir);
    expect(verified.length).toBeGreaterThan(0);

    cdn.reset();
    hub.requests.length = 0;
    const second = await runFetch({ HF_CHUNK_BYTES: String(MiB), HF_CONNECTIONS: '2' });
    expect(second.stderr).toBe('');
    expect(second.code).toBe(0);
    expect(second.stdout).toContain(`kept ${verified.length} file(s)`);
    expect(second.stdout).toContain('resuming 4.0 MiB of partial files from an earlier attempt');
    // The verified files were not asked for again; the model only for its missing ranges.
    for (const f of verified) expect(resolveRequests().filter((r) => decodeURIComponent(r.url).endsWith(`/${f}`))).toEqual([]);
    const ranges = cdn.requests.filter((r) => r.url.startsWith(`/blobs/${sha256(model.content)}`) && r.headers.range !== 'bytes=0-0')
      .map((r) => Number(/^bytes=(\d+)-/.exec(r.headers.range ?? '')![1]));
    expect(Math.min(...ranges)).toBe(4 * MiB); // (besides the 1-byte probe that finds the CDN URL)
    expect(fs.readFileSync(path.join(modelDir, 'model.safetensors')).equals(model.content)).toBe(true);
    expect(fs.readFileSync(path.join(tmp, 'SHA256SUMS'), 'utf8').split('\n').filter(Boolean)).toHaveLength(MAIN_FILES.length);
    expect(fs.existsSync(path.join(tmp, '.download'))).toBe(false);
  });

  test('repo files named SHA256SUMS or ending in .part are ordinary files: they arrive, nothing overwrites them', async () => {
    const files: RepoFile[] = [
      ...MAIN_FILES,
      { path: 'SHA256SUMS', content: Buffer.from('the repo\'s own checksums\n'), lfs: false },
      { path: 'weights.part', content: randomBytes(1000), lfs: true },
    ];
    hub.addCommit('main', { sha: SHA_MAIN, files });
    const run = await runFetch();
    expect(run.code).toBe(0);
    expect(listFiles(modelDir)).toEqual(paths(files));
    expect(fs.readFileSync(path.join(modelDir, 'SHA256SUMS'), 'utf8')).toBe('the repo\'s own checksums\n');
    const sums = fs.readFileSync(path.join(tmp, 'SHA256SUMS'), 'utf8');
    expect(sums).toContain(`${sha256(files[6].content)}  SHA256SUMS\n`);
    expect(sums).toContain(`${sha256(files[7].content)}  weights.part\n`);
  });

  test('a small file whose content does not match its git blob id fails, naming both ids', async () => {
    const config = MAIN_FILES.find((f) => f.path === 'config.json')!;
    hub.hook = (req, res) => {
      if (!req.url?.endsWith('/config.json')) return false;
      send(res, 200, Buffer.from(config.content.toString().replace('8', '9')), { 'X-Repo-Commit': SHA_MAIN });
      return true;
    };
    const run = await runFetch({ HF_INCLUDE: 'config.json' });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(`git blob id mismatch for config.json: the hub listed ${gitBlobId(config.content)}, the downloaded file has`);
    expect(listFiles(modelDir)).toEqual([]);
  });

  test('progress: one line per interval with bytes, MiB/s, ETA and connections in use, no carriage return', async () => {
    const model = MAIN_FILES.find((f) => f.path === 'model.safetensors')!;
    cdn.hook = (req, res) => {
      if (!req.url?.startsWith(`/blobs/${sha256(model.content)}`)) return false;
      // 9 MiB at about 6 MiB/s: about 1.5 s.
      res.writeHead(200, { 'Content-Length': model.content.length });
      let sent = 0;
      const timer = setInterval(() => {
        res.write(model.content.subarray(sent, sent + 64 * 1024));
        sent += 64 * 1024;
        if (sent >= model.content.length) {
          clearInterval(timer);
          res.end();
        }
      }, 10);
      res.on('close', () => clearInterval(timer));
      return true;
    };
    const run = await runFetch({ PROGRESS_INTERVAL_SECONDS: '0.3', HF_INCLUDE: 'model.safetensors' });
    expect(run.code).toBe(0);
    expect(run.stdout).not.toContain('\r');
    const lines = run.stdout.split('\n').filter((l) => l.startsWith('progress: '));
    expect(lines.length).toBeGreaterThanOrEqual(3);
    expect(lines[1]).toMatch(/^progress: [\d.]+ [KM]iB of 9\.0 MiB \(\d+%\), [\d.]+ MiB\/s now, [\d.]+ MiB\/s on average, ETA (\d+s|\d+m\d+s|unknown), 1 of 8 connections in use, 0 of 1 files done$/);
    expect(lines[lines.length - 1]).toMatch(/^progress: 9\.0 MiB of 9\.0 MiB \(100%\), .* ETA 0s, 0 of 8 connections in use, 1 of 1 files done$/);
  });

  test.each([
    '../evil.txt',
    '/tmp/evil.txt',
    'tokenizer/../../evil.txt',
    'a//b.txt',
    './config.json',
    '..\\evil.txt',
  ])('a hostile listing entry %j is refused before anything is downloaded', async (name) => {
    hub.addCommit('main', { sha: SHA_MAIN, files: MAIN_FILES, extraEntries: [{ type: 'file', path: name, size: 4, oid: sha1(name) }] });
    const run = await runFetch();
    expect(run.code).toBe(1);
    // Python prints the name with repr(): quoted, backslashes doubled.
    expect(run.stderr).toContain(`refusing unsafe path '${name.replace(/\\/g, '\\\\')}'`);
    expect(resolveRequests()).toHaveLength(0);
    expect(listFiles(tmp)).toEqual([]);
    expect(fs.existsSync(path.join(os.tmpdir(), 'evil.txt'))).toBe(false);
  });

  test('plain http to a host other than 127.0.0.1/localhost is refused without any request', async () => {
    // The fake hub is also set as the HTTP proxy: any request the script made would show up in its log.
    const proxy = { http_proxy: hub.base, HTTP_PROXY: hub.base, https_proxy: hub.base, HTTPS_PROXY: hub.base };
    const run = await runFetch({ ...proxy, HF_ENDPOINT: 'http://huggingface.co' });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('HF_ENDPOINT http://huggingface.co is not https: plain http is only allowed for 127.0.0.1/localhost');
    expect(hub.requests).toHaveLength(0);
  });

  test('a redirect to plain http on another host is refused without following it', async () => {
    hub.hook = (req, res) => {
      if (!req.url?.includes('/resolve/')) return false;
      res.writeHead(302, { 'Location': 'http://cdn.example.invalid/blob?X-Signature=secret', 'Content-Length': 0 });
      res.end();
      return true;
    };
    const proxy = { http_proxy: hub.base, HTTP_PROXY: hub.base, no_proxy: '127.0.0.1', NO_PROXY: '127.0.0.1' };
    const run = await runFetch({ ...proxy, HF_INCLUDE: 'config.json' });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('URL http://cdn.example.invalid/blob is not https');
    expect(run.stderr).not.toContain('secret'); // signed query strings are not printed
    expect(hub.requests.filter((r) => r.url.startsWith('http:'))).toHaveLength(0);
    expect(listFiles(modelDir)).toEqual([]);
    expect(fs.existsSync(path.join(tmp, 'SHA256SUMS'))).toBe(false);
  });

  test.each([
    '',
    'no-slash',
    'a/b/c',
    '../etc',
    'org/na me',
    'org/-bad',
    'org/a--b',
    'org/name?x=1',
    'org/name/../../x',
  ])('HF_REPO=%j is rejected before any request', async (repo) => {
    const run = await runFetch({ HF_REPO: repo });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(`configuration error: HF_REPO='${repo}' is not a Hugging Face model id of the form org/name`);
    expect(hub.requests).toHaveLength(0);
  });

  test.each([
    [{ MODEL_DIR: '' }, 'MODEL_DIR is required'],
    [{ HF_REVISION: 'a b' }, "HF_REVISION='a b' is not a valid branch, tag or commit sha"],
    [{ HF_RETRIES: '0' }, "HF_RETRIES='0' must be between 1 and 100"],
    [{ HF_TIMEOUT_SECONDS: 'soon' }, "HF_TIMEOUT_SECONDS='soon' is not a number"],
    [{ HF_TOKEN: 'hf_two words' }, 'HF_TOKEN contains whitespace, control or non-ASCII characters (value not shown)'],
  ])('bad configuration %j is rejected before any request', async (env, message) => {
    const run = await runFetch(env);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(message);
    expect(run.stderr).not.toContain('two words');
    expect(hub.requests).toHaveLength(0);
  });
});
