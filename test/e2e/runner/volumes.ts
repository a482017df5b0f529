/**
 * Host-side volume preparation, mimicking what kubelet does before starting a pod's containers.
 */
/* eslint-disable no-bitwise -- file mode arithmetic */
import * as fs from 'fs';
import * as path from 'path';

/** A volume source as the runner understands it. */
export type VolumeSource =
  | { readonly kind: 'pvc'; readonly hostDir: string; readonly claimName: string }
  | { readonly kind: 'emptyDir' }
  | { readonly kind: 'secret'; readonly name: string; readonly items?: KeyToPath[]; readonly defaultMode?: number; readonly optional?: boolean }
  | { readonly kind: 'configMap'; readonly name: string; readonly items?: KeyToPath[]; readonly defaultMode?: number; readonly optional?: boolean };

export interface KeyToPath {
  readonly key: string;
  readonly path: string;
  readonly mode?: number;
}

export class VolumeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'VolumeError';
  }
}

/** Translate a Kubernetes volume source (workspace binding or pod volume) into a VolumeSource. */
export function volumeSourceFrom(v: any, claims: Record<string, string>, what: string): VolumeSource {
  if (v.persistentVolumeClaim) {
    const claimName = v.persistentVolumeClaim.claimName;
    const hostDir = claims[claimName];
    if (!hostDir) {
      throw new VolumeError(`${what}: PersistentVolumeClaim ${JSON.stringify(claimName)} is not in options.claims`);
    }
    fs.mkdirSync(hostDir, { recursive: true });
    return { kind: 'pvc', hostDir, claimName };
  }
  if (v.emptyDir) return { kind: 'emptyDir' };
  if (v.secret) {
    return { kind: 'secret', name: v.secret.secretName, items: v.secret.items, defaultMode: v.secret.defaultMode, optional: v.secret.optional };
  }
  if (v.configMap) {
    return { kind: 'configMap', name: v.configMap.name, items: v.configMap.items, defaultMode: v.configMap.defaultMode, optional: v.configMap.optional };
  }
  const kinds = Object.keys(v).filter((k) => !['name', 'subPath'].includes(k));
  throw new VolumeError(`${what}: unsupported volume source ${kinds.join(', ') || '(none)'}`);
}

/**
 * kubelet's SetVolumeOwnership: chgrp -R to fsGroup, add rw (ro for secret/configMap) for user and group,
 * and x + setgid on directories. Symlinks are chgrp'ed but not chmod'ed.
 * With policy OnRootMismatch nothing is done when the root already has the group and the permission bits.
 */
export function applyFsGroup(root: string, fsGroup: number, readOnly: boolean, policy: string | undefined): boolean {
  const mask = readOnly ? 0o440 : 0o660;
  const dirMask = mask | 0o110 | 0o2000;
  if (policy === 'OnRootMismatch') {
    const st = fs.statSync(root);
    const want = st.isDirectory() ? dirMask : mask;
    if (st.gid === fsGroup && (st.mode & want) === want) return false;
  }
  const visit = (p: string) => {
    const st = fs.lstatSync(p);
    fs.lchownSync(p, st.uid, fsGroup);
    if (st.isSymbolicLink()) return;
    const m = st.isDirectory() ? dirMask : mask;
    fs.chmodSync(p, (st.mode & 0o7777) | m);
    if (st.isDirectory()) {
      for (const e of fs.readdirSync(p)) visit(path.join(p, e));
    }
  };
  visit(root);
  return true;
}

/** Create an emptyDir volume like kubelet: mode 0777, owner root. */
export function makeEmptyDir(dir: string): string {
  fs.mkdirSync(dir, { recursive: true });
  fs.chownSync(dir, 0, 0);
  fs.chmodSync(dir, 0o777);
  return dir;
}

/** Materialize a secret/configMap volume: one file per key (or per item), mode per item/defaultMode (default 0644). */
export interface KeyFilesSource {
  readonly name: string;
  readonly items?: KeyToPath[];
  readonly defaultMode?: number;
  readonly optional?: boolean;
}

export function makeKeyFilesDir(dir: string, data: Record<string, string> | undefined, source: KeyFilesSource, what: string): string {
  fs.mkdirSync(dir, { recursive: true });
  fs.chmodSync(dir, 0o755);
  if (!data) {
    if (source.optional) return dir;
    throw new VolumeError(`${what}: ${JSON.stringify(source.name)} not found (pass it in options)`);
  }
  const defaultMode = source.defaultMode ?? 0o644;
  const items: KeyToPath[] = source.items ?? Object.keys(data).map((k) => ({ key: k, path: k }));
  for (const item of items) {
    if (!(item.key in data)) {
      if (source.optional) continue;
      throw new VolumeError(`${what}: key ${JSON.stringify(item.key)} not found in ${JSON.stringify(source.name)}`);
    }
    const file = path.join(dir, item.path);
    if (!file.startsWith(dir + path.sep)) throw new VolumeError(`${what}: item path ${item.path} escapes the volume`);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, data[item.key]);
    fs.chmodSync(file, item.mode ?? defaultMode);
  }
  return dir;
}

/**
 * Resolve a subPath inside a volume like kubelet: missing directories are created (as root) with the mode of the
 * volume root (a setgid root makes them inherit its group). Escaping the volume is an error.
 */
export function ensureSubPath(volumeRoot: string, subPath: string | undefined, what: string): string {
  if (!subPath) return volumeRoot;
  const clean = path.posix.normalize(subPath).replace(/^\/+/, '');
  if (clean === '..' || clean.startsWith('../') || path.isAbsolute(subPath)) {
    throw new VolumeError(`${what}: subPath ${JSON.stringify(subPath)} must be a relative path inside the volume`);
  }
  const full = path.join(volumeRoot, clean);
  if (fs.existsSync(full)) return full;
  const rootMode = fs.statSync(volumeRoot).mode & 0o7777;
  let cur = volumeRoot;
  for (const part of clean.split('/').filter(Boolean)) {
    cur = path.join(cur, part);
    if (!fs.existsSync(cur)) {
      fs.mkdirSync(cur);
      fs.chmodSync(cur, rootMode);
    }
  }
  return full;
}
