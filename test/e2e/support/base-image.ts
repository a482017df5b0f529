/**
 * A tiny base image for the modelcar builds, made WITHOUT pulling anything (no internet in the tests):
 * one layer holding the host's static busybox (Debian busybox-static) as /bin/busybox, symlinks for the applets
 * the step scripts and KServe's modelcar sidecar use (sh, ls, cat, test, id, stat, sha256sum, ...), /tmp,
 * /var/tmp (1777), /root and a minimal /etc/passwd and /etc/group.
 *
 * The OCI image layout is written directly (tar + gzip + JSON, no buildah): it is fast (~50 ms) and
 * deterministic: entries sorted, uid/gid 0, mtime 0, created 1970-01-01, so the digest only changes when the
 * busybox binary (i.e. the busybox-static package version) or this file changes. With busybox-static
 * 1:1.35.0-4+deb12u1+b1 (amd64) the layer is ~1.1 MB gzipped.
 *
 * It is pushed with `skopeo copy --preserve-digests` and referred to by digest:
 * `127.0.0.1:PORT/base/busybox@sha256:...`.
 */
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';
import { LocalRegistry } from './registry';
import { requireTools, run, which } from './tools';

/** Applets linked to /bin/busybox in the base image. */
export const BASE_IMAGE_APPLETS = [
  '[', 'basename', 'cat', 'chmod', 'cp', 'cut', 'date', 'dirname', 'du', 'echo', 'env', 'false', 'find', 'grep', 'head',
  'id', 'ln', 'ls', 'mkdir', 'mv', 'printf', 'pwd', 'readlink', 'rm', 'sed', 'sh', 'sha256sum', 'sleep', 'sort', 'stat',
  'tail', 'tee', 'test', 'touch', 'tr', 'true', 'uname', 'wc', 'xargs',
] as const;

const EPOCH = '1970-01-01T00:00:00Z';

interface TarEntry {
  readonly name: string;
  readonly type: 'file' | 'dir' | 'symlink';
  readonly mode: number;
  readonly data?: Buffer;
  readonly linkname?: string;
}

