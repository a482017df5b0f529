/**
 * A real cgroup around a container's process tree, with the limits the kubelet gives a container
 * (kubernetes pkg/kubelet/cm/helpers_linux.go: MilliCPUToQuota, MilliCPUToShares; the memory limit as is), so the
 * kernel, not the runner, decides: over its memory limit the kernel's OOM killer kills inside the cgroup, and CPU
 * time is throttled by CFS bandwidth control.
 *
 * cgroup v1 (memory and cpu hierarchies, each under this process's own cgroup) or, where no v1 memory hierarchy is
 * mounted, cgroup v2 (a child of this process's cgroup, controllers enabled in its subtree_control).
 */
import * as fs from 'fs';
import * as path from 'path';

export class CgroupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CgroupError';
  }
}

export interface CgroupLimits {
  /** memory limit in bytes. */
  readonly memoryBytes?: number;
  /** cpu limit in millicores (CFS quota). */
  readonly milliCpu?: number;
  /** cpu request in millicores (cpu.shares / cpu.weight). */
  readonly requestMilliCpu?: number;
}

/** What the cgroup was set to, read back from its files. */
export interface CgroupSettings {
  readonly version: 1 | 2;
  /** Path of the memory cgroup as /proc/<pid>/cgroup shows it (inside a step too: no cgroup namespace). */
  readonly memoryPath?: string;
  readonly memoryLimitBytes?: number;
  readonly cpuQuotaUs?: number;
  readonly cpuPeriodUs?: number;
}

export interface ContainerCgroup {
  readonly settings: CgroupSettings;
  /** cgroup.procs files the container's first process writes its pid to before it execs. */
  readonly procsFiles: string[];
  readonly dirs: string[];
  readonly memoryDir?: string;
  readonly cpuDir?: string;
}

/** kubelet: CFS period 100ms; quota = milliCPU * period / 1000, at least 1ms (MinQuotaPeriod). */
const CFS_PERIOD_US = 100000;
const MIN_QUOTA_US = 1000;

const created = new Set<string>();
let exitHookInstalled = false;

/** Mount point and the process's own cgroup path for each v1 hierarchy / the v2 unified one. */
function hierarchies(): { v1: Map<string, string>; v2?: string } {
  const own = new Map<string, string>();
  for (const line of fs.readFileSync('/proc/self/cgroup', 'utf8').split('\n').filter(Boolean)) {
    const [, , controllers, p] = /^(\d+):([^:]*):(.*)$/.exec(line) ?? [];
    if (controllers === undefined) continue;
    own.set(controllers, p);
  }
  const v1 = new Map<string, string>();
  let v2: string | undefined;
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean)) {
    const [pre, post] = line.split(' - ');
    if (!post) continue;
    const fields = pre.split(' ');
    const root = fields[3];
    const mountPoint = fields[4];
    const [fstype, , superOpts] = post.split(' ');
    const inHierarchy = (p: string) => path.posix.join(mountPoint, path.posix.relative(root, p));
    if (fstype === 'cgroup') {
      const controllers = superOpts.split(',').filter((o) => o === 'memory' || o === 'cpu');
      for (const c of controllers) {
        const key = [...own.keys()].find((k) => k.split(',').includes(c));
        if (key !== undefined && !v1.has(c)) v1.set(c, inHierarchy(own.get(key)!));
      }
    } else if (fstype === 'cgroup2' && own.has('') && v2 === undefined) {
      v2 = inHierarchy(own.get('')!);
    }
  }
  return { v1, v2 };
}

function write(file: string, value: string) {
  try {
    fs.writeFileSync(file, value);
  } catch (e) {
    throw new CgroupError(`cannot write ${JSON.stringify(value)} to ${file}: ${(e as Error).message}`);
  }
}

function readNumber(file: string): number | undefined {
  try {
    const v = fs.readFileSync(file, 'utf8').trim();
    return /^\d+$/.test(v) ? Number(v) : undefined;
  } catch {
    return undefined;
  }
}

