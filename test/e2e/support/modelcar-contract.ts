/**
 * KServe's modelcar contract, checked on an image as a registry serves it. What KServe does with a modelcar
 * (read in kserve/kserve, not copied):
 *
 * - modelcar mode (pkg/utils/storage.go, CreateModelcarContainer / CreateModelcarInitContainer): the image runs as
 *   a sidecar whose container spec sets only `args`, never `command`: `sh -c "ln -sf /proc/$$/root/models
 *   /mnt/models && sleep infinity"` (the volume mounted at /mnt), and as an init container checking
 *   `[ -d /models ] && [ "$(ls -A /models)" ]`. A runtime runs the image's Entrypoint with those args, so an
 *   Entrypoint swallows them; the image needs sh, ln, sleep, ls (and the shell's `[`) on its PATH; the serving
 *   container may run under any uid, so every file under /models must be readable by others.
 * - `oci+fetch://` mode (python/storage/kserve_storage/kserve_storage.py, Storage._download_oci): the storage
 *   initializer streams each layer through Python's tarfile in the mode its media type names (tar, tar+gzip, the
 *   Docker tar.gzip type), fails on a zstd layer, skips other media types, and extracts only entries named
 *   `models/...` (not `./models/...` nor `/models/...`).
 *
 * `checkModelcarContract` pulls the image with skopeo, lists every layer with Python's tarfile (the reader oci+fetch
 * uses), flattens the layers (whiteouts applied), unpacks them, runs KServe's two commands in a chroot under an
 * arbitrary uid, and throws one error listing every broken rule.
 */
import * as fs from 'fs';
import * as path from 'path';
import { LocalRegistry } from './registry';
import { run, which } from './tools';

/** The uid the commands run under: none of the image's, as on OpenShift. */
const ANY_UID = 1000770000;
/** What KServe's modelcar and init containers call: `[` and `echo` are also shell builtins, the others are not in busybox sh or bash. */
export const KSERVE_MODELCAR_TOOLS = ['sh', 'ln', 'sleep', 'ls', 'mkdir', '['] as const;
/** The PATH a runtime gives a container whose image sets none (containerd, CRI-O). */
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** Layer media types oci+fetch reads, with the tarfile mode it opens them in (kserve_storage.py, _LAYER_MEDIA_TYPE_MODES). */
const FETCH_TAR_MODES: Record<string, string> = {
  'application/vnd.oci.image.layer.v1.tar': 'r|',
  'application/vnd.oci.image.layer.v1.tar+gzip': 'r|gz',
  'application/vnd.docker.image.rootfs.diff.tar.gzip': 'r|gz',
};

/** KServe's modelcar container args (storage.go; `$$$$` there is `$$` once Kubernetes expanded it). */
const MODELCAR_ARGS = ['sh', '-c', 'ln -sf /proc/$$/root/models /mnt/models && sleep infinity'];
/** KServe's modelcar init container args, its echo lines shortened. */
const INIT_ARGS = ['sh', '-c', '[ -d /models ] && [ "$(ls -A /models)" ] && echo OK || (echo NOK && exit 1)'];

export interface TarMember {
  readonly name: string;
  /** tarfile's type: '0' file, '1' hard link, '2' symlink, '5' directory, ... */
  readonly type: string;
  readonly mode: number;
  readonly size: number;
  readonly linkname: string;
}

export interface ModelcarContractReport {
  readonly manifest: any;
  readonly config: any;
  /** Regular files under /models in the flattened image, path relative to /models => size. */
  readonly modelFiles: Record<string, number>;
  readonly layerMediaTypes: string[];
}

/** Lists tar layers with Python's tarfile in the given modes: [[mode, file], ...] => members per layer. */
async function listLayers(layers: [string, string][]): Promise<TarMember[][]> {
  if (layers.length === 0) return [];
  const code = `import json, sys, tarfile
out = []
for mode, f in zip(sys.argv[1::2], sys.argv[2::2]):
    with open(f, 'rb') as raw, tarfile.open(fileobj=raw, mode=mode) as t:
        out.append([{'name': m.name, 'type': m.type.decode(), 'mode': m.mode, 'size': m.size, 'linkname': m.linkname} for m in t])
json.dump(out, sys.stdout)`;
  return JSON.parse((await run('/usr/bin/python3', ['-c', code, ...layers.flat()])).stdout);
}

/** Whether a uid that is neither owner nor group may read ('r') or execute ('x') a file of this mode. */
function othersMay(mode: number, what: 'r' | 'x'): boolean {
  const others = mode % 8;
  return what === 'r' ? others >= 4 : others % 2 === 1;
}

/** Strips `./` and `/` from the front of an entry name, and `/` from its end: the path it extracts to. */
function clean(name: string): string {
  return name.replace(/^(\.\/|\/)+/, '').replace(/\/+$/, '');
}

