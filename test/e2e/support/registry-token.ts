/**
 * STAND-IN FOR A REGISTRY TOKEN SERVICE (quay.io's /v2/auth, Docker Hub's auth.docker.io/token): there is no
 * internet here, so this HTTPS server runs in the test process, on 127.0.0.1, with a certificate from the test CA
 * (ca.ts), and issues the JWTs that docker-registry's native `auth: token:` checks. `startRegistry({ auth: 'token' })`
 * (registry.ts) starts one per registry and points the registry's config at it.
 *
 * The flow (docs/spec/auth/token.md of docker/distribution): the registry answers 401 with
 * `WWW-Authenticate: Bearer realm="<this server>/token",service="<service>",scope="repository:<name>:pull,push"`;
 * the client asks `GET <realm>?service=<service>&scope=<scope>` (scope may repeat), with Basic credentials or none;
 * this server answers, as Docker Hub does, `{"token", "access_token", "expires_in", "issued_at"}` (both token fields
 * hold the same JWT); the client retries the registry request with `Authorization: Bearer <token>`.
 *
 * What distribution 2.8.2 verifies (registry/auth/token/token.go, accesscontroller.go, read at tag v2.8.2):
 *   - `iss` equals the config's `issuer`; `aud` equals the config's `service` and is a STRING (its ClaimSet has
 *     `Audience string`: an array fails to unmarshal and the token is "malformed");
 *   - `exp` and `nbf` with a LEEWAY OF 60 s each way: the registry accepts a token up to 60 s after its `exp`
 *     (see `strictExpiry` below to make it stop at `expires_in`);
 *   - the signing key, from the JWS header: `x5c` (a chain verified against `rootcertbundle` with any key usage),
 *     else `jwk`, else `kid`. We sign with an EC P-256 key whose SELF-SIGNED certificate is both the one `x5c` entry
 *     and the whole rootcertbundle: Go's x509 verifies a leaf that is itself a root;
 *   - the signature, ES256 as libtrust wants it: r||s, 32 bytes each (JWS, not DER);
 *   - `access: [{type, name, actions}]` must hold every action the request needs: GET/HEAD need `pull`,
 *     POST/PUT/PATCH need `pull` AND `push`, DELETE (a manifest, or an upload session) needs `delete`
 *     (handlers/app.go appendAccessRecords). A token that lacks one gets 401 with `error="insufficient_scope"`,
 *     a bad or expired one 401 with `error="invalid_token"`. The challenge's `scope` lists the actions in no fixed
 *     order (`pull,push` or `push,pull`: distribution builds it from a Go map).
 *
 * What this stand-in grants (the choice made here; a real service's policy is its own):
 *   - the registry's username with its password (Basic): for every `repository:<name>:<actions>` scope, the asked
 *     actions among `pull` and `push` (never `delete` or `*`); other resource types (`registry:catalog:*`) nothing.
 *     A request with no scope (a login check) gets a token with `access: []`.
 *   - wrong credentials (unknown user or wrong password): 401 from this server, body
 *     `{"errors":[{"code":"UNAUTHORIZED","message":"incorrect username or password"}]}`, no token.
 *   - anonymous (no Authorization header): by default ('deny') 401 from this server, body
 *     `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, as quay.io answers for a private
 *     repository. With `anonymous: 'empty-token'`: 200 and a token with `access: []`, as Docker Hub answers for a
 *     private repository; the registry then answers 401 `insufficient_scope` to its use.
 * Each token request is logged (`requests`): scopes asked, user, what was granted, status.
 */
import { randomBytes, sign, X509Certificate } from 'crypto';
import * as fs from 'fs';
import * as http from 'http';
import * as https from 'https';
import { AddressInfo, Socket } from 'net';
import * as path from 'path';
import { TestCa } from './ca';
import { run } from './tools';

/** One entry of a token's `access` claim (distribution's ResourceActions). */
export interface ResourceActions {
  readonly type: string;
  readonly name: string;
  readonly actions: readonly string[];
}

/** What the anonymous client gets: 'deny' (401, quay.io) or 'empty-token' (a token with no access, Docker Hub). */
export type AnonymousPolicy = 'deny' | 'empty-token';

export interface TokenServerOptions {
  /** For logs and the default service/issuer. */
  readonly name: string;
  /** Directory for the TLS certificate and the signing key and certificate; created if needed. */
  readonly workDir: string;
  /** Signs this server's TLS certificate (for 127.0.0.1): clients that trust it for the registry trust this. */
  readonly ca: TestCa;
  /** The one user: the registry's username and password. */
  readonly username: string;
  readonly password: string;
  /** The `service` the registry announces and checks as `aud`. Default `e2e-<name>-registry`. */
  readonly service?: string;
  /** The `iss` claim the registry checks. Default `e2e-<name>-token-stand-in`. */
  readonly issuer?: string;
  /** `expires_in` of each token, seconds. Default 300 (Docker Hub's). Can be changed later on the server. */
  readonly lifetimeSeconds?: number;
  /**
   * Make the registry refuse a token exactly when `expires_in` ends: the `exp` claim is set 60 s early, cancelling
   * distribution's 60 s leeway (so `exp` may be before `iat`). Default false: `exp = iat + lifetime`, as real
   * services write it, and the registry accepts the token for 60 s more. Can be changed later on the server.
   */
  readonly strictExpiry?: boolean;
  /** Default 'deny'. */
  readonly anonymous?: AnonymousPolicy;
}

