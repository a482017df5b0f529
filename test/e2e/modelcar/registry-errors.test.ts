/**
 * The step scripts' registry error classifier (src/modelcar/scripts/registry-errors.sh) over the lines skopeo
 * REALLY prints, captured here on every run so that they cannot go stale: real skopeo against a real
 * docker-registry with TLS and htpasswd (test/e2e/support/registry.ts), down, with a wrong password, without
 * credentials, asked for an unknown tag or repository, through an untrusted CA, and copying a layout whose blob
 * no longer matches its digest.
 *
 * docker-registry cannot answer 403, 429 or 5xx. For those, a STAND-IN server (named so below) answers real
 * skopeo with the status and the body the registries document (Docker Hub's `toomanyrequests`, distribution's
 * `DENIED`, a proxy's 503 page); skopeo's own handling and wording of the answer is what is captured. Likewise
 * stand-ins for a plain-HTTP server, one that never answers and one that hangs up.
 *
 * Adversarial on purpose: every port holds "401", the repository names hold 401, 403, 404, 429 and "certificate",
 * and the digest-mismatch layout is made so that both digests in skopeo's message hold "401".
 */
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as http from 'http';
import * as https from 'https';
import * as net from 'net';
import * as path from 'path';
import { diagnose, SHELLS } from '../../support/registry-errors';
import { makeCa, startRegistry, freePortContaining, LocalRegistry, TestCa } from '../support/registry';
import { freshWorkDir, requireTools, run } from '../support/tools';

jest.setTimeout(180_000);

const REPO = 'certificate-401/model-403-404-429';

let work: string;
let ca: TestCa;
let registry: LocalRegistry;
const servers: (net.Server | http.Server)[] = [];

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** A layer of 4 KiB whose digest holds "401" (found by trying nonces: about 1 in 70 does). */
function layerWith401(prefix: string): Buffer {
  for (let i = 0; ; i++) {
    const b = Buffer.alloc(4096, 0);
    b.write(`${prefix}-${i}`);
    if (sha256(b).includes('401')) return b;
  }
}

/** Writes a one-layer OCI image layout tagged `tag` into `dir`; returns the layer blob's path. */
function writeLayout(dir: string, layer: Buffer, tag = 'x'): string {
  const blobs = path.join(dir, 'blobs', 'sha256');
  fs.mkdirSync(blobs, { recursive: true });
  const put = (b: Buffer | string) => {
    const hex = sha256(b);
    fs.writeFileSync(path.join(blobs, hex), b);
    return { digest: `sha256:${hex}`, size: Buffer.byteLength(b) };
  };
  const layerBlob = put(layer);
  const config = put(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [layerBlob.digest] } }));
  const manifest = put(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layerBlob }],
  }));
  fs.writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  fs.writeFileSync(path.join(dir, 'index.json'), JSON.stringify({
    schemaVersion: 2,
    manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: { 'org.opencontainers.image.ref.name': tag } }],
  }));
  return path.join(blobs, layerBlob.digest.slice('sha256:'.length));
}

const sockets = new Set<net.Socket>();

async function listen(server: net.Server, digits = '401'): Promise<number> {
  const port = await freePortContaining(digits);
  servers.push(server);
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return port;
}

/** Runs skopeo with a clean HOME (no credentials of the host's) and returns its whole stderr; it must fail. */
async function skopeoFails(args: string[]): Promise<string> {
  const r = await run('skopeo', args, { allowFailure: true, timeoutMs: 120_000, env: { PATH: process.env.PATH, HOME: path.join(work, 'home') } });
  if (r.code === 0) throw new Error(`expected ${r.command} to fail; it succeeded`);
  return r.stderr;
}

interface Capture {
  readonly what: string;
  readonly stderr: string;
  /** What the line must contain (the upstream phrase the capture is about). */
  readonly phrase: RegExp;
  readonly klass: string;
}

let captures: Capture[];
let downPort: number;
let standInPort: number;
let standInCerts: string;
let wrongAuth: string;