function octal(value: number, width: number): string {
  // width includes the trailing NUL
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

/** One POSIX ustar header block: uid/gid 0, mtime 0 (deterministic). */
function tarHeader(e: TarEntry): Buffer {
  const h = Buffer.alloc(512, 0);
  const name = e.type === 'dir' && !e.name.endsWith('/') ? `${e.name}/` : e.name;
  if (Buffer.byteLength(name) > 100) throw new Error(`tar entry name too long for this minimal writer: ${name}`);
  h.write(name, 0, 100, 'utf8');
  h.write(octal(e.mode, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii');
  h.write(octal(0, 8), 116, 'ascii');
  h.write(octal(e.type === 'file' ? e.data!.length : 0, 12), 124, 'ascii');
  h.write(octal(0, 12), 136, 'ascii');
  h.write('        ', 148, 'ascii'); // checksum placeholder: 8 spaces
  h.write(e.type === 'file' ? '0' : e.type === 'dir' ? '5' : '2', 156, 'ascii');
  if (e.linkname) h.write(e.linkname, 157, 100, 'utf8');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  h.write('root', 265, 'ascii');
  h.write('root', 297, 'ascii');
  let sum = 0;
  for (const byte of h) sum += byte;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii');
  return h;
}

/** A tar archive of the entries, in the given order, with the two zero end blocks. */
export function makeTar(entries: readonly TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    parts.push(tarHeader(e));
    if (e.type === 'file') {
      parts.push(e.data!);
      const pad = (512 - (e.data!.length % 512)) % 512;
      if (pad) parts.push(Buffer.alloc(pad, 0));
    }
  }
  parts.push(Buffer.alloc(1024, 0));
  return Buffer.concat(parts);
}

const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** OCI architecture name of this host (the busybox binary is the host's). */
export function ociArchitecture(arch: string = process.arch): string {
  const map: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };
  const a = map[arch];
  if (!a) throw new Error(`no OCI architecture known for node's process.arch '${arch}'`);
  return a;
}

/** Throws unless `file` is a 64-bit little-endian ELF without a PT_INTERP program header (i.e. statically linked). */
export function assertStaticElf(file: string): void {
  const b = fs.readFileSync(file);
  if (b.length < 64 || b.toString('latin1', 0, 4) !== '\x7fELF') throw new Error(`${file} is not an ELF binary`);
  if (b[4] !== 2 || b[5] !== 1) return; // not ELF64 LE: do not try to parse, trust the package
  const phoff = Number(b.readBigUInt64LE(0x20));
  const phentsize = b.readUInt16LE(0x36);
  const phnum = b.readUInt16LE(0x38);
  for (let i = 0; i < phnum; i++) {
    if (b.readUInt32LE(phoff + i * phentsize) === 3 /* PT_INTERP */) {
      throw new Error(`${file} is dynamically linked; the base image needs the static busybox of Debian's busybox-static package (bash scripts/install-test-tools.sh)`);
    }
  }
}

export interface BaseImageLayout {
  /** The OCI image layout directory. */
  readonly ociDir: string;
  readonly tag: string;
  /** `oci:<ociDir>:<tag>` for skopeo/buildah. */
  readonly ociRef: string;
  /** The digest `tag` names: the image index's with `architectures`, else the one manifest's. */
  readonly manifestDigest: string;
  /**
   * With `architectures`: each architecture's manifest digest. Each is also in the layout as
   * `<tag>-linux-<arch>`, as the layout builder's base step leaves a base per platform.
   */
  readonly platformManifests?: Record<string, string>;
  readonly configDigest: string;
  /** Digest of the gzipped layer blob. */
  readonly layerDigest: string;
  /** Digest of the uncompressed layer tar (config rootfs.diff_ids). */
  readonly diffId: string;
}

export interface BuildBaseImageOptions {
  /** Tag in the layout's index.json. Default '1'. */
  readonly tag?: string;
  /** The static busybox to copy. Default: `busybox` on PATH (Debian busybox-static: /usr/bin/busybox). */
  readonly busyboxPath?: string;
  /**
   * A multi-platform base: an OCI image index with one linux manifest per architecture (e.g. amd64, arm64), each
   * with its own layer (the busybox layer plus /etc/platform naming the platform, so the platforms' base layers
   * differ as real ones do). Only the host's busybox is at hand: every platform's image holds it, so only the
   * host's platform would run; the tests read the others, never run them. Default: one manifest, the host's.
   */
  readonly architectures?: readonly string[];
}

/** Writes the base image as an OCI image layout in `ociDir` (emptied first). */
export function buildBaseImageLayout(ociDir: string, opts: BuildBaseImageOptions = {}): BaseImageLayout {
  const tag = opts.tag ?? '1';
  const busyboxPath = opts.busyboxPath ?? which('busybox');
  if (!busyboxPath) requireTools(['busybox']);
  assertStaticElf(busyboxPath!);
  const busybox = fs.readFileSync(fs.realpathSync(busyboxPath!));

  const entries: TarEntry[] = [
    { name: 'bin', type: 'dir', mode: 0o755 },
    { name: 'bin/busybox', type: 'file', mode: 0o755, data: busybox },
    ...BASE_IMAGE_APPLETS.map((a): TarEntry => ({ name: `bin/${a}`, type: 'symlink', mode: 0o777, linkname: 'busybox' })),
    { name: 'etc', type: 'dir', mode: 0o755 },
    { name: 'etc/group', type: 'file', mode: 0o644, data: Buffer.from('root:x:0:\nnobody:x:65534:\n') },
    { name: 'etc/passwd', type: 'file', mode: 0o644, data: Buffer.from('root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n') },
    { name: 'root', type: 'dir', mode: 0o700 },
    { name: 'tmp', type: 'dir', mode: 0o1777 },
    { name: 'var', type: 'dir', mode: 0o755 },
    { name: 'var/tmp', type: 'dir', mode: 0o1777 },
  ];

  fs.rmSync(ociDir, { recursive: true, force: true });
  const blobs = path.join(ociDir, 'blobs', 'sha256');
  fs.mkdirSync(blobs, { recursive: true });
  const writeBlob = (data: Buffer) => {
    const digest = sha256(data);
    fs.writeFileSync(path.join(blobs, digest.slice('sha256:'.length)), data);
    return digest;
  };
  /** Writes one platform's layer, config and manifest. */
  const image = (architecture: string, extra: readonly TarEntry[]) => {
    const all = [...entries, ...extra].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const tar = makeTar(all);
    const gz = zlib.gzipSync(tar, { level: 9 });
    const diffId = sha256(tar);
    const layerDigest = writeBlob(gz);
    const config = Buffer.from(JSON.stringify({
      created: EPOCH,
      architecture,
      os: 'linux',
      config: {
        Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
        Cmd: ['/bin/sh'],
        WorkingDir: '/',
      },
      rootfs: { type: 'layers', diff_ids: [diffId] },
      history: [{ created: EPOCH, created_by: 'cdk8s-modelcar-tekton test/e2e/support/base-image.ts: static busybox' }],
    }));
    const configDigest = writeBlob(config);
    const manifest = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layerDigest, size: gz.length }],
    }));
    return { manifestDigest: writeBlob(manifest), size: manifest.length, configDigest, layerDigest, diffId };
  };
  const ref = (name: string) => ({ 'org.opencontainers.image.ref.name': name });
  fs.writeFileSync(path.join(ociDir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));

  if (opts.architectures === undefined) {
    const one = image(ociArchitecture(), []);
    fs.writeFileSync(path.join(ociDir, 'index.json'), JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: one.manifestDigest, size: one.size, annotations: ref(tag) }],
    }));
    const { manifestDigest, configDigest, layerDigest, diffId } = one;
    return { ociDir, tag, ociRef: `oci:${ociDir}:${tag}`, manifestDigest, configDigest, layerDigest, diffId };
  }
  const platforms = opts.architectures.map((architecture) => ({
    architecture,
    ...image(architecture, [{ name: 'etc/platform', type: 'file', mode: 0o644, data: Buffer.from(`linux/${architecture}\n`) }]),
  }));
  const index = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: platforms.map((p) => ({
      mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: p.manifestDigest, size: p.size, platform: { architecture: p.architecture, os: 'linux' },
    })),
  }));
  const indexDigest = writeBlob(index);
  fs.writeFileSync(path.join(ociDir, 'index.json'), JSON.stringify({
    schemaVersion: 2,
    manifests: [
      { mediaType: 'application/vnd.oci.image.index.v1+json', digest: indexDigest, size: index.length, annotations: ref(tag) },
      ...platforms.map((p) => ({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: p.manifestDigest, size: p.size, annotations: ref(`${tag}-linux-${p.architecture}`) })),
    ],
  }));
  const host = platforms.find((p) => p.architecture === ociArchitecture()) ?? platforms[0];
  return {
    ociDir,
    tag,
    ociRef: `oci:${ociDir}:${tag}`,
    manifestDigest: indexDigest,
    platformManifests: Object.fromEntries(platforms.map((p) => [p.architecture, p.manifestDigest])),
    configDigest: host.configDigest,
    layerDigest: host.layerDigest,
    diffId: host.diffId,
  };
}

