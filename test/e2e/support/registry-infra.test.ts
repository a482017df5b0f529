/**
 * Proves the registry test infrastructure for OCI distribution clients against the real tools:
 *   - token auth: docker-registry 2.8.2 with its native `auth: token:` and the token service stand-in
 *     (registry-token.ts), driven by node https and by skopeo with an authfile;
 *   - the fault proxy (registry-faults.ts) in front of a registry: plain forwarding under skopeo, injected statuses
 *     (skopeo and node), and the cut and expired-session faults on a chunked upload spoken by hand, with what
 *     distribution 2.8.2 answers afterwards.
 * Missing tools make it FAIL (requireTools), never skip.
 */
import { createHash, X509Certificate } from 'crypto';
import * as fs from 'fs';
import * as http from 'http';
import * as https from 'https';
import * as net from 'net';
import * as path from 'path';
import * as zlib from 'zlib';
import { makeTar } from './base-image';
import { basicAuth, dockerConfigJsonFor, LocalRegistry, makeCa, startRegistry, TestCa } from './registry';
import { FaultProxy, httpsRequest, REGISTRY_ROUTES, startFaultProxy } from './registry-faults';
import { decodeJwt, parseScopes } from './registry-token';
import { classifyRegistryError, inspectDigest, skopeoCopy } from './skopeo';
import { freshWorkDir, requireTools, run, stopwatch } from './tools';
import { KEEP_ENV } from '../../support/run-root';

const sha256 = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

interface TinyImage {
  readonly ociRef: string;
  readonly manifestDigest: string;
  readonly layerDigest: string;
  readonly layerSize: number;
}

/**
 * A one-layer OCI image layout written by hand: a gzipped tar holding `bytes` of random data (so the layer does not
 * shrink: its size is what the uploads carry), an OCI config and manifest.
 */
function writeTinyImage(dir: string, bytes: number): TinyImage {
  const blobs = path.join(dir, 'blobs', 'sha256');
  fs.mkdirSync(blobs, { recursive: true });
  const put = (data: Buffer): string => {
    const digest = sha256(data);
    fs.writeFileSync(path.join(blobs, digest.slice(7)), data);
    return digest;
  };
  const tar = makeTar([{ name: 'payload.bin', type: 'file', mode: 0o644, data: Buffer.from(Array.from({ length: bytes }, () => Math.floor(Math.random() * 256))) }]);
  const layer = zlib.gzipSync(tar, { level: 1 });
  const layerDigest = put(layer);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(tar)] } }));
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: put(config), size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layerDigest, size: layer.length }],
  }));
  const manifestDigest = put(manifest);
  fs.writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  fs.writeFileSync(path.join(dir, 'index.json'), JSON.stringify({
    schemaVersion: 2,
    manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: manifestDigest, size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': '1' } }],
  }));
  return { ociRef: `oci:${dir}:1`, manifestDigest, layerDigest, layerSize: layer.length };
}

/** The error codes of a registry-style JSON error body. */
const errorCodes = (body: Buffer): string[] => (JSON.parse(body.toString('utf8')) as { errors: { code: string }[] }).errors.map((e) => e.code);

let work: string;
let ca: TestCa;
let caPem: Buffer;
let plain: LocalRegistry | undefined;
let tokenReg: LocalRegistry | undefined;
let proxy: FaultProxy | undefined;
let image: TinyImage;

const { timings, timed } = stopwatch();

beforeAll(async () => {
  requireTools(['docker-registry', 'htpasswd', 'openssl', 'setpriv', 'skopeo']);
  work = freshWorkDir('registry-infra');
  ca = await makeCa(path.join(work, 'ca'));
  caPem = fs.readFileSync(ca.certPath);
  [plain, tokenReg] = await timed('start 2 registries', async () => Promise.all([
    startRegistry({ name: 'plain', workDir: path.join(work, 'registry-plain'), ca }),
    startRegistry({ name: 'token', workDir: path.join(work, 'registry-token'), ca, auth: 'token', username: 'robot', password: 'robot-secret' }),
  ]));
  proxy = await startFaultProxy(plain!);
  image = writeTinyImage(path.join(work, 'tiny-oci'), 256 * 1024);
}, 60_000);

afterAll(async () => {
  await proxy?.close();
  await Promise.all([plain?.stop(), tokenReg?.stop()]);
  if (work && !process.env[KEEP_ENV]) fs.rmSync(work, { recursive: true, force: true });
  // eslint-disable-next-line no-console
  console.log(`registry infra timings (ms): ${JSON.stringify(timings)}`);
});

