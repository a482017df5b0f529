/**
 * Runs one step like a container runtime would, on this host:
 *
 * - a private mount namespace and pid namespace (`unshare --mount --pid --fork`),
 * - a root of its own: an overlayfs whose lower layer is the host `/` and whose upper layer is a tmpfs
 *   (so the step sees the host's tools, may write anywhere like in a container's writable layer, and
 *   nothing it writes outside its volumes reaches the host), with a fresh /proc, a minimal /dev (null, zero,
 *   full, random, urandom, tty, private pts, shm), /sys read-only, and a fresh tmpfs /tmp,
 * - volumes bind-mounted at their container paths (`/workspace/<ws>`, `/tekton/results`, mountPaths ...),
 *   mount points created inside the new root (so symlinks resolve like in the container),
 * - then `chroot` and `setpriv` to drop to the uid/gid/supplementary groups the YAML asks for,
 *   with the container default capability bounding set, and `env -i` for a clean environment.
 *
 * - optionally inside cgroups (cgroup.ts) joined by the first process, before anything else runs,
 * - optionally with stdin, for RUNTIME_EXEC: a container whose argv must reach the kernel's execve unchanged.
 *
 * Requires root (or CAP_SYS_ADMIN), util-linux and perl. The whole process tree is killed on timeout.
 */
import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { StepIo } from './types';

export interface SandboxMount {
  readonly hostPath: string;
  readonly containerPath: string;
  readonly readOnly?: boolean;
}

export interface SandboxSpec {
  /** Host directory used as mount point for this step's private scratch tmpfs (must exist, empty). */
  readonly scratchDir: string;
  readonly mounts: SandboxMount[];
  readonly uid: number;
  readonly gid: number;
  /** Supplementary groups (empty: none). */
  readonly groups: number[];
  /** Set no_new_privs (Kubernetes does when allowPrivilegeEscalation is false). */
  readonly noNewPrivs: boolean;
  /** Capability bounding set, lower-case names without CAP_ (e.g. 'chown'), or 'all' (privileged). */
  readonly capabilities: string[] | 'all';
  readonly readOnlyRootFilesystem: boolean;
  /** Privileged container: the host's /dev instead of a minimal one (capabilities should be 'all'). */
  readonly privileged: boolean;
  readonly isolateTmp: boolean;
  readonly workingDir: string;
  readonly env: Record<string, string>;
  readonly argv: string[];
  /** Kill the step after this many ms (undefined: no limit). */
  readonly timeoutMs?: number;
  /**
   * cgroup.procs files (see cgroup.ts) the sandbox's first process joins before anything else runs, so the whole
   * process tree (setup and step) is inside the container's cgroup.
   */
  readonly cgroupProcs?: string[];
  /** Bytes on the step's standard input (default: none, like a container without `stdin: true`). */
  readonly stdin?: Buffer;
  readonly onLine: (line: string) => void;
}

export interface SandboxResult {
  /** Exit code of the step (128+n when killed by signal n); null if it could not be determined. */
  readonly exitCode: number | null;
  readonly timedOut: boolean;
  /** Set when the sandbox itself could not be set up (exit code 222 from the setup script). */
  readonly setupError?: string;
  /** Storage I/O of the step's process tree (see StepIo in types.ts). */
  readonly io?: StepIo;
}

/** This process's storage I/O counters, which include every reaped descendant's; undefined where /proc lacks them. */
export function readSelfIo(): StepIo | undefined {
  try {
    const fields = Object.fromEntries(fs.readFileSync('/proc/self/io', 'utf8').trim().split('\n').map((l) => {
      const [k, v] = l.split(':');
      return [k.trim(), Number(v)];
    }));
    return { readBytes: fields.read_bytes, writeBytes: fields.write_bytes, cancelledWriteBytes: fields.cancelled_write_bytes };
  } catch {
    return undefined;
  }
}

function ioSince(before: StepIo | undefined): StepIo | undefined {
  const now = readSelfIo();
  if (!before || !now) return undefined;
  return {
    readBytes: now.readBytes - before.readBytes,
    writeBytes: now.writeBytes - before.writeBytes,
    cancelledWriteBytes: now.cancelledWriteBytes - before.cancelledWriteBytes,
  };
}

/** Exit code used by the setup script for its own failures. */
export const SETUP_FAILED_EXIT = 222;

/** Default capabilities of a CRI-O container (OpenShift); Kubernetes adds/drops from this set. */
export const DEFAULT_CAPABILITIES = ['chown', 'dac_override', 'fsetid', 'fowner', 'setgid', 'setuid', 'setpcap', 'net_bind_service', 'kill'];

