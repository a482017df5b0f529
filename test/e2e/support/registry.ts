/**
 * A real OCI registry for the e2e tests: Debian's `docker-registry` (github.com/docker/distribution 2.8.2),
 * listening on 127.0.0.1 with TLS (throwaway CA, see ca.ts) and htpasswd (bcrypt) basic auth, storing blobs
 * in the test's work directory, with deletes enabled.
 *
 * Client-side certificate layout (checked with skopeo 1.9.3 / buildah 1.28.2, containers/image):
 *   - `--cert-dir DIR` (skopeo --cert-dir/--src-cert-dir/--dest-cert-dir, buildah --cert-dir) wants the
 *     PER-HOST directory itself: DIR/ca.crt (every *.crt in DIR is a CA; *.cert + *.key a client cert).
 *     Pointing it at the certs.d root instead fails with
 *     `x509: certificate signed by unknown authority`.
 *   - Without the flag, containers/image reads /etc/containers/certs.d/<host:port>/ca.crt (and
 *     /etc/docker/certs.d/<host:port>/): the same per-host directory, under a root named by host:port.
 *   So `certDir` below is `<workDir>/certs.d/127.0.0.1:PORT` (holds ca.crt), and `certsDRoot` is `<workDir>/certs.d`,
 *   the tree to mount at /etc/containers/certs.d. Several registries may share one certs.d root.
 *
 * Auth: htpasswd (bcrypt) Basic auth by default; `auth: 'token'` instead runs the registry with its native token auth
 * (`auth: token: {realm, service, issuer, rootcertbundle}`) against a token service stand-in that runs in the test
 * process (registry-token.ts: what it verifies and grants), as quay.io and Docker Hub do with their token services.
 * The same username/password then go to the token server as Basic credentials; the registry itself only takes
 * Bearer tokens.
 *
 * The registry process is started through `setpriv --pdeathsig KILL`, so the kernel kills it if the test process
 * dies for any reason (even SIGKILL); it is also killed on process 'exit' and by `stop()` (call it in afterAll).
 */
import { ChildProcess, spawn } from 'child_process';
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import * as https from 'https';
import * as net from 'net';
import * as path from 'path';
import * as yaml from 'js-yaml';
import { makeCa, TestCa } from './ca';
import { AnonymousPolicy, startTokenServer, TokenServer } from './registry-token';
import { formatCommand, requireTools, run } from './tools';

export { makeCa } from './ca';
export type { TestCa, ServerCert, ServerCertOptions } from './ca';
export type { TokenServer, TokenRequest, ResourceActions, AnonymousPolicy } from './registry-token';

/** How clients authenticate: htpasswd Basic auth, or Bearer tokens from a token service stand-in. */
export type RegistryAuth = 'htpasswd' | 'token';

export interface StartRegistryOptions {
  /** Name for logs and the auth realm, e.g. 'source' or 'target'. */
  readonly name: string;
  /** Directory for this registry's files (config, certs, htpasswd, storage, log); created if needed. */
  readonly workDir: string;
  /** Default `e2e-<name>`. */
  readonly username?: string;
  /** Default: random. */
  readonly password?: string;
  /** CA that signs the server certificate; default: a new CA in `<workDir>/ca`. Pass one CA to several registries. */
  readonly ca?: TestCa;
  /** How long to wait for the registry to answer, ms. Default 20 000. */
  readonly readyTimeoutMs?: number;
  /**
   * Listen on a free port whose number contains these digits (e.g. '401'), so that a test sees error lines
   * whose port looks like an HTTP status. Default: any free port.
   */
  readonly portContaining?: string;
  /** Default 'htpasswd'. 'token': the registry's token auth with a token service stand-in (registry-token.ts). */
  readonly auth?: RegistryAuth;
  /** With `auth: 'token'`: the token server's settings (see TokenServerOptions). */
  readonly token?: {
    /** `expires_in`, seconds. Default 300. */
    readonly lifetimeSeconds?: number;
    /** Registry refuses the token right at `expires_in` (cancels distribution's 60 s leeway). Default false. */
    readonly strictExpiry?: boolean;
    /** Default 'deny' (401 from the token server, like quay.io for a private repository). */
    readonly anonymous?: AnonymousPolicy;
  };
}