describe('token auth: docker-registry with the token service stand-in', () => {
  const token = () => tokenReg!.tokenServer!;
  const basic = (user: string, password: string) => ({ Authorization: `Basic ${basicAuth(user, password)}` });
  const askToken = async (scopes: string[], headers: http.OutgoingHttpHeaders = {}) => {
    const q = new URLSearchParams({ service: token().service });
    for (const s of scopes) q.append('scope', s);
    return httpsRequest(`${token().realm}?${q}`, { headers, ca: caPem });
  };
  const bearer = (t: string) => ({ Authorization: `Bearer ${t}` });

  beforeEach(() => token().reset());

  test('the registry challenges with the realm; the valid user gets a Docker Hub-shaped answer granting pull and push', async () => {
    expect(tokenReg!.auth).toBe('token');
    const ping = await httpsRequest(`${tokenReg!.url}/v2/`, { ca: caPem });
    expect(ping.status).toBe(401);
    expect(ping.headers['www-authenticate']).toBe(`Bearer realm="${token().realm}",service="${token().service}"`);
    const tags = await httpsRequest(`${tokenReg!.url}/v2/models/a/tags/list`, { ca: caPem });
    expect(tags.headers['www-authenticate']).toBe(`Bearer realm="${token().realm}",service="${token().service}",scope="repository:models/a:pull"`);

    const t0 = Math.floor(Date.now() / 1000);
    const res = await askToken(['repository:models/a:pull,push,delete', 'registry:catalog:*'], basic('robot', 'robot-secret'));
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/json');
    const body = JSON.parse(res.body.toString());
    expect(Object.keys(body).sort()).toEqual(['access_token', 'expires_in', 'issued_at', 'token']);
    expect(body.access_token).toBe(body.token);
    expect(body.expires_in).toBe(300);
    expect(Math.abs(Date.parse(body.issued_at) / 1000 - t0)).toBeLessThan(5);
    const { header, claims } = decodeJwt(body.token);
    const signer = new X509Certificate(fs.readFileSync(token().rootCertBundlePath));
    expect(header).toEqual({ typ: 'JWT', alg: 'ES256', x5c: [signer.raw.toString('base64')] });
    expect(signer.issuer).toBe(signer.subject); // self-signed: the cert is the whole rootcertbundle
    expect(claims).toMatchObject({ iss: token().issuer, aud: token().service, sub: 'robot', access: [{ type: 'repository', name: 'models/a', actions: ['pull', 'push'] }] });
    expect(typeof claims.aud).toBe('string'); // distribution 2.8 unmarshals aud into a string
    expect((claims.exp as number) - (claims.iat as number)).toBe(300);
    expect(claims.nbf).toBe(claims.iat);
    expect(token().requests).toEqual([expect.objectContaining({
      method: 'GET',
      service: token().service,
      scopes: ['repository:models/a:pull,push,delete', 'registry:catalog:*'],
      user: 'robot',
      credentials: 'valid',
      status: 200,
      granted: [{ type: 'repository', name: 'models/a', actions: ['pull', 'push'] }],
      expiresIn: 300,
    })]);

    // The registry takes it for models/a (authorized: the repository just does not exist yet), not for another one.
    expect((await httpsRequest(`${tokenReg!.url}/v2/`, { headers: bearer(body.token), ca: caPem })).status).toBe(200);
    const known = await httpsRequest(`${tokenReg!.url}/v2/models/a/tags/list`, { headers: bearer(body.token), ca: caPem });
    expect([known.status, errorCodes(known.body)]).toEqual([404, ['NAME_UNKNOWN']]);
    const other = await httpsRequest(`${tokenReg!.url}/v2/models/b/tags/list`, { headers: bearer(body.token), ca: caPem });
    expect(other.status).toBe(401);
    expect(other.headers['www-authenticate']).toMatch(/scope="repository:models\/b:pull",error="insufficient_scope"$/);
    // A pull-only token cannot start an upload: POST needs pull AND push.
    const pullOnly = JSON.parse((await askToken(['repository:models/a:pull'], basic('robot', 'robot-secret'))).body.toString()).token;
    const post = await httpsRequest(`${tokenReg!.url}/v2/models/a/blobs/uploads/`, { method: 'POST', headers: bearer(pullOnly), ca: caPem });
    expect(post.status).toBe(401);
    // The challenge names both actions, in either order (distribution builds it from a Go map).
    expect(post.headers['www-authenticate']).toMatch(/scope="repository:models\/a:(pull,push|push,pull)",error="insufficient_scope"$/);
    // No scope (a login check): a token with no access, good for /v2/ only.
    const login = JSON.parse((await askToken([], basic('robot', 'robot-secret'))).body.toString()).token;
    expect(decodeJwt(login).claims.access).toEqual([]);
    expect((await httpsRequest(`${tokenReg!.url}/v2/`, { headers: bearer(login), ca: caPem })).status).toBe(200);
  });

  test('wrong credentials and anonymous requests: 401 with a JSON error from the token server; empty-token policy', async () => {
    for (const [headers, message] of [
      [basic('robot', 'wrong'), 'incorrect username or password'],
      [basic('nobody', 'robot-secret'), 'incorrect username or password'],
      [{}, 'authentication required'],
    ] as const) {
      const res = await askToken(['repository:models/a:pull,push'], headers);
      expect(res.status).toBe(401);
      expect(JSON.parse(res.body.toString())).toEqual({ errors: [{ code: 'UNAUTHORIZED', message }] });
      expect(res.headers['www-authenticate']).toBe(`Basic realm="${token().issuer}"`);
    }
    expect(token().requests.map((r) => [r.user, r.credentials, r.status, r.granted])).toEqual([
      ['robot', 'invalid', 401, []], ['nobody', 'invalid', 401, []], [undefined, 'anonymous', 401, []],
    ]);

    // Docker Hub's way for a private repository: the anonymous client gets a token, the registry refuses its use.
    token().anonymous = 'empty-token';
    const anon = await askToken(['repository:models/a:pull']);
    expect(anon.status).toBe(200);
    const anonToken = JSON.parse(anon.body.toString()).token;
    expect(decodeJwt(anonToken).claims).toMatchObject({ sub: '', access: [] });
    const refused = await httpsRequest(`${tokenReg!.url}/v2/models/a/tags/list`, { headers: bearer(anonToken), ca: caPem });
    expect(refused.status).toBe(401);
    expect(refused.headers['www-authenticate']).toMatch(/error="insufficient_scope"$/);

    expect((await httpsRequest(`${token().realm}?service=x`, { method: 'POST', ca: caPem })).status).toBe(405);
    expect((await httpsRequest(`${token().url}/v2/token`, { ca: caPem })).status).toBe(404);
    expect(parseScopes(['repository:127.0.0.1:5000/a/b:pull', 'repository:a:pull repository:b:push', 'nonsense'])).toEqual([
      { type: 'repository', name: '127.0.0.1:5000/a/b', actions: ['pull'] },
      { type: 'repository', name: 'a', actions: ['pull'] },
      { type: 'repository', name: 'b', actions: ['push'] },
    ]);
  });

  test('lifetime: the registry takes a token up to 60 s past exp; strictExpiry makes it refuse it at expires_in', async () => {
    const tagsWith = async (t: string) => httpsRequest(`${tokenReg!.url}/v2/models/a/tags/list`, { headers: bearer(t), ca: caPem });
    token().lifetimeSeconds = 0;
    const lenient = JSON.parse((await askToken(['repository:models/a:pull'], basic('robot', 'robot-secret'))).body.toString());
    expect(lenient.expires_in).toBe(0);
    expect((await tagsWith(lenient.token)).status).toBe(404); // exp = iat, within distribution's 60 s leeway
    token().strictExpiry = true;
    const strict = JSON.parse((await askToken(['repository:models/a:pull'], basic('robot', 'robot-secret'))).body.toString());
    const claims = decodeJwt(strict.token).claims as { exp: number; iat: number };
    expect(claims.exp - claims.iat).toBe(-60);
    const expired = await tagsWith(strict.token);
    expect(expired.status).toBe(401);
    expect(expired.headers['www-authenticate']).toMatch(/error="invalid_token"$/);
    token().reset();
    expect([token().lifetimeSeconds, token().strictExpiry, token().anonymous]).toEqual([300, false, 'deny']);
  });

  test('skopeo pushes with an authfile and reads the image back; a wrong password fails', async () => {
    const ref = `docker://${tokenReg!.host}/models/tiny:1`;
    const authFile = path.join(work, 'token-auth.json');
    fs.writeFileSync(authFile, dockerConfigJsonFor([tokenReg!]));
    const digest = await timed('skopeo copy (token)', async () => skopeoCopy(image.ociRef, ref, {
      workDir: work, destRegistry: { certDir: tokenReg!.certDir, authFile },
    }));
    expect(digest).toBe(image.manifestDigest);
    expect(await inspectDigest(ref, { certDir: tokenReg!.certDir, authFile })).toBe(image.manifestDigest);
    const pushScopes = token().requests.filter((r) => r.scopes.includes('repository:models/tiny:pull,push'));
    expect(pushScopes.length).toBeGreaterThan(0);
    for (const r of pushScopes) expect(r).toMatchObject({ user: 'robot', credentials: 'valid', status: 200, granted: [{ type: 'repository', name: 'models/tiny', actions: ['pull', 'push'] }] });
    expect(token().requests.some((r) => r.scopes.includes('repository:models/tiny:pull') && r.status === 200)).toBe(true);

    const badAuth = path.join(work, 'token-bad-auth.json');
    fs.writeFileSync(badAuth, dockerConfigJsonFor([{ host: tokenReg!.host, username: 'robot', password: 'wrong' }]));
    const inspect = await run('skopeo', ['inspect', '--cert-dir', tokenReg!.certDir, '--authfile', badAuth, ref], { allowFailure: true });
    expect(inspect.code).toBe(1);
    expect(inspect.stderr).toMatch(/incorrect username or password/);
    const push = await run('skopeo', ['copy', '--retry-times', '0', '--dest-cert-dir', tokenReg!.certDir, '--dest-authfile', badAuth, image.ociRef, `docker://${tokenReg!.host}/models/denied:1`], { allowFailure: true });
    expect(push.code).toBe(1);
    expect(push.stderr).toMatch(/incorrect username or password/);
    expect(token().requests.filter((r) => r.credentials === 'invalid').length).toBeGreaterThanOrEqual(2);
  });

  test('stop closes the token server with the registry; restart brings both back', async () => {
    const realm = token().realm;
    await timed('token registry restart', async () => {
      await tokenReg!.stop();
      expect(token().isRunning()).toBe(false);
      await expect(httpsRequest(realm, { ca: caPem })).rejects.toThrow(/ECONNREFUSED/);
      await tokenReg!.restart();
    });
    expect(token().realm).toBe(realm);
    expect(await inspectDigest(`docker://${tokenReg!.host}/models/tiny:1`, { certDir: tokenReg!.certDir, authFile: tokenReg!.authFile })).toBe(image.manifestDigest);
  });
});