const HOST_TOOLS_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const SRC_IN_ROOT = '/.tekton-runner-src';

/** Single-quote a string for /bin/sh. */
export function shq(s: string): string {
  return `'${String(s).replace(/'/g, '\'\\\'\'')}'`;
}

let supportCache: { ok: boolean; reason?: string } | undefined;

/** Whether this host can run the sandbox (root, Linux, util-linux, overlayfs, mount namespaces). */
export function sandboxSupport(): { ok: boolean; reason?: string } {
  if (supportCache) return supportCache;
  const check = (): { ok: boolean; reason?: string } => {
    if (process.platform !== 'linux') return { ok: false, reason: 'needs Linux' };
    if (typeof process.getuid !== 'function' || process.getuid() !== 0) return { ok: false, reason: 'needs root (mount namespaces, setpriv)' };
    for (const tool of ['unshare', 'setpriv', 'chroot', 'mount', 'env', 'perl']) {
      const r = spawnSync('sh', ['-c', `command -v ${tool}`], { env: { PATH: HOST_TOOLS_PATH } });
      if (r.status !== 0) return { ok: false, reason: `${tool} not found` };
    }
    try {
      if (!/\boverlay\b/.test(fs.readFileSync('/proc/filesystems', 'utf8'))) return { ok: false, reason: 'overlayfs not available' };
    } catch {
      return { ok: false, reason: 'cannot read /proc/filesystems' };
    }
    const r = spawnSync('unshare', ['--mount', '--propagation', 'private', '--pid', '--fork', 'true'], { env: { PATH: HOST_TOOLS_PATH } });
    if (r.status !== 0) return { ok: false, reason: `unshare failed: ${String(r.stderr)}` };
    return { ok: true };
  };
  supportCache = check();
  return supportCache;
}

function decodeMountPath(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Host mounts (other than / and kernel/runtime ones) to replicate into the step's root. */
function hostSubmounts(scratchDir: string): string[] {
  let lines: string[] = [];
  try {
    lines = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean);
  } catch {
    return [];
  }
  const skip = ['/proc', '/sys', '/dev', '/run', '/mnt', '/media', '/var/run'];
  const points = lines.map((l) => decodeMountPath(l.split(' ')[4])).filter((mp) => mp && mp !== '/');
  const under = (p: string, root: string) => p === root || p.startsWith(root.endsWith('/') ? root : root + '/');
  const candidates = [...new Set(points)]
    .filter((mp) => !skip.some((s) => under(mp, s)))
    // a mount that contains our scratch dir would copy the sandbox into itself: leave it to the overlay lower layer
    .filter((mp) => !under(scratchDir, mp))
    .sort();
  // only top-level ones: --rbind brings their children along
  return candidates.filter((mp) => !candidates.some((other) => other !== mp && under(mp, other)));
}

function depth(p: string): number {
  return path.posix.normalize(p).split('/').filter(Boolean).length;
}