export interface LocalRegistry {
  readonly name: string;
  /** `127.0.0.1:PORT`, the registry host as image references spell it. */
  readonly host: string;
  readonly port: number;
  /** `https://127.0.0.1:PORT`. */
  readonly url: string;
  /** The CA certificate that signed the server certificate (PEM). */
  readonly caCertPath: string;
  /** Per-host directory holding ca.crt: the value for skopeo/buildah `--cert-dir` (see the module comment). */
  readonly certDir: string;
  /** The certs.d root (`certDir` is `<certsDRoot>/<host>`): mount it as /etc/containers/certs.d. */
  readonly certsDRoot: string;
  readonly username: string;
  readonly password: string;
  /** `{"auths":{"127.0.0.1:PORT":{"auth":"base64(user:password)"}}}` */
  readonly dockerConfigJson: string;
  /** A file holding `dockerConfigJson`: the value for `--authfile` / `--dest-authfile` / REGISTRY_AUTH_FILE. */
  readonly authFile: string;
  /** The registry's filesystem storage root. */
  readonly storageDir: string;
  readonly configPath: string;
  /** The registry's stdout+stderr (appended across restarts). */
  readonly logPath: string;
  readonly workDir: string;
  readonly auth: RegistryAuth;
  /** With `auth: 'token'`: the token service stand-in the registry's challenges point to (its `realm`). */
  readonly tokenServer?: TokenServer;
  /** Whether the registry process is running. */
  isRunning(): boolean;
  /** Kills the registry (SIGTERM, SIGKILL after 5 s) and waits for it to exit; closes its token server. Idempotent. */
  stop(): Promise<void>;
  /**
   * Starts the registry again on the same port with the same storage, config and credentials (and its token server
   * on its port); waits until ready.
   */
  restart(): Promise<void>;
}

const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of liveChildren) {
      try {
        child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  });
}

/** A TCP port free on 127.0.0.1 right now (the kernel's pick). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Every port from 1024 to 65535 whose number contains `digits`, shuffled. */
export function portsContaining(digits: string): number[] {
  const ports: number[] = [];
  for (let p = 1024; p <= 65535; p++) if (String(p).includes(digits)) ports.push(p);
  if (ports.length === 0) throw new Error(`no TCP port contains "${digits}"`);
  for (let i = ports.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [ports[i], ports[j]] = [ports[j], ports[i]];
  }
  return ports;
}

/** Whether nothing holds `port` on 127.0.0.1 right now (we can bind it). */
export async function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** A port free on 127.0.0.1 right now whose number contains `digits` (e.g. '401'). */
export async function freePortContaining(digits: string): Promise<number> {
  for (const port of portsContaining(digits).slice(0, 50)) {
    if (await portIsFree(port)) return port;
  }
  throw new Error(`no free port on 127.0.0.1 contains "${digits}" (50 tried)`);
}

/** Base64 of `user:password`, the `auth` value of a docker config.json entry. */
export function basicAuth(username: string, password: string): string {
  return Buffer.from(`${username}:${password}`).toString('base64');
}

/** One docker config.json (`{"auths": {...}}`) holding the credentials of all the given registries. */
export function dockerConfigJsonFor(registries: readonly Pick<LocalRegistry, 'host' | 'username' | 'password'>[]): string {
  const auths: Record<string, { auth: string }> = {};
  for (const r of registries) auths[r.host] = { auth: basicAuth(r.username, r.password) };
  return JSON.stringify({ auths });
}

