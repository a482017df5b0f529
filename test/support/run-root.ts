/**
 * The test run's temp root (see global-setup.ts) and what may still be using it at the end:
 * mounts under it and processes the run started.
 */
import * as fs from 'fs';
import * as path from 'path';

/** The environment variable naming the run's temp root; every process the run starts inherits it. */
export const RUN_ROOT_ENV = 'MODELCAR_TEST_RUN_ROOT';

/** Keep the run's temp root (logs, work dirs) instead of removing it at the end. */
export const KEEP_ENV = 'MODELCAR_KEEP_TEST_TMP';

/** Decodes the octal escapes of /proc/self/mountinfo (`\040` for a space, `\134` for a backslash). */
function unescapeMountPath(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** True when `p` is `dir` or inside it. */
function within(p: string, dir: string): boolean {
  return p === dir || p.startsWith(dir.endsWith('/') ? dir : `${dir}/`);
}

/**
 * Mount points at or under `dir` in this process's mount namespace, deepest first (the order
 * to unmount them). The e2e runner mounts only in private namespaces that die with their step,
 * so any mount here outlived its test.
 */
export function mountsUnder(dir: string, mountinfo = fs.readFileSync('/proc/self/mountinfo', 'utf8')): string[] {
  return mountinfo.split('\n').filter(Boolean)
    .map((line) => unescapeMountPath(line.split(' ')[4]))
    .filter((mountPoint) => within(mountPoint, dir))
    .sort((a, b) => b.length - a.length);
}

/** A process found by `processesOf`. */
export interface RunProcess {
  readonly pid: number;
  readonly command: string;
}

/**
 * Live processes of the run that owns `root`, other than `exclude`: those that inherited the
 * run's environment (`RUN_ROOT_ENV=root`), plus those started with a fresh environment (the
 * e2e runner's steps, registries) that name the root on their command line or work in it.
 * Zombies are skipped: they hold nothing and their parent reaps them.
 */
export function processesOf(root: string, exclude: readonly number[] = [process.pid]): RunProcess[] {
  const marker = `${RUN_ROOT_ENV}=${root}`;
  const found: RunProcess[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (exclude.includes(pid)) continue;
    const dir = path.join('/proc', entry);
    try {
      // "pid (comm) S ...": the state follows the last ')'.
      const stat = fs.readFileSync(path.join(dir, 'stat'), 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue;
      const cmdline = fs.readFileSync(path.join(dir, 'cmdline'), 'utf8').split('\0').filter(Boolean);
      const environ = fs.readFileSync(path.join(dir, 'environ'), 'utf8').split('\0');
      let cwd = '';
      try {
        cwd = fs.readlinkSync(path.join(dir, 'cwd'));
      } catch {
        // a kernel thread or another user's process we cannot inspect
      }
      if (environ.includes(marker) || cmdline.some((a) => a.includes(root)) || within(cwd, root)) {
        found.push({ pid, command: cmdline.join(' ') });
      }
    } catch {
      // gone while we looked, or not ours to read
    }
  }
  return found;
}