/** Build the two setup scripts (outside and inside the chroot). */
function buildScripts(spec: SandboxSpec): { outer: string; inner: string } {
  const R = spec.scratchDir;
  const mounts = spec.mounts
    .map((m, i) => ({ ...m, i, containerPath: path.posix.normalize(m.containerPath), isFile: fs.statSync(m.hostPath).isFile() }))
    // parents before children, like kubelet/runc; stable for equal depth
    .sort((a, b) => depth(a.containerPath) - depth(b.containerPath) || a.i - b.i);

  const outer: string[] = [
    `fail() { echo "tekton-runner: sandbox setup failed: $*" >&2; exit ${SETUP_FAILED_EXIT}; }`,
    'umask 022',
    `R=${shq(R)}`,
    'mount -t tmpfs -o mode=0755 tekton-step "$R" || fail tmpfs',
    'mkdir "$R/upper" "$R/work" "$R/root" "$R/src" || fail mkdir',
    'mount -t overlay overlay -o "lowerdir=/,upperdir=$R/upper,workdir=$R/work" "$R/root" || fail overlay',
    'mount -t proc proc "$R/root/proc" || fail proc',
    'mount --rbind /sys "$R/root/sys" && mount -o remount,bind,ro "$R/root/sys" || fail sys',
  ];
  if (spec.privileged) {
    outer.push('mount --rbind /dev "$R/root/dev" || fail dev');
  } else {
    // a minimal /dev like runc's: a few character devices, private devpts, /dev/shm, fd links
    outer.push('mount -t tmpfs -o mode=0755,nosuid,strictatime tekton-dev "$R/root/dev" || fail dev');
    outer.push('for d in null zero full random urandom tty; do touch "$R/root/dev/$d" && mount --bind "/dev/$d" "$R/root/dev/$d" || fail "dev $d"; done');
    outer.push('mkdir "$R/root/dev/pts" "$R/root/dev/shm" || fail dev');
    outer.push('mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$R/root/dev/pts" || fail devpts');
    outer.push('mount -t tmpfs -o mode=1777,nosuid,nodev shm "$R/root/dev/shm" || fail shm');
    outer.push('ln -s pts/ptmx "$R/root/dev/ptmx" && ln -s /proc/self/fd "$R/root/dev/fd" || fail dev-links');
    outer.push('ln -s /proc/self/fd/0 "$R/root/dev/stdin" && ln -s /proc/self/fd/1 "$R/root/dev/stdout" && ln -s /proc/self/fd/2 "$R/root/dev/stderr" || fail dev-links');
  }
  for (const mp of hostSubmounts(R)) {
    outer.push(`[ -d "$R/root"${shq(mp)} ] && { mount --rbind ${shq(mp)} "$R/root"${shq(mp)} || fail ${shq('rbind ' + mp)}; }`);
  }
  for (const m of mounts) {
    outer.push(m.isFile ? `touch "$R/src/${m.i}" || fail src` : `mkdir "$R/src/${m.i}" || fail src`);
    outer.push(`mount --bind ${shq(m.hostPath)} "$R/src/${m.i}" || fail ${shq('bind ' + m.hostPath)}`);
  }
  outer.push(`mkdir "$R/root${SRC_IN_ROOT}" && mount --rbind "$R/src" "$R/root${SRC_IN_ROOT}" || fail src-root`);
  outer.push('chroot "$R/root" /bin/sh -c "$INNER" sh "$@"');
  outer.push('exit $?');

  const inner: string[] = [
    `fail() { echo "tekton-runner: sandbox setup failed: $*" >&2; exit ${SETUP_FAILED_EXIT}; }`,
    'umask 022',
  ];
  if (spec.isolateTmp && !spec.readOnlyRootFilesystem) {
    inner.push('mount -t tmpfs -o mode=1777 tmp /tmp || fail tmp');
  }
  for (const m of mounts) {
    const cp = shq(m.containerPath);
    if (m.isFile) {
      inner.push(`mkdir -p "$(dirname ${cp})" && { [ -e ${cp} ] || touch ${cp}; } || fail ${shq('mountpoint ' + m.containerPath)}`);
    } else {
      inner.push(`mkdir -p ${cp} || fail ${shq('mountpoint ' + m.containerPath)}`);
    }
    inner.push(`mount --bind ${SRC_IN_ROOT}/${m.i} ${cp} || fail ${shq('mount ' + m.containerPath)}`);
    if (m.readOnly) inner.push(`mount -o remount,bind,ro ${cp} || fail ${shq('remount ro ' + m.containerPath)}`);
  }
  inner.push(`umount -l ${SRC_IN_ROOT} && rmdir ${SRC_IN_ROOT} || fail src-cleanup`);
  // the container runtime creates a missing workingDir (as root)
  inner.push(`mkdir -p ${shq(spec.workingDir)} || fail workingDir`);
  if (spec.readOnlyRootFilesystem) inner.push('mount -o remount,bind,ro / || fail readOnlyRootFilesystem');

  const setpriv: string[] = ['setpriv', '--reuid', String(spec.uid), '--regid', String(spec.gid)];
  if (spec.groups.length) setpriv.push('--groups', spec.groups.join(','));
  else setpriv.push('--clear-groups');
  if (spec.noNewPrivs) setpriv.push('--no-new-privs');
  if (spec.capabilities !== 'all') {
    setpriv.push('--bounding-set', ['-all', ...spec.capabilities.map((c) => '+' + c)].join(','));
  }
  setpriv.push('--inh-caps', '-all', '--');
  inner.push(`exec ${setpriv.map(shq).join(' ')} env -i -C ${shq(spec.workingDir)} "$@"`);
  return { outer: outer.join('\n'), inner: inner.join('\n') };
}