describe('fault proxy', () => {
  const auth = () => ({ Authorization: `Basic ${basicAuth(plain!.username, plain!.password)}` });
  const octets = { 'Content-Type': 'application/octet-stream' };
  /** POST a new upload session through the proxy; its upload URL (Location, pointing at the proxy). */
  const startUpload = async (repo: string): Promise<string> => {
    const post = await httpsRequest(`${proxy!.url}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers: auth(), ca: caPem });
    expect(post.status).toBe(202);
    return post.headers.location!;
  };
  const patch = async (uploadUrl: string, body: Buffer, start: number) => httpsRequest(uploadUrl, {
    method: 'PATCH', body, ca: caPem, headers: { ...auth(), ...octets, 'Content-Range': `${start}-${start + body.length - 1}` },
  });
  const status = async (uploadUrl: string) => httpsRequest(uploadUrl, { headers: auth(), ca: caPem });
  const finish = async (uploadUrl: string, digest: string) => {
    const u = new URL(uploadUrl);
    u.searchParams.set('digest', digest);
    return httpsRequest(u.toString(), { method: 'PUT', headers: { ...auth(), ...octets }, ca: caPem });
  };
  const chunk = (n: number, fill: number) => Buffer.alloc(n, fill);

  beforeEach(() => proxy!.reset());

  test('a skopeo copy through the proxy succeeds; upload URLs point at the proxy; the log shows the push', async () => {
    const digest = await timed('skopeo copy (proxy)', async () => skopeoCopy(image.ociRef, `docker://${proxy!.host}/models/tiny:1`, { workDir: work, destRegistry: proxy }));
    expect(digest).toBe(image.manifestDigest);
    expect(await inspectDigest(`docker://${plain!.host}/models/tiny:1`, plain)).toBe(image.manifestDigest);

    // skopeo sent the PATCH and the PUT of the layer to the upload URL the registry gave: they reached the proxy, so
    // that Location was rewritten to point at it.
    const log = proxy!.requests;
    const upload = log.find((r) => r.method === 'PATCH' && r.requestBytes === image.layerSize);
    expect(upload).toMatchObject({ status: 202, query: '?_state=REDACTED', responseBytes: 0 });
    expect(upload!.path).toMatch(/^\/v2\/models\/tiny\/blobs\/uploads\/[0-9a-f-]{36}$/);
    const put = log.find((r) => r.method === 'PUT' && r.path === upload!.path);
    expect(put).toMatchObject({ status: 201 });
    expect(put!.query).toMatch(new RegExp(`_state=REDACTED&digest=${image.layerDigest.replace(':', '(:|%3A)')}$`));
    expect(log).toEqual(expect.arrayContaining([
      expect.objectContaining({ method: 'GET', path: '/v2/', status: 401 }),
      expect.objectContaining({ method: 'HEAD', path: `/v2/models/tiny/blobs/${image.layerDigest}`, status: 404 }),
      expect.objectContaining({ method: 'POST', path: '/v2/models/tiny/blobs/uploads/', status: 202 }),
      expect.objectContaining({ method: 'PUT', path: '/v2/models/tiny/manifests/1', status: 201 }),
    ]));
    expect(log.every((r) => r.fault === undefined && r.error === undefined)).toBe(true);
  });

  test('in front of a token registry: the client gets its tokens from the token server itself', async () => {
    const viaProxy = await startFaultProxy(tokenReg!);
    try {
      tokenReg!.tokenServer!.reset();
      const authFile = path.join(work, 'token-proxy-auth.json');
      fs.writeFileSync(authFile, dockerConfigJsonFor([{ host: viaProxy.host, username: 'robot', password: 'robot-secret' }]));
      const digest = await skopeoCopy(image.ociRef, `docker://${viaProxy.host}/models/via-proxy:1`, { workDir: work, destRegistry: { certDir: viaProxy.certDir, authFile } });
      expect(digest).toBe(image.manifestDigest);
      expect(viaProxy.requests[0]).toMatchObject({ method: 'GET', path: '/v2/', status: 401 });
      const challenge = await httpsRequest(`${viaProxy.url}/v2/models/x/tags/list`, { ca: caPem });
      expect(challenge.headers['www-authenticate']).toBe(`Bearer realm="${tokenReg!.tokenServer!.realm}",service="${tokenReg!.tokenServer!.service}",scope="repository:models/x:pull"`);
      expect(viaProxy.requests.some((r) => r.path === '/token')).toBe(false);
      expect(tokenReg!.tokenServer!.requests.some((r) => r.scopes.includes('repository:models/via-proxy:pull,push') && r.status === 200)).toBe(true);
    } finally {
      await viaProxy.close();
    }
  });

  test('failWith on the manifest PUT: skopeo copy --retry-times 0 fails (a 5xx by its status, a 4xx with the registry message)', async () => {
    const copy = async (repo: string) => run('skopeo', [
      'copy', '--retry-times', '0', '--dest-cert-dir', proxy!.certDir, '--dest-authfile', proxy!.authFile, image.ociRef, `docker://${proxy!.host}/${repo}:1`,
    ], { allowFailure: true });
    proxy!.failWith(500, 1, REGISTRY_ROUTES.manifestPut, { message: 'storage backend unavailable (injected)' });
    const c500 = await copy('models/fail500');
    expect(c500.code).toBe(1);
    // containers/image reads the error body of a 4xx only (docker/distribution's client): a 5xx shows its status line.
    expect(c500.stderr).toMatch(/writing manifest: uploading manifest 1 to 127\.0\.0\.1:\d+\/models\/fail500: received unexpected HTTP status: 500 Internal Server Error/);
    expect(proxy!.requests.filter((r) => r.fault === 'failWith')).toEqual([
      expect.objectContaining({ method: 'PUT', path: '/v2/models/fail500/manifests/1', status: 500 }),
    ]);
    expect(proxy!.pendingFaults()).toEqual([]);
    // The blob went through, the manifest did not reach the registry.
    const head = await httpsRequest(`${plain!.url}/v2/models/fail500/blobs/${image.layerDigest}`, { method: 'HEAD', headers: auth(), ca: caPem });
    expect([head.status, head.headers['content-length']]).toEqual([200, String(image.layerSize)]);
    const missing = await run('skopeo', ['inspect', '--cert-dir', plain!.certDir, '--authfile', plain!.authFile, `docker://${plain!.host}/models/fail500:1`], { allowFailure: true });
    expect(classifyRegistryError(missing.stderr)).toBe('manifestUnknown');

    proxy!.failWith(403, 1, REGISTRY_ROUTES.manifestPut, { code: 'DENIED', message: 'quota exceeded (injected)' });
    const c403 = await copy('models/fail403');
    expect(c403.code).toBe(1);
    expect(c403.stderr).toMatch(/denied: quota exceeded \(injected\)/);
  });

  test('failWith: the next N matching requests only, registry-style bodies, Retry-After on 429', async () => {
    proxy!.failWith(429, 2, REGISTRY_ROUTES.blobHead);
    proxy!.failWith(503, 1, { method: ['GET', 'HEAD'], path: /\/blobs\// }, { retryAfterSeconds: 7 });
    proxy!.failWith(502, 1, { path: /^\/v2\/$/ });
    const blobUrl = `${proxy!.url}/v2/models/tiny/blobs/${image.layerDigest}`;
    const r1 = await httpsRequest(blobUrl, { method: 'HEAD', headers: auth(), ca: caPem });
    const r2 = await httpsRequest(blobUrl, { method: 'HEAD', headers: auth(), ca: caPem });
    const r3 = await httpsRequest(blobUrl, { headers: auth(), ca: caPem });
    const r4 = await httpsRequest(blobUrl, { headers: auth(), ca: caPem });
    const ping = await httpsRequest(`${proxy!.url}/v2/`, { headers: auth(), ca: caPem });
    const ping2 = await httpsRequest(`${proxy!.url}/v2/`, { headers: auth(), ca: caPem });
    expect([r1, r2, r3, r4, ping, ping2].map((r) => r.status)).toEqual([429, 429, 503, 200, 502, 200]);
    expect([r1.headers['retry-after'], r3.headers['retry-after'], ping.headers['retry-after']]).toEqual(['1', '7', undefined]);
    expect(JSON.parse(r3.body.toString())).toEqual({ errors: [{ code: 'UNAVAILABLE', message: 'service unavailable', detail: 'fault injected by the e2e fault proxy' }] });
    expect(errorCodes(ping.body)).toEqual(['UNAVAILABLE']);
    expect(r3.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(r4.body.length).toBe(image.layerSize); // forwarded: the blob itself
    expect(proxy!.requests.map((r) => [r.method, r.status, r.fault ?? '-', r.responseBytes])).toEqual([
      ['HEAD', 429, 'failWith', 0],
      ['HEAD', 429, 'failWith', 0],
      ['GET', 503, 'failWith', r3.body.length],
      ['GET', 200, '-', image.layerSize],
      ['GET', 502, 'failWith', ping.body.length],
      ['GET', 200, '-', 2],
    ]);
    // A 500 on a PATCH reads the whole body first (a buffering gateway): the registry never sees it.
    const uploadUrl = await startUpload('models/fail-patch');
    proxy!.failWith(500, 1, REGISTRY_ROUTES.uploadPatch);
    const failed = await patch(uploadUrl, chunk(100_000, 1), 0);
    expect([failed.status, errorCodes(failed.body)]).toEqual([500, ['UNKNOWN']]);
    expect(proxy!.requests.at(-1)).toMatchObject({ method: 'PATCH', status: 500, requestBytes: 100_000 });
    expect((await status(uploadUrl)).headers.range).toBe('0-0');
  });

  test('distribution 2.8.2 upload sessions as a chunked client meets them (no fault)', async () => {
    const url0 = await startUpload('models/facts');
    const empty = await status(url0);
    expect([empty.status, empty.headers.range, empty.headers['docker-upload-uuid']]).toEqual([204, '0-0', new URL(url0).pathname.split('/').pop()]);
    const one = await patch(url0, chunk(1, 1), 0);
    expect([one.status, one.headers.range]).toEqual([202, '0-0']); // the same Range as the empty upload
    expect(one.headers.location).not.toBe(url0); // each answer gives a new upload URL (a new _state)
    // Content-Range is not checked: a PATCH that claims offset 5000 is appended at 1.
    const wrongRange = await patch(one.headers.location!, chunk(99, 2), 5000);
    expect([wrongRange.status, wrongRange.headers.range]).toEqual([202, '0-99']);
    // A wrong digest at the end: 400 DIGEST_INVALID, and the session stays (the cancel 2.8 attempts after a failed
    // commit fails: the writer is closed by then), so the right digest on the same URL still completes it.
    const bad = await finish(wrongRange.headers.location!, sha256('something else'));
    expect([bad.status, errorCodes(bad.body)]).toEqual([400, ['DIGEST_INVALID']]);
    const kept = await status(wrongRange.headers.location!);
    expect([kept.status, kept.headers.range]).toEqual([204, '0-99']);
    const digest = sha256(Buffer.concat([chunk(1, 1), chunk(99, 2)]));
    const done = await finish(wrongRange.headers.location!, digest);
    expect([done.status, done.headers['docker-content-digest']]).toEqual([201, digest]);
    // A finished session is gone.
    const after = await status(wrongRange.headers.location!);
    expect([after.status, errorCodes(after.body)]).toEqual([404, ['BLOB_UPLOAD_UNKNOWN']]);
    expect(JSON.parse(after.body.toString()).errors[0].message).toBe('blob upload unknown to registry');
  });

  test('cutAfterForwarding: the registry commits the PATCH, the client sees the connection close unanswered', async () => {
    const uploadUrl = await startUpload('models/cut-after');
    const first = await patch(uploadUrl, chunk(1000, 1), 0);
    expect([first.status, first.headers.range]).toEqual([202, '0-999']);
    const url1 = first.headers.location!;
    expect(url1.startsWith(`${proxy!.url}/v2/models/cut-after/blobs/uploads/`)).toBe(true); // rewritten to the proxy
    const ok = await status(url1);
    expect([ok.status, ok.headers.range, ok.headers['docker-upload-uuid']]).toEqual([204, '0-999', first.headers['docker-upload-uuid']]);

    proxy!.cutAfterForwarding(1, REGISTRY_ROUTES.uploadPatch);
    await expect(patch(url1, chunk(500, 2), 1000)).rejects.toThrow(/socket hang up|ECONNRESET/);
    expect(proxy!.requests.at(-1)).toMatchObject({ method: 'PATCH', fault: 'cutAfterForwarding', status: 202, requestBytes: 500, responseBytes: 0 });

    // distribution 2.8 on the URL the client still holds (its _state says offset 1000, the registry has 1500):
    // 404 BLOB_UPLOAD_INVALID, every time; it cannot tell the client the offset.
    for (let i = 0; i < 2; i++) {
      const stale = await status(url1);
      expect([stale.status, errorCodes(stale.body)]).toEqual([404, ['BLOB_UPLOAD_INVALID']]);
    }
    expect(fs.readFileSync(plain!.logPath, 'utf8')).toMatch(/upload resumed at wrong offest: 1500 != 1000/);
    // The session is still in storage (the cancel 2.8 attempts fails: the writer is closed first), holding 1500 bytes.
    const uuid = first.headers['docker-upload-uuid'] as string;
    const data = path.join(plain!.storageDir, 'docker/registry/v2/repositories/models/cut-after/_uploads', uuid, 'data');
    expect(fs.statSync(data).size).toBe(1500);
  });

  test('cutAfterForwarding with trackUploadOffsets: GET on the stale upload URL tells the offset, and the upload completes', async () => {
    const tracking = await startFaultProxy(plain!, { trackUploadOffsets: true });
    try {
      const post = await httpsRequest(`${tracking.url}/v2/models/tracked/blobs/uploads/`, { method: 'POST', headers: auth(), ca: caPem });
      const url0 = post.headers.location!;
      expect(url0.startsWith(tracking.url)).toBe(true);
      const a = chunk(1000, 1);
      const b = chunk(500, 2);
      const c = chunk(300, 3);
      tracking.cutAfterForwarding(1, REGISTRY_ROUTES.uploadPatch);
      await expect(patch(url0, a, 0)).rejects.toThrow(/socket hang up|ECONNRESET/);
      const st = await status(url0); // the URL from before the lost answer
      expect([st.status, st.headers.range]).toEqual([204, '0-999']);
      const p2 = await patch(st.headers.location!, b, 1000);
      expect([p2.status, p2.headers.range]).toEqual([202, '0-1499']);
      const p3 = await patch(url0, c, 1500); // even the oldest URL goes on at the registry's offset
      expect([p3.status, p3.headers.range]).toEqual([202, '0-1799']);
      const digest = sha256(Buffer.concat([a, b, c]));
      const done = await finish(p3.headers.location!, digest);
      expect([done.status, done.headers['docker-content-digest']]).toEqual([201, digest]);
      expect(done.headers.location).toBe(`${tracking.url}/v2/models/tracked/blobs/${digest}`);
    } finally {
      await tracking.close();
    }
  });

  test('cutRequestBody: the registry never sees the PATCH; the same upload URL still says the old offset', async () => {
    const uploadUrl = await startUpload('models/cut-body');
    const a = chunk(64 * 1024, 1);
    const b = chunk(512 * 1024, 2);
    const first = await patch(uploadUrl, a, 0);
    const url1 = first.headers.location!;
    proxy!.cutRequestBody(1, REGISTRY_ROUTES.uploadPatch, 100 * 1024);
    await expect(patch(url1, b, a.length)).rejects.toThrow(/EPIPE|ECONNRESET|socket hang up/);
    const cutRec = proxy!.requests.at(-1)!;
    expect(cutRec).toMatchObject({ method: 'PATCH', fault: 'cutRequestBody', responseBytes: 0 });
    expect(cutRec.status).toBeUndefined();
    expect(cutRec.requestBytes).toBeGreaterThanOrEqual(100 * 1024);
    expect(cutRec.requestBytes).toBeLessThan(b.length);
    const st = await status(url1);
    expect([st.status, st.headers.range]).toEqual([204, `0-${a.length - 1}`]);
    // The client resends the chunk on the URL it holds, and finishes the blob.
    const again = await patch(url1, b, a.length);
    expect([again.status, again.headers.range]).toEqual([202, `0-${a.length + b.length - 1}`]);
    const digest = sha256(Buffer.concat([a, b]));
    const done = await finish(again.headers.location!, digest);
    expect([done.status, done.headers['docker-content-digest']]).toEqual([201, digest]);
    const head = await httpsRequest(`${proxy!.url}/v2/models/cut-body/blobs/${digest}`, { method: 'HEAD', headers: auth(), ca: caPem });
    expect([head.status, head.headers['content-length']]).toEqual([200, String(a.length + b.length)]);
  });

  test('expireUpload: the session is purged from storage, the registry answers 404 BLOB_UPLOAD_UNKNOWN', async () => {
    const uploadUrl = await startUpload('models/expired');
    const uuid = new URL(uploadUrl).pathname.split('/').pop()!;
    const sessionDir = path.join(plain!.storageDir, 'docker/registry/v2/repositories/models/expired/_uploads', uuid);
    expect(fs.existsSync(sessionDir)).toBe(true);
    proxy!.expireUpload(1, REGISTRY_ROUTES.uploadSession);
    // A request that is not on an upload URL does not use the fault up.
    expect((await httpsRequest(`${proxy!.url}/v2/`, { headers: auth(), ca: caPem })).status).toBe(200);
    expect(proxy!.pendingFaults()).toEqual([expect.objectContaining({ kind: 'expireUpload', left: 1 })]);
    const res = await patch(uploadUrl, chunk(1000, 1), 0);
    expect([res.status, errorCodes(res.body)]).toEqual([404, ['BLOB_UPLOAD_UNKNOWN']]);
    expect(fs.existsSync(sessionDir)).toBe(false);
    expect(proxy!.requests.at(-1)).toMatchObject({ method: 'PATCH', fault: 'expireUpload', status: 404, requestBytes: 1000 });
    const st = await status(uploadUrl);
    expect([st.status, errorCodes(st.body)]).toEqual([404, ['BLOB_UPLOAD_UNKNOWN']]);
    // A new session works.
    const fresh = await startUpload('models/expired');
    expect((await patch(fresh, chunk(10, 1), 0)).status).toBe(202);
  });

  test('an unreachable registry: 502 from the proxy; close() leaves no socket or server behind', async () => {
    const down = await startRegistry({ name: 'down', workDir: path.join(work, 'registry-down'), ca });
    const p = await startFaultProxy(down);
    // A keep-alive client connection left idle, as a client's pool leaves it.
    const agent = new https.Agent({ keepAlive: true, ca: caPem });
    const pingKeepAlive = async () => new Promise<number>((resolve, reject) => {
      https.get(`${p.url}/v2/`, { agent }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      }).on('error', reject);
    });
    expect(await pingKeepAlive()).toBe(401);
    await down.stop();
    const gone = await httpsRequest(`${p.url}/v2/`, { ca: caPem });
    expect([gone.status, errorCodes(gone.body)]).toEqual([502, ['UNAVAILABLE']]);
    expect(p.requests.at(-1)!.error).toMatch(/ECONNREFUSED/);
    await p.close();
    await p.close(); // idempotent
    await expect(httpsRequest(`${p.url}/v2/`, { ca: caPem })).rejects.toThrow(/ECONNREFUSED/);
    agent.destroy();
    // Destroyed sockets leave the event loop's handles once their 'close' ran (next turn of the loop).
    await new Promise((r) => setImmediate(r));
    const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles();
    const ours = handles.filter((h) => (h instanceof net.Socket && [h.localPort, h.remotePort].some((port) => port === p.port || port === down.port))
      || (h instanceof net.Server && (h.address() as net.AddressInfo | null)?.port === p.port));
    expect(ours).toEqual([]);
  });
});