beforeAll(async () => {
  requireTools(['skopeo', 'docker-registry', 'htpasswd', 'openssl', 'busybox', 'setpriv']);
  work = freshWorkDir('registry-errors');
  fs.mkdirSync(path.join(work, 'home'));
  ca = await makeCa(path.join(work, 'ca'));
  registry = await startRegistry({ name: 'errors', workDir: path.join(work, 'registry'), ca, username: 'robot', password: 'right-password', portContaining: '401' });
  const other = await makeCa(path.join(work, 'other-ca'), { commonName: 'not the registry CA' });
  const untrusted = path.join(work, 'untrusted-certs', registry.host);
  fs.mkdirSync(untrusted, { recursive: true });
  fs.copyFileSync(other.certPath, path.join(untrusted, 'ca.crt'));
  wrongAuth = path.join(work, 'wrong-auth.json');
  fs.writeFileSync(wrongAuth, JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from('robot:wrong-password').toString('base64') } } }));
  const noAuth = path.join(work, 'no-auth.json');
  fs.writeFileSync(noAuth, JSON.stringify({ auths: {} }));

  // An image in the registry, so that an unknown tag is asked of a repository that exists.
  const good = path.join(work, 'good');
  writeLayout(good, layerWith401('good'));
  await run('skopeo', ['copy', '--quiet', '--dest-cert-dir', registry.certDir, '--dest-authfile', registry.authFile, `oci:${good}:x`, `docker://${registry.host}/${REPO}:1`]);
  // A layout whose layer is altered in place after the fact (same size), both digests holding "401".
  const altered = path.join(work, 'altered');
  const blob = writeLayout(altered, layerWith401('altered-original'));
  const original = fs.readFileSync(blob);
  for (let i = 0; ; i++) {
    const b = Buffer.from(original);
    b.write(`changed-${i}`, 2048);
    if (sha256(b).includes('401')) {
      fs.writeFileSync(blob, b);
      break;
    }
  }

  // STAND-IN servers (not registries): real skopeo talks to them, their answers are the documented forms.
  const tls = await ca.issueServerCert(path.join(work, 'stand-in-tls'), { ips: ['127.0.0.1'] });
  const standIn = https.createServer({ cert: fs.readFileSync(tls.certPath), key: fs.readFileSync(tls.keyPath) }, (req, res) => {
    const json = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'Content-Type': 'application/json', 'Docker-Distribution-Api-Version': 'registry/2.0', ...headers });
      res.end(JSON.stringify(body));
    };
    if (req.url === '/v2/') return json(200, {});
    if (req.url!.startsWith('/v2/ratelimited-429/')) {
      // Docker Hub's documented answer to an anonymous pull over its limit. containers/image itself retries a 429
      // five times (docker_client.go: 2 s doubling, or the Retry-After seconds): Retry-After: 0 keeps this quick.
      return json(429, { errors: [{ code: 'TOOMANYREQUESTS', message: 'You have reached your pull rate limit. You may increase the limit by authenticating and upgrading: https://www.docker.com/increase-rate-limit' }] }, { 'Retry-After': '0' });
    }
    // distribution's DENIED, with its default message: skopeo 1.9 then prints the code alone ("...: denied").
    if (req.url!.startsWith('/v2/forbidden-403/')) return json(403, { errors: [{ code: 'DENIED', message: 'requested access to the resource is denied' }] });
    // The same with a detail (as docker-registry sends its 401s): skopeo prints "denied: <message>".
    if (req.url!.startsWith('/v2/forbidden-detail-403/')) {
      return json(403, { errors: [{ code: 'DENIED', message: 'requested access to the resource is denied', detail: [{ Type: 'repository', Name: 'forbidden-detail-403/x', Action: 'pull' }] }] });
    }
    // quay.io's answer to a repository that does not exist (or that these credentials may not read), once its
    // token endpoint has accepted the credentials: 401 with UNAUTHORIZED and this message.
    if (req.url!.startsWith('/v2/quay-unknown-401/')) {
      return json(401, { errors: [{ code: 'UNAUTHORIZED', detail: {}, message: 'access to the requested resource is not authorized' }] });
    }
    if (req.url!.startsWith('/v2/unavailable-503/')) {
      res.writeHead(503, { 'Content-Type': 'text/html' });
      return res.end('<html><body><h1>503 Service Unavailable</h1>No server is available to handle this request.</body></html>\n');
    }
    return json(404, { errors: [{ code: 'NAME_UNKNOWN', message: 'repository name not known to registry' }] });
  });
  standInPort = await listen(standIn);
  const plainPort = await listen(http.createServer((_req, res) => { res.writeHead(404); res.end('404 page not found\n'); }));
  const silentPort = await listen(net.createServer((s) => s.on('error', () => {})));
  const hangUpPort = await listen(net.createServer((s) => { s.on('error', () => {}); s.resetAndDestroy(); }));
  standInCerts = path.join(work, 'stand-in-certs');
  fs.mkdirSync(standInCerts);
  fs.copyFileSync(ca.certPath, path.join(standInCerts, 'ca.crt'));

  // Chosen last, once every server above listens, so that none of them takes it.
  downPort = await freePortContaining('401');
  const host = registry.host;
  const auth = ['--cert-dir', registry.certDir, '--authfile', registry.authFile];
  const dest = ['--dest-cert-dir', registry.certDir, '--dest-authfile', registry.authFile];
  const cases: [string, string[], RegExp, string][] = [
    ['registry down, inspect', ['inspect', '--raw', ...auth, `docker://127.0.0.1:${downPort}/${REPO}:1`], /dial tcp 127\.0\.0\.1:\d+: connect: connection refused/, 'network'],
    ['registry down, copy with a retry', ['copy', '--retry-times', '1', ...dest, `oci:${good}:x`, `docker://127.0.0.1:${downPort}/${REPO}:1`], /connect: connection refused/, 'network'],
    ['wrong password, inspect', ['inspect', '--raw', '--cert-dir', registry.certDir, '--authfile', wrongAuth, `docker://${host}/${REPO}:1`], /unauthorized: authentication required/, 'credentials'],
    ['wrong password, copy', ['copy', '--dest-cert-dir', registry.certDir, '--dest-authfile', wrongAuth, `oci:${good}:x`, `docker://${host}/${REPO}:2`], /unauthorized: authentication required/, 'credentials'],
    ['no credentials, copy', ['copy', '--dest-cert-dir', registry.certDir, '--dest-authfile', noAuth, `oci:${good}:x`, `docker://${host}/${REPO}:3`], /unauthorized: authentication required/, 'credentials'],
    ['unknown tag', ['inspect', '--raw', ...auth, `docker://${host}/${REPO}:nope-401`], /manifest unknown/, 'not-found'],
    ['unknown repository', ['inspect', '--raw', ...auth, `docker://${host}/no-such-401/repo-429:1`], /name unknown|manifest unknown/, 'not-found'],
    ['untrusted CA, inspect', ['inspect', '--raw', '--cert-dir', untrusted, '--authfile', registry.authFile, `docker://${host}/${REPO}:1`], /x509: certificate signed by unknown authority/, 'tls-untrusted'],
    ['untrusted CA, copy', ['copy', '--dest-cert-dir', untrusted, '--dest-authfile', registry.authFile, `oci:${good}:x`, `docker://${host}/${REPO}:4`], /x509: certificate signed by unknown authority/, 'tls-untrusted'],
    ['blob altered after the layout was written', ['copy', '--preserve-digests', ...dest, `oci:${altered}:x`, `docker://${host}/altered-401/certificate:1`], /Digest did not match, expected sha256:\w*401\w*, got sha256:\w*401\w*/, 'digest-mismatch'],
    ['STAND-IN 429 (Docker Hub\'s body)', ['inspect', '--raw', '--cert-dir', standInCerts, `docker://127.0.0.1:${standInPort}/ratelimited-429/x:1`], /toomanyrequests|too many requests/, 'rate-limited'],
    ['STAND-IN 403 (distribution\'s DENIED)', ['inspect', '--raw', '--cert-dir', standInCerts, `docker://127.0.0.1:${standInPort}/forbidden-403/x:1`], /: denied"$/, 'denied'],
    ['STAND-IN 403 (DENIED with a detail)', ['inspect', '--raw', '--cert-dir', standInCerts, `docker://127.0.0.1:${standInPort}/forbidden-detail-403/x:1`], /denied: requested access to the resource is denied/, 'denied'],
    ['STAND-IN 401 (quay.io\'s answer for an unknown repository)', ['inspect', '--raw', '--cert-dir', standInCerts, `docker://127.0.0.1:${standInPort}/quay-unknown-401/x:1`], /unauthorized: access to the requested resource is not authorized/, 'credentials'],
    ['STAND-IN 503 (a proxy\'s page)', ['inspect', '--raw', '--cert-dir', standInCerts, `docker://127.0.0.1:${standInPort}/unavailable-503/x:1`], /503/, 'server-error'],
    ['STAND-IN plain HTTP server', ['inspect', '--raw', '--cert-dir', standInCerts, `docker://127.0.0.1:${plainPort}/x401/y:1`], /server gave HTTP response to HTTPS client/, 'plain-http'],
    ['STAND-IN server that never answers', ['inspect', '--raw', '--cert-dir', standInCerts, `docker://127.0.0.1:${silentPort}/x401/y:1`], /TLS handshake timeout|i\/o timeout|deadline/, 'network'],
    ['STAND-IN server that hangs up', ['inspect', '--raw', '--cert-dir', standInCerts, `docker://127.0.0.1:${hangUpPort}/x401/y:1`], /connection reset by peer|EOF/, 'network'],
  ];
  const stderrs = await Promise.all(cases.map(([, args]) => skopeoFails(args)));
  captures = cases.map(([what, , phrase, klass], i) => ({ what, stderr: stderrs[i], phrase, klass }));
  // For the record (and the report): the final line of each capture.
  fs.writeFileSync(path.join(work, 'captured.txt'), captures.map((c) => `${c.klass}\t${c.what}\n${c.stderr.trim().split('\n').pop()}\n`).join('\n'));
}, 180_000);

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  await registry?.stop();
});