/** The flattened file system of the layers, path => member (whiteouts and opaque directories applied, as overlay does). */
function flatten(layers: TarMember[][]): Map<string, TarMember> {
  const fsMap = new Map<string, TarMember>();
  const removeUnder = (dir: string, self: boolean) => {
    for (const p of [...fsMap.keys()]) if ((self && p === dir) || p.startsWith(`${dir}/`)) fsMap.delete(p);
  };
  for (const members of layers) {
    for (const m of members) {
      const p = clean(m.name);
      const base = path.posix.basename(p);
      const dir = path.posix.dirname(p) === '.' ? '' : path.posix.dirname(p);
      if (base === '.wh..wh..opq') removeUnder(dir, false);
      else if (base.startsWith('.wh.')) removeUnder(dir ? `${dir}/${base.slice(4)}` : base.slice(4), true);
      else fsMap.set(p, m);
    }
  }
  return fsMap;
}

/** The regular file `name` resolves to through symlinks and hard links in `fsMap`, or undefined. */
function resolveFile(fsMap: Map<string, TarMember>, name: string): TarMember | undefined {
  let p = clean(name);
  for (let hops = 0; hops < 16; hops++) {
    const m = fsMap.get(p);
    if (!m) return undefined;
    if (m.type === '0') return m;
    if (m.type === '1') p = clean(m.linkname);
    else if (m.type === '2') p = clean(m.linkname.startsWith('/') ? m.linkname : path.posix.join(path.posix.dirname(p), m.linkname));
    else return undefined;
  }
  return undefined;
}

/** Extracts the layers in order into `root` with GNU tar, applying whiteouts as overlay would. */
async function unpack(root: string, layers: { file: string; members: TarMember[] }[]): Promise<void> {
  fs.mkdirSync(root, { recursive: true });
  for (const { file, members } of layers) {
    for (const m of members) {
      if (path.posix.basename(clean(m.name)) === '.wh..wh..opq') {
        const dir = path.join(root, path.posix.dirname(clean(m.name)));
        if (fs.existsSync(dir)) for (const e of fs.readdirSync(dir)) fs.rmSync(path.join(dir, e), { recursive: true, force: true });
      }
    }
    await run('tar', ['-xf', file, '-C', root]);
    for (const m of members) {
      const p = clean(m.name);
      const base = path.posix.basename(p);
      if (!base.startsWith('.wh.')) continue;
      fs.rmSync(path.join(root, p), { force: true });
      if (base !== '.wh..wh..opq') fs.rmSync(path.join(root, path.posix.dirname(p), base.slice(4)), { recursive: true, force: true });
    }
  }
}

/**
 * Checks the image `reference` that `registry` serves against KServe's modelcar contract (see the module comment);
 * throws one error naming every broken rule, else returns what it read. `workDir` must not exist yet.
 */
