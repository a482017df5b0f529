/**
 * skopeo helpers for the e2e tests, and the skopeo behaviour the pipeline's step scripts rely on.
 *
 * Verified with skopeo 1.9.3 (Debian 12), against docker-registry 2.8.2 on 127.0.0.1 with TLS + htpasswd:
 *
 * - `skopeo inspect oci:<dir>:<tag>` reads index.json + the blobs in place: no temp files (du of /var/tmp stays
 *   at 4 KiB), 0.02 s for a 200 MB image.
 * - `skopeo inspect oci-archive:<file>:<tag>` EXTRACTS THE WHOLE TARBALL to a temp dir first (strace:
 *   mkdirat("/var/tmp/oci4031911476") then every blob written there); peak 191 MiB in /var/tmp for a 200 MB archive,
 *   0.22 s, removed afterwards. skopeo 1.9.3 IGNORES TMPDIR for this (still /var/tmp); the global flag
 *   `skopeo --tmpdir DIR inspect ...` moves it (peak 189 MiB in DIR). Unwritable temp dir =>
 *   `creating temp directory: creating oci reference: creating temp directory: mkdir DIR/oci3910307028: permission denied`.
 *   So step scripts should hand layouts around as `oci:` directories, not `oci-archive:` files.
 * - `skopeo inspect --raw <ref> | sha256sum` == the manifest digest == `skopeo inspect --format '{{.Digest}}' <ref>`.
 * - `skopeo copy --preserve-digests --digestfile F --dest-cert-dir <certs.d/host> --dest-authfile <auth.json>
 *   oci:<dir>:<tag> docker://127.0.0.1:PORT/repo:tag` keeps the manifest byte for byte: F holds `sha256:...`
 *   (no newline), equal to the layout's manifest digest and to `skopeo inspect --format '{{.Digest}}'` of the pushed
 *   tag (with `--cert-dir` + `--authfile` or `--creds`). Per skopeo-copy(1), `--preserve-digests` makes skopeo
 *   fail rather than convert the manifest or recompress layers (oci: -> registry needs neither here).
 * - Error messages (exit code 1, on stderr as `time=... level=fatal msg="..."`), see REGISTRY_ERRORS:
 *     registry down:   `pinging container registry 127.0.0.1:PORT: Get "https://127.0.0.1:PORT/v2/": dial tcp 127.0.0.1:PORT: connect: connection refused`
 *                      (immediate, no retry unless `--retry-times N`)
 *     wrong password:  inspect: `reading manifest 1 in 127.0.0.1:PORT/base/busybox: unauthorized: authentication required`
 *                      copy:    `trying to reuse blob sha256:... at destination: checking whether a blob sha256:... exists in 127.0.0.1:PORT/x/y: unauthorized: authentication required`
 *     no CA / wrong CA: `pinging container registry 127.0.0.1:PORT: Get "https://127.0.0.1:PORT/v2/": x509: certificate signed by unknown authority`
 *     missing tag:     `reading manifest nope in 127.0.0.1:PORT/base/busybox: manifest unknown: manifest unknown`
 *     missing oci tag: `Error parsing image name "oci:base-oci:nope": no descriptor found for reference "nope"`
 *     empty authfile:  `getting username and password: ... reading JSON file "/dev/null": unmarshaling JSON ...: unexpected end of JSON input`
 *   (`--cert-dir` pointing at the certs.d ROOT rather than certs.d/<host:port> also gives the x509 error.)
 *
 * - UNPRIVILEGED, GROUP-READ ONLY: as uid 1000970000 (gid 1000970000, supplementary group 4242) with an EMPTY
 *   environment (`env -i PATH=/usr/bin:/bin`: no HOME, no XDG_RUNTIME_DIR, no TMPDIR, uid not in /etc/passwd), and
 *   the layout, ca.crt and auth.json owned 0:4242 with dirs 0750 and files 0640, `skopeo inspect oci:...`,
 *   `skopeo inspect --raw oci:...` and `skopeo copy --preserve-digests --digestfile ... oci:... docker://...` all WORK.
 *   strace: the only file opened for writing is the --digestfile; nothing under HOME, /run/user or /var/tmp.
 *   With HOME unset, containers/image looks up `.config/containers/{policy.json,registries.conf,...}` relative to the
 *   CWD, then uses /etc/containers/policy.json (must exist and be readable, or pass --policy / --insecure-policy).
 *   Credentials must come from `--authfile`/`--dest-authfile` or `--creds`/`--dest-creds`: with neither, the
 *   registry answers `unauthorized: authentication required`.
 *   `oci-archive:` as that uid needs a writable temp dir (/var/tmp or --tmpdir), see above.
 */
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { LocalRegistry } from './registry';
import { requireTools, run, RunOptions } from './tools';