/** GET https://host/v2/ trusting `ca`; resolves with the HTTP status, rejects on connection/TLS errors. */
export async function pingV2(host: string, ca: Buffer | string, auth?: { username: string; password: string }): Promise<number> {
  const [hostname, port] = host.split(':');
  return new Promise((resolve, reject) => {
    const req = https.request({
      hostname,
      port: Number(port),
      path: '/v2/',
      method: 'GET',
      ca,
      timeout: 2000,
      headers: auth ? { Authorization: `Basic ${basicAuth(auth.username, auth.password)}` } : {},
      agent: false,
    }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/**
 * Deletes a manifest by digest through the registry API (`DELETE /v2/<name>/manifests/<digest>`, the registry
 * runs with storage.delete.enabled). docker-registry 2.8 deletes by digest only: every tag of that digest in the
 * repository goes with it. Resolves with the HTTP status (202 when deleted).
 */
export async function deleteManifest(registry: LocalRegistry, name: string, digest: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = https.request({
      hostname: '127.0.0.1',
      port: registry.port,
      path: `/v2/${name}/manifests/${digest}`,
      method: 'DELETE',
      ca: fs.readFileSync(registry.caCertPath),
      timeout: 10_000,
      headers: { Authorization: `Basic ${basicAuth(registry.username, registry.password)}` },
      agent: false,
    }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

const sleep = async (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts a TLS docker-registry (htpasswd auth, or token auth with `auth: 'token'`) on a free 127.0.0.1 port and
 * waits until `GET /v2/` answers 401. Always `await registry.stop()` in afterAll.
 */
export async function startRegistry(opts: StartRegistryOptions): Promise<LocalRegistry> {
  const authKind = opts.auth ?? 'htpasswd';
  requireTools(['docker-registry', 'openssl', 'setpriv', ...(authKind === 'htpasswd' ? ['htpasswd'] : [])]);
  installExitHook();
  const workDir = path.resolve(opts.workDir);
  fs.mkdirSync(workDir, { recursive: true });
  const username = opts.username ?? `e2e-${opts.name}`;
  const password = opts.password ?? randomBytes(12).toString('hex');
  const readyTimeoutMs = opts.readyTimeoutMs ?? 20_000;
  const ca = opts.ca ?? await makeCa(path.join(workDir, 'ca'));
  const caPem = fs.readFileSync(ca.certPath);
  const server = await ca.issueServerCert(path.join(workDir, 'tls'), { ips: ['127.0.0.1'], dnsNames: ['localhost'] });

  const htpasswdPath = path.join(workDir, 'htpasswd');
  let tokenServer: TokenServer | undefined;
  if (authKind === 'htpasswd') {
    const ht = await run('htpasswd', ['-Bbn', username, password], { timeoutMs: 30_000 });
    fs.writeFileSync(htpasswdPath, ht.stdout.trim() + '\n');
  } else {
    tokenServer = await startTokenServer({ name: opts.name, workDir: path.join(workDir, 'token-server'), ca, username, password, ...opts.token });
  }
  const auth = tokenServer
    ? {
      token: { realm: tokenServer.realm, service: tokenServer.service, issuer: tokenServer.issuer, rootcertbundle: tokenServer.rootCertBundlePath },
    }
    : { htpasswd: { realm: `e2e-${opts.name}`, path: htpasswdPath } };

  const storageDir = path.join(workDir, 'storage');
  fs.mkdirSync(storageDir, { recursive: true });
  const logPath = path.join(workDir, 'registry.log');
  const configPath = path.join(workDir, 'config.yml');
  const certsDRoot = path.join(workDir, 'certs.d');
  const httpSecret = randomBytes(16).toString('hex');

  const writeConfig = (port: number) => fs.writeFileSync(configPath, yaml.dump({
    version: 0.1,
    log: { level: 'info', formatter: 'text', fields: { registry: opts.name } },
    storage: {
      filesystem: { rootdirectory: storageDir },
      delete: { enabled: true },
      maintenance: { uploadpurging: { enabled: false } },
    },
    http: {
      addr: `127.0.0.1:${port}`,
      secret: httpSecret,
      tls: { certificate: server.certPath, key: server.keyPath },
      headers: { 'X-Content-Type-Options': ['nosniff'] },
    },
    auth,
  }));

  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  /** Spawns the registry on `port`; resolves when /v2/ answers 401, rejects (with the log tail) if it exits first. */
  const launch = async (port: number): Promise<void> => {
    writeConfig(port);
    const logFd = fs.openSync(logPath, 'a');
    const args = ['--pdeathsig', 'KILL', '--', 'docker-registry', 'serve', configPath];
    fs.writeSync(logFd, `\n=== ${new Date().toISOString()} ${formatCommand('setpriv', args)}\n`);
    const proc = spawn('setpriv', args, { stdio: ['ignore', logFd, logFd], cwd: workDir });
    fs.closeSync(logFd);
    child = proc;
    liveChildren.add(proc);
    let exitInfo: string | undefined;
    exited = new Promise<void>((resolve) => {
      proc.on('exit', (code, signal) => {
        exitInfo = `exit ${code ?? signal}`;
        liveChildren.delete(proc);
        resolve();
      });
      proc.on('error', (e) => {
        exitInfo = `spawn error ${e.message}`;
        liveChildren.delete(proc);
        resolve();
      });
    });
    const deadline = Date.now() + readyTimeoutMs;
    let lastError = '';
    while (Date.now() < deadline) {
      if (exitInfo !== undefined) break;
      try {
        const status = await pingV2(`127.0.0.1:${port}`, caPem);
        if (status === 401) return;
        lastError = `GET /v2/ answered ${status}, expected 401`;
      } catch (e) {
        lastError = (e as Error).message;
      }
      await sleep(50);
    }
    const logTail = fs.readFileSync(logPath, 'utf8').split('\n').slice(-15).join('\n');
    if (exitInfo === undefined) {
      proc.kill('SIGKILL');
      await exited;
    }
    throw new Error(`registry '${opts.name}' on 127.0.0.1:${port} not ready (${exitInfo ?? `after ${readyTimeoutMs} ms`}; last: ${lastError}); log ${logPath}:\n${logTail}`);
  };

  // The port is free when chosen but another process could take it before the registry binds: retry a few times.
  let port = 0;
  try {
    for (let attempt = 1; ; attempt++) {
      port = opts.portContaining ? await freePortContaining(opts.portContaining) : await freePort();
      try {
        await launch(port);
        break;
      } catch (e) {
        const msg = (e as Error).message;
        if (attempt >= 3 || !/address already in use/.test(msg)) throw e;
      }
    }
  } catch (e) {
    await tokenServer?.close();
    throw e;
  }

  const host = `127.0.0.1:${port}`;
  const certDir = path.join(certsDRoot, host);
  fs.mkdirSync(certDir, { recursive: true });
  fs.copyFileSync(ca.certPath, path.join(certDir, 'ca.crt'));
  const dockerConfigJson = dockerConfigJsonFor([{ host, username, password }]);
  const authFile = path.join(workDir, 'auth.json');
  fs.writeFileSync(authFile, dockerConfigJson, { mode: 0o600 });

  const stopProcess = async (): Promise<void> => {
    const proc = child;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) {
      await exited;
      return;
    }
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };
  const stop = async (): Promise<void> => {
    await stopProcess();
    await tokenServer?.close();
  };

  return {
    name: opts.name,
    host,
    port,
    url: `https://${host}`,
    caCertPath: ca.certPath,
    certDir,
    certsDRoot,
    username,
    password,
    dockerConfigJson,
    authFile,
    storageDir,
    configPath,
    logPath,
    workDir,
    auth: authKind,
    tokenServer,
    isRunning: () => !!child && child.exitCode === null && child.signalCode === null,
    stop,
    restart: async () => {
      await stopProcess();
      await tokenServer?.start();
      await launch(port);
    },
  };
}
