/**
 * A throwaway certificate authority, made with the openssl CLI, for the local TLS registries of the e2e tests.
 * One CA can sign the certificates of several servers (the source and the target registry), so the
 * clients trust them all with one ca.crt.
 *
 * EC P-256 keys: generated in milliseconds (RSA 2048 takes ~0.1-0.5 s each). Go's crypto/x509 (skopeo, buildah,
 * docker-registry) needs the server certificate to name the host in subjectAltName (the CN is ignored), and the
 * CA to have basicConstraints CA:TRUE; both are set here.
 */
import { randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { run } from './tools';

export interface ServerCertOptions {
  /** Subject CN (informational: clients check the SANs). Default: the first IP or DNS name. */
  readonly commonName?: string;
  /** IP SANs. Default ['127.0.0.1']. */
  readonly ips?: readonly string[];
  /** DNS SANs. Default ['localhost']. */
  readonly dnsNames?: readonly string[];
  /** Validity in days. Default 7. */
  readonly days?: number;
}

export interface ServerCert {
  readonly certPath: string;
  readonly keyPath: string;
}

export interface TestCa {
  readonly dir: string;
  /** The CA certificate (PEM): what clients must trust. */
  readonly certPath: string;
  readonly keyPath: string;
  /** Issues a server certificate and key (PEM) into `outDir` as server.crt / server.key. */
  issueServerCert(outDir: string, opts?: ServerCertOptions): Promise<ServerCert>;
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** Creates a CA (ca.crt, ca.key) in `dir` (created if needed). */
export async function makeCa(dir: string, opts: { commonName?: string; days?: number } = {}): Promise<TestCa> {
  fs.mkdirSync(dir, { recursive: true });
  const certPath = path.join(dir, 'ca.crt');
  const keyPath = path.join(dir, 'ca.key');
  await run('openssl', [
    'req', '-x509', ...EC_KEY, '-keyout', keyPath, '-out', certPath,
    '-days', String(opts.days ?? 7), '-subj', `/CN=${opts.commonName ?? 'cdk8s-modelcar-tekton e2e test CA'}`,
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ], { timeoutMs: 30_000 });

  return loadCa(dir);
}

/**
 * The CA already in `dir` (ca.crt and ca.key, as makeCa writes them), to issue more server certificates from it:
 * e.g. for a proxy in front of a registry whose CA startRegistry made, so the clients that trust one trust both.
 */
export function loadCa(dir: string): TestCa {
  const certPath = path.join(dir, 'ca.crt');
  const keyPath = path.join(dir, 'ca.key');
  for (const f of [certPath, keyPath]) if (!fs.existsSync(f)) throw new Error(`no test CA in ${dir}: ${f} is missing`);

  const issueServerCert = async (outDir: string, o: ServerCertOptions = {}): Promise<ServerCert> => {
    fs.mkdirSync(outDir, { recursive: true });
    const ips = o.ips ?? ['127.0.0.1'];
    const dnsNames = o.dnsNames ?? ['localhost'];
    const sans = [...ips.map((ip) => `IP:${ip}`), ...dnsNames.map((d) => `DNS:${d}`)];
    if (sans.length === 0) throw new Error('a server certificate needs at least one IP or DNS name');
    const cn = o.commonName ?? ips[0] ?? dnsNames[0];
    const serverKey = path.join(outDir, 'server.key');
    const serverCert = path.join(outDir, 'server.crt');
    const csr = path.join(outDir, 'server.csr');
    const ext = path.join(outDir, 'server.ext');
    fs.writeFileSync(ext, [
      `subjectAltName=${sans.join(',')}`,
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth',
      '',
    ].join('\n'));
    await run('openssl', ['req', '-new', ...EC_KEY, '-keyout', serverKey, '-out', csr, '-subj', `/CN=${cn}`], { timeoutMs: 30_000 });
    // -set_serial instead of -CAcreateserial: no shared ca.srl file to race on when two servers are issued at once.
    await run('openssl', [
      'x509', '-req', '-in', csr, '-CA', certPath, '-CAkey', keyPath, '-set_serial', `0x${randomBytes(8).toString('hex')}`,
      '-days', String(o.days ?? 7), '-extfile', ext, '-out', serverCert,
    ], { timeoutMs: 30_000 });
    await run('openssl', ['verify', '-CAfile', certPath, serverCert], { timeoutMs: 30_000 });
    return { certPath: serverCert, keyPath: serverKey };
  };

  return { dir, certPath, keyPath, issueServerCert };
}