describe('registry error classifier on the lines skopeo really prints', () => {
  test('each capture failed the way it was meant to (the upstream phrase is in skopeo\'s final line), ports holding 401', () => {
    for (const c of captures) {
      expect([c.what, c.stderr.trim().split('\n').pop()]).toEqual([c.what, expect.stringMatching(c.phrase)]);
    }
    expect(String(downPort)).toContain('401');
    expect(String(registry.port)).toContain('401');
    expect(captures.find((c) => c.what === 'registry down, inspect')!.stderr).toContain(`127.0.0.1:${downPort}`);
    // The retry warning came before the final error.
    expect(captures.find((c) => c.what === 'registry down, copy with a retry')!.stderr).toMatch(/retrying/i);
  });

  test.each(SHELLS)('classifies every capture in %s', (shell) => {
    const got = diagnose(captures.map((c) => c.stderr), shell);
    expect(captures.map((c, i) => [c.what, got[i].klass])).toEqual(captures.map((c) => [c.what, c.klass]));
  });

  test('no capture is diagnosed as a credentials problem but the credentials ones, though every line holds 401', () => {
    const got = diagnose(captures.map((c) => c.stderr), 'dash', true);
    for (const [i, c] of captures.entries()) {
      expect(c.stderr).toContain('401');
      expect([c.what, got[i].push.includes('refused the credentials')]).toEqual([c.what, c.klass === 'credentials']);
    }
  });
});