/** Run a step in its sandbox. Resolves when the whole process tree is gone. */
export function runInSandbox(spec: SandboxSpec): Promise<SandboxResult> {
  const { outer, inner } = buildScripts(spec);
  const envArgs = Object.entries(spec.env).map(([k, v]) => `${k}=${v}`);
  for (const k of Object.keys(spec.env)) {
    if (!k || k.includes('=')) throw new Error(`invalid env var name ${JSON.stringify(k)}`);
  }
  const args = ['--mount', '--propagation', 'private', '--pid', '--fork', '--kill-child', '/bin/sh', '-c', outer, 'sh', ...envArgs, ...spec.argv];
  const procs = spec.cgroupProcs ?? [];
  for (const f of procs) if (!/^[A-Za-z0-9._/-]+$/.test(f)) throw new Error(`unexpected cgroup.procs path ${JSON.stringify(f)}`);
  // join the cgroups first (by pid: `$$` is this shell, which then becomes unshare), so every descendant is in them
  const joinCgroups = [
    `for f in $TEKTON_CGROUP_PROCS; do echo $$ > "$f" || { echo "tekton-runner: sandbox setup failed: cannot join cgroup $f" >&2; exit ${SETUP_FAILED_EXIT}; }; done`,
    'unset TEKTON_CGROUP_PROCS',
    'exec unshare "$@"',
  ].join('\n');

  return new Promise((resolve) => {
    const ioBefore = readSelfIo();
    const child = spawn('/bin/sh', ['-c', joinCgroups, 'sh', ...args], {
      detached: true, // own process group: kill(-pid) reaches everything
      stdio: [spec.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
      env: { PATH: HOST_TOOLS_PATH, INNER: inner, TEKTON_CGROUP_PROCS: procs.join(' ') },
    });
    if (spec.stdin) {
      child.stdin!.on('error', () => { /* the step may exit without reading it all */ });
      child.stdin!.end(spec.stdin);
    }
    let timedOut = false;
    let setupError: string | undefined;
    const buffers: Record<string, string> = { out: '', err: '' };
    const emit = (line: string) => {
      if (line.startsWith('tekton-runner: sandbox setup failed')) setupError = line;
      spec.onLine(line);
    };
    const onData = (key: 'out' | 'err') => (chunk: Buffer) => {
      buffers[key] += chunk.toString('utf8');
      let nl: number;
      while ((nl = buffers[key].indexOf('\n')) >= 0) {
        emit(buffers[key].slice(0, nl));
        buffers[key] = buffers[key].slice(nl + 1);
      }
    };
    child.stdout!.on('data', onData('out'));
    child.stderr!.on('data', onData('err'));
    const killGroup = () => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    const timer = spec.timeoutMs !== undefined
      ? setTimeout(() => {
        timedOut = true;
        killGroup();
      }, Math.max(0, spec.timeoutMs))
      : undefined;
    child.on('error', (err) => {
      if (timer) clearTimeout(timer);
      resolve({ exitCode: null, timedOut, setupError: `cannot start unshare: ${err.message}` });
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      for (const key of ['out', 'err']) if (buffers[key]) emit(buffers[key]);
      killGroup(); // leftovers that left the pid namespace's group (should be none)
      const sigNum = signal ? os.constants.signals[signal] ?? 0 : 0;
      const exitCode = code ?? (signal ? 128 + sigNum : null);
      const io = ioSince(ioBefore);
      if (exitCode === SETUP_FAILED_EXIT && setupError) {
        resolve({ exitCode, timedOut, setupError, io });
      } else {
        resolve({ exitCode, timedOut, io });
      }
    });
  });
}

/**
 * The container runtime's last step, for a container whose argv must reach the kernel as it is (runc
 * libcontainer standard_init_linux.go: exec.LookPath(args[0]) in the container's PATH, then execve; a failure is
 * reported as Go's os.PathError, `exec <path>: <errno text>`). Run inside the sandbox as
 * `perl -e RUNTIME_EXEC` with the argv NUL-separated on stdin: the argv never passes through another exec on the
 * way (node's spawn, unshare, chroot, setpriv, env), so the kernel's limits (MAX_ARG_STRLEN per string, the stack
 * rlimit for all of them) apply exactly at the container's own execve. The errno text is the C library's with a
 * lower-case first letter, which is Go's syscall error table (e.g. E2BIG: "argument list too long").
 */
export const RUNTIME_EXEC = String.raw`
binmode STDIN; local $/; my $in = <STDIN>;
my @argv = split /\0/, $in, -1; pop @argv if @argv && $argv[-1] eq '';
open STDIN, '<', '/dev/null' or die "stdin: $!";
my $path = $argv[0];
if ($path !~ m{/}) {
  my ($found) = grep { -f $_ && -x _ } map { ($_ eq '' ? '.' : $_) . "/$argv[0]" } split /:/, ($ENV{PATH} // ''), -1;
  if (!defined $found) { print STDERR "exec: \"$argv[0]\": executable file not found in \$PATH\n"; exit 1; }
  $path = $found;
}
exec { $path } @argv;
printf STDERR "exec %s: %s\n", $path, lcfirst($!);
exit 1;
`;

/** NUL-separated argv for RUNTIME_EXEC's stdin. */
export function runtimeExecInput(argv: string[]): Buffer {
  return Buffer.from(argv.map((a) => `${a}\0`).join(''), 'utf8');
}