function readKey(file: string, key: string): number | undefined {
  try {
    const m = new RegExp(`^${key} (\\d+)$`, 'm').exec(fs.readFileSync(file, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

function makeDir(dir: string) {
  try {
    fs.mkdirSync(dir);
  } catch (e) {
    throw new CgroupError(`cannot create cgroup ${dir}: ${(e as Error).message}`);
  }
  created.add(dir);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    // a cgroup left by an interrupted run would stay on the host: remove what is still there on exit
    process.on('exit', () => {
      for (const d of created) {
        try {
          fs.rmdirSync(d);
        } catch {
          // still busy: nothing more to do at exit
        }
      }
    });
  }
}

/** Create a cgroup named `name` with these limits. Throws CgroupError when it cannot: never runs without limits. */
export function createCgroup(name: string, limits: CgroupLimits): ContainerCgroup {
  if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new CgroupError(`invalid cgroup name ${JSON.stringify(name)}`);
  let h: ReturnType<typeof hierarchies>;
  try {
    h = hierarchies();
  } catch (e) {
    throw new CgroupError(`cannot read this process's cgroups: ${(e as Error).message}`);
  }
  const quota = limits.milliCpu !== undefined ? Math.max(Math.floor((limits.milliCpu * CFS_PERIOD_US) / 1000), MIN_QUOTA_US) : undefined;
  // kubelet MilliCPUToShares: request * 1024 / 1000, at least 2
  const shares = limits.requestMilliCpu !== undefined ? Math.max(Math.floor((limits.requestMilliCpu * 1024) / 1000), 2) : undefined;
  const dirs: string[] = [];
  const cleanupOnError = (e: unknown): never => {
    for (const d of dirs.reverse()) removeDir(d);
    throw e;
  };
  const memoryBase = h.v1.get('memory');
  if (memoryBase !== undefined) {
    const memoryDir = path.join(memoryBase, name);
    let cpuDir: string | undefined;
    try {
      makeDir(memoryDir);
      dirs.push(memoryDir);
      if (limits.memoryBytes !== undefined) {
        write(path.join(memoryDir, 'memory.limit_in_bytes'), String(limits.memoryBytes));
        // no swap on a node: with swap accounting, the same bound on memory+swap makes the OOM killer act, not swap
        if (fs.existsSync(path.join(memoryDir, 'memory.memsw.limit_in_bytes'))) {
          write(path.join(memoryDir, 'memory.memsw.limit_in_bytes'), String(limits.memoryBytes));
        }
      }
      if (quota !== undefined || shares !== undefined) {
        const cpuBase = h.v1.get('cpu');
        if (cpuBase === undefined) throw new CgroupError('no cgroup v1 cpu hierarchy is mounted');
        cpuDir = path.join(cpuBase, name);
        makeDir(cpuDir);
        dirs.push(cpuDir);
        if (quota !== undefined) {
          write(path.join(cpuDir, 'cpu.cfs_period_us'), String(CFS_PERIOD_US));
          write(path.join(cpuDir, 'cpu.cfs_quota_us'), String(quota));
        }
        if (shares !== undefined) write(path.join(cpuDir, 'cpu.shares'), String(shares));
      }
    } catch (e) {
      cleanupOnError(e);
    }
    const memoryMount = [...fs.readFileSync('/proc/self/cgroup', 'utf8').matchAll(/^\d+:([^:]*):(.*)$/gm)].find((m) => m[1].split(',').includes('memory'));
    return {
      settings: {
        version: 1,
        memoryPath: memoryMount ? path.posix.join(memoryMount[2], name) : undefined,
        memoryLimitBytes: limits.memoryBytes !== undefined ? readNumber(path.join(memoryDir, 'memory.limit_in_bytes')) : undefined,
        cpuQuotaUs: cpuDir && quota !== undefined ? readNumber(path.join(cpuDir, 'cpu.cfs_quota_us')) : undefined,
        cpuPeriodUs: cpuDir && quota !== undefined ? readNumber(path.join(cpuDir, 'cpu.cfs_period_us')) : undefined,
      },
      procsFiles: [memoryDir, ...(cpuDir ? [cpuDir] : [])].map((d) => path.join(d, 'cgroup.procs')),
      dirs,
      memoryDir,
      cpuDir,
    };
  }
  if (h.v2 !== undefined) {
    const dir = path.join(h.v2, name);
    try {
      // controllers must be enabled for the children of our own cgroup (fails if it holds processes and is not the root)
      write(path.join(h.v2, 'cgroup.subtree_control'), '+memory +cpu');
      makeDir(dir);
      dirs.push(dir);
      if (limits.memoryBytes !== undefined) {
        write(path.join(dir, 'memory.max'), String(limits.memoryBytes));
        if (fs.existsSync(path.join(dir, 'memory.swap.max'))) write(path.join(dir, 'memory.swap.max'), '0');
      }
      if (quota !== undefined) write(path.join(dir, 'cpu.max'), `${quota} ${CFS_PERIOD_US}`);
      // kubelet CpuSharesToCpuWeight (pkg/kubelet/cm/cgroup_manager_linux.go)
      if (shares !== undefined) write(path.join(dir, 'cpu.weight'), String(Math.floor(1 + ((shares - 2) * 9999) / 262142)));
    } catch (e) {
      cleanupOnError(e);
    }
    const cpuMax = quota !== undefined ? fs.readFileSync(path.join(dir, 'cpu.max'), 'utf8').trim().split(' ') : undefined;
    const own = /^0::(.*)$/m.exec(fs.readFileSync('/proc/self/cgroup', 'utf8'));
    return {
      settings: {
        version: 2,
        memoryPath: own ? path.posix.join(own[1], name) : undefined,
        memoryLimitBytes: limits.memoryBytes !== undefined ? readNumber(path.join(dir, 'memory.max')) : undefined,
        cpuQuotaUs: cpuMax ? Number(cpuMax[0]) : undefined,
        cpuPeriodUs: cpuMax ? Number(cpuMax[1]) : undefined,
      },
      procsFiles: [path.join(dir, 'cgroup.procs')],
      dirs,
      memoryDir: dir,
      cpuDir: dir,
    };
  }
  throw new CgroupError('neither a cgroup v1 memory hierarchy nor cgroup v2 is mounted');
}

/** After the container's processes are gone: its peak memory and whether the kernel's OOM killer killed in it. */
export function cgroupOutcome(cg: ContainerCgroup): { peakMemoryBytes?: number; oomKilled: boolean } {
  if (!cg.memoryDir) return { oomKilled: false };
  if (cg.settings.version === 1) {
    return {
      peakMemoryBytes: readNumber(path.join(cg.memoryDir, 'memory.max_usage_in_bytes')),
      oomKilled: (readKey(path.join(cg.memoryDir, 'memory.oom_control'), 'oom_kill') ?? 0) > 0,
    };
  }
  return {
    peakMemoryBytes: readNumber(path.join(cg.memoryDir, 'memory.peak')),
    oomKilled: (readKey(path.join(cg.memoryDir, 'memory.events'), 'oom_kill') ?? 0) > 0,
  };
}

function removeDir(dir: string): boolean {
  try {
    fs.rmdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') return false;
  }
  created.delete(dir);
  return true;
}

/** Remove the cgroup (its processes must be gone; exiting ones get a few seconds). Throws if it stays. */
export async function removeCgroup(cg: ContainerCgroup): Promise<void> {
  for (const dir of [...cg.dirs].reverse()) {
    let ok = removeDir(dir);
    for (let i = 0; !ok && i < 50; i++) {
      await new Promise((r) => setTimeout(r, 100));
      ok = removeDir(dir);
    }
    if (!ok) throw new CgroupError(`cannot remove cgroup ${dir}: processes are still in it (${fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').trim().split('\n').join(' ')})`);
  }
}