export interface PushedBaseImage {
  /** Pinned reference: `127.0.0.1:PORT/base/busybox@sha256:...`. */
  readonly reference: string;
  /** `127.0.0.1:PORT/base/busybox:1`. */
  readonly tagReference: string;
  readonly digest: string;
  readonly layout: BaseImageLayout;
}

export interface PushBaseImageOptions extends BuildBaseImageOptions {
  /** Where to write the OCI layout before pushing it. */
  readonly workDir: string;
  /** Default 'base/busybox'. */
  readonly repository?: string;
}

/** Builds the base image layout and pushes it with skopeo to `registry` as `<repository>:<tag>` (default base/busybox:1). */
export async function pushBaseImage(registry: LocalRegistry, opts: PushBaseImageOptions): Promise<PushedBaseImage> {
  requireTools(['skopeo']);
  const repository = opts.repository ?? 'base/busybox';
  const layout = buildBaseImageLayout(path.join(opts.workDir, 'base-image-oci'), opts);
  const digestFile = path.join(opts.workDir, 'base-image.digest');
  const tagReference = `${registry.host}/${repository}:${layout.tag}`;
  await run('skopeo', [
    // --all: an image index goes with every platform's manifest (a no-op for one manifest).
    'copy', '--quiet', '--all', '--preserve-digests', '--digestfile', digestFile,
    '--dest-cert-dir', registry.certDir, '--dest-authfile', registry.authFile,
    layout.ociRef, `docker://${tagReference}`,
  ], { timeoutMs: 60_000 });
  const digest = fs.readFileSync(digestFile, 'utf8').trim();
  if (digest !== layout.manifestDigest) {
    throw new Error(`skopeo pushed ${tagReference} as ${digest}, expected the layout's manifest digest ${layout.manifestDigest}`);
  }
  return { reference: `${registry.host}/${repository}@${digest}`, tagReference, digest, layout };
}