export async function checkModelcarContract(registry: LocalRegistry, reference: string, workDir: string): Promise<ModelcarContractReport> {
  const problems: string[] = [];
  const layout = path.join(workDir, 'oci');
  fs.mkdirSync(workDir, { recursive: true });
  const creds = ['--cert-dir', registry.certDir, '--authfile', registry.authFile];
  const config = JSON.parse((await run('skopeo', ['inspect', '--config', '--raw', ...creds, `docker://${reference}`])).stdout);
  // --preserve-digests: skopeo would otherwise gzip the uncompressed layers it writes into a layout.
  await run('skopeo', ['copy', '--quiet', '--preserve-digests', '--src-cert-dir', registry.certDir, '--src-authfile', registry.authFile, `docker://${reference}`, `oci:${layout}:x`]);
  // The manifest this node pulls: of an image index, skopeo (as CRI-O) takes this host's platform's, the one the
  // commands below can run.
  const manifest = JSON.parse((await run('skopeo', ['inspect', '--raw', `oci:${layout}:x`])).stdout);
  const blob = (digest: string) => path.join(layout, 'blobs', 'sha256', digest.replace(/^sha256:/, ''));

  // The image config: KServe sets args only, so the image's Entrypoint would receive them.
  const entrypoint: string[] = config.config?.Entrypoint ?? [];
  if (entrypoint.length > 0) {
    problems.push(`the image sets Entrypoint ${JSON.stringify(entrypoint)}: KServe gives the modelcar container args only `
      + `(${JSON.stringify(MODELCAR_ARGS)}), which the entrypoint would receive instead of running them`);
  }
  const pathEnv = (config.config?.Env ?? []).find((e: string) => e.startsWith('PATH='))?.slice(5) ?? DEFAULT_PATH;

  // Media types: what oci+fetch reads. A zstd layer fails its pull, whatever the layer holds.
  const layerMediaTypes: string[] = manifest.layers.map((l: any) => l.mediaType);
  const readable: { file: string; mode: string; index: number }[] = [];
  manifest.layers.forEach((l: any, i: number) => {
    const mode = FETCH_TAR_MODES[l.mediaType];
    if (mode) readable.push({ file: blob(l.digest), mode, index: i + 1 });
    else if (l.mediaType.endsWith('+zstd')) problems.push(`layer ${i + 1} has media type ${l.mediaType}: KServe's oci+fetch reads tar and tar+gzip layers and fails on zstd`);
    else problems.push(`layer ${i + 1} has media type ${l.mediaType}, which KServe's oci+fetch skips: its files would be missing`);
  });
  const members = await listLayers(readable.map((r) => [r.mode, r.file]));

  // Entry names: oci+fetch extracts `models/...` only.
  readable.forEach((r, i) => {
    const astray = members[i].filter((m) => clean(m.name).split('/')[0] === 'models' && !(m.name === 'models' || m.name.startsWith('models/')));
    if (astray.length > 0) {
      problems.push(`layer ${r.index} names entries ${JSON.stringify(astray.slice(0, 3).map((m) => m.name))}: KServe's oci+fetch extracts only entries named models/...`);
    }
  });

  // The flattened file system.
  const fsMap = flatten(members);
  const modelsDir = fsMap.get('models');
  const modelFiles: Record<string, number> = {};
  if (!modelsDir || modelsDir.type !== '5') {
    problems.push('/models is not a directory in the image');
  } else {
    const under = [...fsMap.entries()].filter(([p]) => p === 'models' || p.startsWith('models/'));
    for (const [p, m] of under) {
      if (m.type === '0') modelFiles[p.slice('models/'.length)] = m.size;
      if (m.type === '0' && !othersMay(m.mode, 'r')) problems.push(`/${p} has mode ${m.mode.toString(8).padStart(4, '0')}: not readable by any uid`);
      if (m.type === '5' && !(othersMay(m.mode, 'r') && othersMay(m.mode, 'x'))) problems.push(`/${p}/ has mode ${m.mode.toString(8).padStart(4, '0')}: not searchable by any uid`);
    }
    if (Object.keys(modelFiles).length === 0) problems.push('/models holds no file: KServe\'s init container refuses an empty /models');
  }
  for (const tool of KSERVE_MODELCAR_TOOLS) {
    const found = pathEnv.split(':').map((d: string) => resolveFile(fsMap, `${d}/${tool}`)).find((m: TarMember | undefined) => m);
    if (!found) problems.push(`${tool} is not on the image's PATH (${pathEnv}): KServe's modelcar commands call it`);
    else if (!othersMay(found.mode, 'x')) problems.push(`${tool} (${found.name}) has mode ${found.mode.toString(8)}: not executable by any uid`);
  }

  // Run KServe's commands as a runtime would (Entrypoint + args), under a uid of none of the image's users.
  // timeout(1) runs the command in a process group of its own and signals the whole group: nothing is left running.
  const root = path.join(workDir, 'rootfs');
  await unpack(root, readable.map((r, i) => ({ file: r.file, members: members[i] })));
  const inImage = (args: string[], seconds: number) => run(which('timeout')!, [
    '--kill-after=5', String(seconds), which('chroot')!, `--userspec=${ANY_UID}:${ANY_UID}`, root, ...entrypoint, ...args,
  ], { env: { PATH: pathEnv }, allowFailure: true });
  const init = await inImage(INIT_ARGS, 60);
  if (init.code !== 0 || init.stdout.trim() !== 'OK') {
    problems.push(`KServe's init container check failed (exit ${init.code}): ${(init.stdout + init.stderr).trim()}`);
  }
  // The volume KServe mounts at /mnt, writable by the container's uid.
  fs.mkdirSync(path.join(root, 'mnt'), { recursive: true });
  fs.chmodSync(path.join(root, 'mnt'), 0o1777);
  const link = path.join(root, 'mnt', 'models');
  fs.rmSync(link, { force: true });
  // `sleep infinity` is stopped after 2 seconds: exit 124, the link in place.
  const sidecar = await inImage(MODELCAR_ARGS, 2);
  let target: string | undefined;
  try {
    target = fs.readlinkSync(link);
  } catch {
    target = undefined;
  }
  if (sidecar.code !== 124 || !/^\/proc\/\d+\/root\/models$/.test(target ?? '')) {
    problems.push(`KServe's modelcar container did not link /mnt/models and sleep (exit ${sidecar.code}, /mnt/models -> ${target ?? 'nothing'}): `
      + `${(sidecar.stdout + sidecar.stderr).trim()}`);
  }

  if (problems.length > 0) throw new Error(`${reference} breaks KServe's modelcar contract:\n- ${problems.join('\n- ')}`);
  return { manifest, config, modelFiles, layerMediaTypes };
}