/** One token request, as the stand-in saw and answered it. */
export interface TokenRequest {
  readonly time: Date;
  readonly method: string;
  /** The `service` query parameter. */
  readonly service?: string;
  /** Every scope asked (repeated `scope` parameters, and space-separated scopes within one), as sent. */
  readonly scopes: readonly string[];
  /** The `account` query parameter, if any. */
  readonly account?: string;
  /** The Basic user name sent, if any (also when the password was wrong). */
  readonly user?: string;
  /** 'valid' credentials, 'invalid' ones, or 'anonymous' (none). */
  readonly credentials: 'valid' | 'invalid' | 'anonymous';
  readonly status: number;
  /** The token's `access` claim; empty when no token was issued. */
  readonly granted: readonly ResourceActions[];
  /** `expires_in` of the issued token. */
  readonly expiresIn?: number;
}

export interface TokenServer {
  /** `https://127.0.0.1:PORT/token`: the registry's `realm`. */
  readonly realm: string;
  readonly url: string;
  readonly port: number;
  readonly service: string;
  readonly issuer: string;
  /** The signing key's self-signed certificate (PEM): the registry's `rootcertbundle`. */
  readonly rootCertBundlePath: string;
  /** Every token request since the start or the last `reset()`, in order. */
  readonly requests: TokenRequest[];
  /** `expires_in` of the next tokens (seconds). Short lifetimes let a test watch a client renew a token mid-push. */
  lifetimeSeconds: number;
  /** See TokenServerOptions.strictExpiry. */
  strictExpiry: boolean;
  anonymous: AnonymousPolicy;
  /** Clears the request log and restores the options' lifetime, expiry and anonymous policy. */
  reset(): void;
  isRunning(): boolean;
  /** Listens again on the same port after `close()` (registry restart). */
  start(): Promise<void>;
  /** Stops listening and ends every open connection. Idempotent. */
  close(): Promise<void>;
}

/** The actions the valid user is granted on any repository. */
const GRANTABLE = ['pull', 'push'];

/** base64url without padding (JWS compact serialization). */
function b64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

/**
 * `type:name:actions` scopes from the `scope` parameters. The name may itself hold colons (a name with a port, a
 * plugin class): the type is before the first colon, the actions after the last.
 */
export function parseScopes(scopes: readonly string[]): ResourceActions[] {
  const out: ResourceActions[] = [];
  for (const s of scopes.flatMap((x) => x.split(' ')).filter(Boolean)) {
    const first = s.indexOf(':');
    const last = s.lastIndexOf(':');
    if (first < 0 || last === first) continue; // malformed: nothing to grant
    out.push({ type: s.slice(0, first), name: s.slice(first + 1, last), actions: s.slice(last + 1).split(',').filter(Boolean) });
  }
  return out;
}

/** Header and claims of a JWT (no signature check: for tests' assertions). */
export function decodeJwt(token: string): { header: Record<string, unknown>; claims: Record<string, unknown> } {
  const [h, c] = token.split('.');
  return { header: JSON.parse(Buffer.from(h, 'base64url').toString('utf8')), claims: JSON.parse(Buffer.from(c, 'base64url').toString('utf8')) };
}