/**
 * The check task's reading of a failed inspect (check-published.sh, run as the step runs it): "not there" means
 * rebuild, an answer it cannot read as "not there" stops the run. quay.io answers a repository that does not exist
 * yet with 401 "access to the requested resource is not authorized": a first run against quay must build, not fail.
 */
describe('check-published: which failed inspect means rebuild', () => {
  // Async (the stand-in servers live in this process: a blocking spawn would starve them).
  const check = async (image: string, certDir: string, authfile?: string) => {
    const dir = path.join(work, `check-${Math.random().toString(16).slice(2)}`);
    fs.mkdirSync(dir);
    const r = await run('sh', [path.join(__dirname, '..', '..', '..', 'src', 'modelcar', 'scripts', 'check-published.sh')], {
      allowFailure: true,
      timeoutMs: 120_000,
      env: {
        PATH: process.env.PATH,
        HOME: path.join(work, 'home'),
        MODE: 'check',
        // one target: name, repository, tls-verify, retries, cert dir, auth mode, auth file
        TARGETS: `t ${image} true 0 ${certDir} ${authfile ? 'secret' : 'none'} ${authfile ?? '-'}`,
        IMAGE_TAGS: 'v1',
        MODEL_REPO: 'o/m',
        TMPDIR: path.join(dir, 'tmp'),
        FORCE_REBUILD: 'false',
        EXPECTED_REVISION: 'c0ffee',
        EXPECTED_CONFIG: 'sha256:x',
        RESULT_REBUILD: path.join(dir, 'rebuild'),
      },
    });
    const read = (f: string) => fs.existsSync(f) ? fs.readFileSync(f, 'utf8') : '';
    return { code: r.code, verdict: read(path.join(dir, 'tmp', 'verdicts', 't')), rebuild: read(path.join(dir, 'rebuild')), stderr: r.stderr };
  };

  test('quay.io\'s 401 for an unknown repository (STAND-IN) and an unknown tag (real registry) mean rebuild', async () => {
    const quay = await check(`127.0.0.1:${standInPort}/quay-unknown-401/x`, standInCerts);
    expect([quay.code, quay.verdict, quay.rebuild]).toEqual([0, expect.stringMatching(/^rebuild: .*does not show v1 to these credentials .*access to the requested resource is not authorized/), 'true']);
    const tag = await check(`${registry.host}/${REPO}`, registry.certDir, registry.authFile);
    expect([tag.code, tag.verdict]).toEqual([0, expect.stringMatching(/^rebuild: .*tag v1 not found/)]);
  });

  test('refused credentials, an untrusted CA and a registry down stop the run with the diagnosis, no verdict', async () => {
    const refused = await check(`${registry.host}/${REPO}`, registry.certDir, wrongAuth);
    expect([refused.code, refused.verdict, refused.rebuild]).toEqual([1, '', '']);
    expect(refused.stderr).toContain('the registry refused the credentials (401)');
    const down = await check(`127.0.0.1:${downPort}/${REPO}`, registry.certDir, registry.authFile);
    expect([down.code, down.verdict]).toEqual([1, '']);
    expect(down.stderr).toMatch(/cannot reach the registry.*so the run stops rather than skip or rebuild/);
  });
});
