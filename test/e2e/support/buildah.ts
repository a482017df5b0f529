/**
 * buildah for the e2e tests: a private store per test (`--root/--runroot` in the work dir, vfs driver,
 * chroot isolation), so tests never share or leak images and need no overlay/fuse and no daemon.
 *
 * Verified behaviour (buildah 1.28.2 Debian 12 package, containers/image under it; root on a VM without Docker):
 *
 * AS ROOT, `buildah --root R --runroot RR --storage-driver vfs ...` with `--isolation chroot` (or BUILDAH_ISOLATION=chroot):
 *   - `buildah from --cert-dir <certs.d/127.0.0.1:PORT> --creds user:pass 127.0.0.1:PORT/base/busybox@sha256:...`
 *     pulls from the local TLS registry (an `--authfile` with {"auths":{...}} works the same). `--cert-dir` is the
 *     per-host dir holding ca.crt (registry.ts). Pulling by digest works; `buildah containers` then shows the
 *     image by its tag name.
 *   - `buildah copy --chown 0:0 --chmod 0444 <ctr> <modeldir>/ /models/` copies the directory's CONTENTS into /models
 *     (prints the digest of the added content). `buildah config --label/--env/--user <ctr>` OK.
 *     `buildah run --isolation chroot <ctr> -- sh -c 'id; ls -ln /models'` works as root.
 *   - `buildah commit --timestamp 0 <ctr> <name>` then `buildah push <name> oci:<dir>:<tag>` and
 *     `oci-archive:<file>:<tag>` both work. `--timestamp 0` also zeroes file mtimes in the new layer: the same model
 *     gave the same layer digest (sha256:22bfe0ae...) in two stores and as root vs. rootless.
 *   - `buildah push` to `oci:` gzips every layer even with `-D/--disable-compression` (the OCI layout destination
 *     asks for compression); the base layer is re-compressed, so its digest differs from the registry's copy.
 *     `buildah commit <ctr> oci:<dir>:<tag>` straight to a layout (no image kept in the store) writes the new layer
 *     UNCOMPRESSED (media type application/vnd.oci.image.layer.v1.tar; commit's -D defaults to true).
 *   - Timings, 200 MB random model, 2 vCPU: commit ~1.5-2 s; push to oci: ~1.6-2 s; push to oci-archive: ~3 s.
 *     8 MB model (support.test.ts): from 0.23 s, copy 0.18 s, commit 0.66 s, push oci: 0.17 s, oci-archive: 0.19 s.
 *   - Temp space (TMPDIR, default /var/tmp; buildah honours TMPDIR), peak measured with du:
 *     commit to local storage: 2x the layer (390 MiB for 200 MB); push to oci: 1x (191 MiB);
 *     push to oci-archive: 2x (381 MiB, the layout is staged then tarred); commit straight to oci:<dir>: 1x (191 MiB).
 *     The vfs store holds full copies: container rootfs + committed image (1.2 GB for a 200 MB model after the steps
 *     above). Size the step's volumes accordingly (model x 4-5 for a commit + push).
 *   - Errors (rc 125): wrong password
 *       `Error: initializing source docker://127.0.0.1:PORT/base/busybox:1: reading manifest 1 in 127.0.0.1:PORT/base/busybox: unauthorized: authentication required`
 *     no CA: `... pinging container registry 127.0.0.1:PORT: Get "https://127.0.0.1:PORT/v2/": x509: certificate signed by unknown authority`
 *     registry down: `... dial tcp 127.0.0.1:PORT: connect: connection refused`, after `--retry 3` x `--retry-delay 2s`
 *     (6 s; `buildah from --retry 0` fails at once). Same substrings as skopeo (skopeo.ts REGISTRY_ERRORS).
 *   - Side effect: the first root run creates /etc/containers/networks (empty network config dir).
 *
 * AS AN UNPRIVILEGED UID (setpriv --reuid 1000970000 --regid 0 --clear-groups, HOME/--root/--runroot writable):
 *   - Without an /etc/passwd entry for the uid every command fails at once with
 *     `level=error msg="error determining current user: user: unknown userid 1000970000"` (setting USER/HOME does not help).
 *   - With a passwd entry (tested by bind-mounting a copy of /etc/passwd in a private mount namespace):
 *     from (TLS registry), copy, config, commit --timestamp 0, push oci: and oci-archive: all WORK. buildah re-executes
 *     itself as "buildah-in-a-user-namespace" (strace: unshare(CLONE_NEWUSER)) and, with no /etc/subuid range, maps
 *     only its own uid (newuidmap PID 0 1000970000 1, newgidmap PID 0 0 1), warning
 *     `Found no UID ranges set aside for user "u" in /etc/subuid`. Files come out owned by the uid; layer digest
 *     identical to the root build.
 *   - It needs the setuid newuidmap/newgidmap of Debian's `uidmap` package: with them hidden, it fails with
 *     `finding newgidmap: exec: "newgidmap": executable file not found in $PATH`.
 *     It also needs unprivileged user namespaces (this VM: user.max_user_namespaces=96365); a pod whose seccomp
 *     profile or runtime forbids unshare(CLONE_NEWUSER) cannot run rootless buildah this way.
 *   - `_CONTAINERS_USERNS_CONFIGURED=1` does NOT skip the user namespace when the euid is not 0.
 *   - `buildah run` fails rootless: `error setting supplemental groups list: operation not permitted`. The modelcar
 *     build needs no `run` (from + copy + config + commit only).
 */
import * as fs from 'fs';
import * as path from 'path';
import { requireTools, run, RunOptions, RunResult } from './tools';

export interface BuildahStore {
  readonly root: string;
  readonly runroot: string;
  /** TMPDIR given to buildah (layers are staged here, see above). */
  readonly tmpDir: string;
  /** Global flags: --root R --runroot RR --storage-driver vfs. */
  readonly globalArgs: readonly string[];
  /** Environment for buildah: this process's plus BUILDAH_ISOLATION=chroot and TMPDIR. */
  readonly env: NodeJS.ProcessEnv;
  /** Runs `buildah <globalArgs> <args>`. */
  buildah(args: readonly string[], opts?: RunOptions): Promise<RunResult>;
  /** Removes every container and image of the store (`buildah rm -a`, `buildah rmi -a -f`). */
  clean(): Promise<void>;
}

/** A private buildah store under `dir` (vfs storage, chroot isolation). */
export function buildahStore(dir: string): BuildahStore {
  requireTools(['buildah']);
  const root = path.join(dir, 'root');
  const runroot = path.join(dir, 'runroot');
  const tmpDir = path.join(dir, 'tmp');
  for (const d of [root, runroot, tmpDir]) fs.mkdirSync(d, { recursive: true });
  const globalArgs = ['--root', root, '--runroot', runroot, '--storage-driver', 'vfs'];
  const env = { ...process.env, BUILDAH_ISOLATION: 'chroot', TMPDIR: tmpDir };
  const buildah = async (args: readonly string[], opts: RunOptions = {}) =>
    run('buildah', [...globalArgs, ...args], { timeoutMs: 300_000, ...opts, env: opts.env ?? env });
  return {
    root,
    runroot,
    tmpDir,
    globalArgs,
    env,
    buildah,
    clean: async () => {
      await buildah(['rm', '--all'], { allowFailure: true });
      await buildah(['rmi', '--all', '--force'], { allowFailure: true });
    },
  };
}