/** Substrings that identify registry failures in skopeo's (and buildah's) stderr. */
export const REGISTRY_ERRORS = {
  connectionRefused: /connect: connection refused/,
  unauthorized: /unauthorized: authentication required/,
  untrustedCertificate: /x509: certificate signed by unknown authority/,
  manifestUnknown: /manifest unknown/,
} as const;

export type RegistryErrorKind = keyof typeof REGISTRY_ERRORS;

/** Which REGISTRY_ERRORS kind a tool's stderr shows, if any. */
export function classifyRegistryError(stderr: string): RegistryErrorKind | undefined {
  return (Object.keys(REGISTRY_ERRORS) as RegistryErrorKind[]).find((k) => REGISTRY_ERRORS[k].test(stderr));
}

/** Flags giving skopeo the CA and credentials of `registry` for a `docker://` reference, in the given role. */
export function registryFlags(registry: Pick<LocalRegistry, 'certDir' | 'authFile'>, role: 'src' | 'dest' | 'both'): string[] {
  if (role === 'both') return ['--cert-dir', registry.certDir, '--authfile', registry.authFile];
  return [`--${role}-cert-dir`, registry.certDir, `--${role}-authfile`, registry.authFile];
}

/** The manifest digest of `ref` (`skopeo inspect --format '{{.Digest}}'`). Pass `registry` for a docker:// ref. */
export async function inspectDigest(ref: string, registry?: Pick<LocalRegistry, 'certDir' | 'authFile'>, opts: RunOptions = {}): Promise<string> {
  requireTools(['skopeo']);
  const r = await run('skopeo', ['inspect', '--format', '{{.Digest}}', ...(registry ? registryFlags(registry, 'both') : []), ref], { timeoutMs: 60_000, ...opts });
  return r.stdout.trim();
}

/** The raw manifest of `ref` and its sha256 (`skopeo inspect --raw`), which is the manifest digest. */
export async function rawManifest(ref: string, registry?: Pick<LocalRegistry, 'certDir' | 'authFile'>, opts: RunOptions = {}): Promise<{ raw: string; digest: string }> {
  requireTools(['skopeo']);
  const r = await run('skopeo', ['inspect', '--raw', ...(registry ? registryFlags(registry, 'both') : []), ref], { timeoutMs: 60_000, ...opts });
  return { raw: r.stdout, digest: `sha256:${createHash('sha256').update(r.stdout, 'utf8').digest('hex')}` };
}

/**
 * `skopeo copy --preserve-digests --digestfile` from `src` to `dest`; returns the digest skopeo wrote.
 * `srcRegistry`/`destRegistry` supply --src-/--dest- cert dir and authfile for docker:// references.
 */
export async function skopeoCopy(src: string, dest: string, o: {
  workDir: string;
  srcRegistry?: Pick<LocalRegistry, 'certDir' | 'authFile'>;
  destRegistry?: Pick<LocalRegistry, 'certDir' | 'authFile'>;
  extraArgs?: readonly string[];
  run?: RunOptions;
}): Promise<string> {
  requireTools(['skopeo']);
  fs.mkdirSync(o.workDir, { recursive: true });
  const digestFile = path.join(o.workDir, `copy-${Date.now()}-${Math.random().toString(16).slice(2)}.digest`);
  await run('skopeo', [
    'copy', '--quiet', '--preserve-digests', '--digestfile', digestFile,
    ...(o.srcRegistry ? registryFlags(o.srcRegistry, 'src') : []),
    ...(o.destRegistry ? registryFlags(o.destRegistry, 'dest') : []),
    ...(o.extraArgs ?? []),
    src, dest,
  ], { timeoutMs: 300_000, ...o.run });
  return fs.readFileSync(digestFile, 'utf8').trim();
}