/** Basic credentials of a request, if any. */
function basicCredentials(req: http.IncomingMessage): { user: string; password: string } | undefined {
  const m = /^Basic\s+(.+)$/i.exec(req.headers.authorization ?? '');
  if (!m) return undefined;
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? { user: decoded, password: '' } : { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** Starts the token service stand-in on a free 127.0.0.1 port. Close it (or the registry that owns it) in afterAll. */
export async function startTokenServer(opts: TokenServerOptions): Promise<TokenServer> {
  const workDir = path.resolve(opts.workDir);
  fs.mkdirSync(workDir, { recursive: true });
  const tls = await opts.ca.issueServerCert(path.join(workDir, 'tls'), { ips: ['127.0.0.1'], dnsNames: ['localhost'] });
  const signingKeyPath = path.join(workDir, 'signing.key');
  const rootCertBundlePath = path.join(workDir, 'signing.crt');
  // EC P-256 (ES256): fast to make, and libtrust (the registry's verifier) takes it.
  await run('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', signingKeyPath, '-out', rootCertBundlePath, '-days', '7',
    '-subj', `/CN=e2e ${opts.name} token signer (test stand-in)`,
    '-addext', 'keyUsage=critical,digitalSignature',
  ], { timeoutMs: 30_000 });
  const signingKey = fs.readFileSync(signingKeyPath);
  const x5c = [new X509Certificate(fs.readFileSync(rootCertBundlePath)).raw.toString('base64')];
  const service = opts.service ?? `e2e-${opts.name}-registry`;
  const issuer = opts.issuer ?? `e2e-${opts.name}-token-stand-in`;
  const requests: TokenRequest[] = [];
  const sockets = new Set<Socket>();

  const issue = (subject: string, access: readonly ResourceActions[]): { token: string; issuedAt: Date } => {
    const issuedAt = new Date();
    const iat = Math.floor(issuedAt.getTime() / 1000);
    const header = { typ: 'JWT', alg: 'ES256', x5c };
    const claims = {
      iss: issuer,
      sub: subject,
      aud: service,
      exp: iat + server.lifetimeSeconds - (server.strictExpiry ? 60 : 0),
      nbf: iat,
      iat,
      jti: randomBytes(16).toString('hex'),
      access,
    };
    const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const signature = sign('sha256', Buffer.from(signingInput), { key: signingKey, dsaEncoding: 'ieee-p1363' });
    return { token: `${signingInput}.${b64url(signature)}`, issuedAt };
  };

  const handle = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'https://127.0.0.1');
    const send = (status: number, body: unknown, headers: http.OutgoingHttpHeaders = {}): void => {
      const data = Buffer.from(JSON.stringify(body));
      res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': data.length, ...headers });
      res.end(data);
    };
    const unauthorized = (message: string) => ({ errors: [{ code: 'UNAUTHORIZED', message }] });
    req.resume(); // a GET has no body; drain whatever comes
    if (url.pathname !== '/token') return send(404, { errors: [{ code: 'NOT_FOUND', message: `no ${url.pathname} here: the token endpoint is /token` }] });
    // Docker Hub also takes the OAuth2 form POST; quay.io and containers/image use GET only, as here.
    if (req.method !== 'GET') return send(405, { errors: [{ code: 'UNSUPPORTED', message: `${req.method} is not supported: GET /token` }] }, { Allow: 'GET' });

    const scopes = url.searchParams.getAll('scope');
    const creds = basicCredentials(req);
    const credentials = !creds ? 'anonymous' : creds.user === opts.username && creds.password === opts.password ? 'valid' : 'invalid';
    const log = (status: number, granted: readonly ResourceActions[], expiresIn?: number) => requests.push({
      time: new Date(),
      method: req.method ?? '',
      service: url.searchParams.get('service') ?? undefined,
      scopes,
      account: url.searchParams.get('account') ?? undefined,
      user: creds?.user,
      credentials,
      status,
      granted,
      expiresIn,
    });
    const challenge = { 'WWW-Authenticate': `Basic realm="${issuer}"` };
    if (credentials === 'invalid') {
      log(401, []);
      return send(401, unauthorized('incorrect username or password'), challenge);
    }
    if (credentials === 'anonymous' && server.anonymous === 'deny') {
      log(401, []);
      return send(401, unauthorized('authentication required'), challenge);
    }
    const granted = credentials === 'valid'
      ? parseScopes(scopes)
        .filter((s) => s.type === 'repository')
        .map((s) => ({ type: s.type, name: s.name, actions: s.actions.filter((a) => GRANTABLE.includes(a)) }))
        .filter((s) => s.actions.length > 0)
      : [];
    const { token, issuedAt } = issue(credentials === 'valid' ? opts.username : '', granted);
    log(200, granted, server.lifetimeSeconds);
    send(200, { token, access_token: token, expires_in: server.lifetimeSeconds, issued_at: issuedAt.toISOString() });
  };

  const httpsServer = https.createServer({ key: fs.readFileSync(tls.keyPath), cert: fs.readFileSync(tls.certPath) }, handle);
  httpsServer.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  let port = 0;
  let listening = false;

  const server: TokenServer = {
    get realm() { return `https://127.0.0.1:${port}/token`; },
    get url() { return `https://127.0.0.1:${port}`; },
    get port() { return port; },
    service,
    issuer,
    rootCertBundlePath,
    requests,
    lifetimeSeconds: opts.lifetimeSeconds ?? 300,
    strictExpiry: opts.strictExpiry ?? false,
    anonymous: opts.anonymous ?? 'deny',
    reset() {
      requests.length = 0;
      server.lifetimeSeconds = opts.lifetimeSeconds ?? 300;
      server.strictExpiry = opts.strictExpiry ?? false;
      server.anonymous = opts.anonymous ?? 'deny';
    },
    isRunning: () => listening,
    async start() {
      if (listening) return;
      await new Promise<void>((resolve, reject) => {
        httpsServer.once('error', reject);
        httpsServer.listen(port, '127.0.0.1', () => {
          httpsServer.off('error', reject);
          resolve();
        });
      });
      port = (httpsServer.address() as AddressInfo).port;
      listening = true;
    },
    async close() {
      if (!listening) return;
      listening = false;
      const closed = new Promise<void>((resolve) => httpsServer.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
  await server.start();
  return server;
}
