import { ChildProcess, spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { mountsUnder, processesOf, RUN_ROOT_ENV } from './run-root';

describe('mountsUnder', () => {
  test('finds mount points at or under the directory, escaped as in mountinfo, deepest first', () => {
    const mountinfo = [
      '22 1 252:0 / / rw,relatime shared:1 - ext4 /dev/vda rw',
      '90 22 0:50 / /tmp/run\\040x/vol rw - tmpfs tmpfs rw',
      '91 90 0:51 / /tmp/run\\040x/vol/inner rw - tmpfs tmpfs rw',
      '92 22 0:52 / /tmp/run\\040xy rw - tmpfs tmpfs rw',
      '',
    ].join('\n');
    expect(mountsUnder('/tmp/run x', mountinfo)).toEqual(['/tmp/run x/vol/inner', '/tmp/run x/vol']);
  });

  test('sees a real mount (tmpfs) and no longer after umount', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mounts-'));
    const target = path.join(dir, 'vol');
    fs.mkdirSync(target);
    try {
      const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', target], { encoding: 'utf8' });
      expect(r.stderr).toBe('');
      expect(mountsUnder(dir)).toEqual([target]);
    } finally {
      spawnSync('umount', [target]);
    }
    expect(mountsUnder(dir)).toEqual([]);
    fs.rmSync(dir, { recursive: true });
  });
});

/** Resolves once the child has exec'd its command line `argv` (before that, /proc shows a copy of this node). */
async function started(child: ChildProcess, argv: string[]): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      if (fs.readFileSync(`/proc/${child.pid}/cmdline`, 'utf8') === `${argv.join('\0')}\0`) return;
    } catch {
      // not there yet
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`${argv.join(' ')} (pid ${child.pid}) did not start`);
}

async function end(children: ChildProcess[]): Promise<void> {
  await Promise.all(children.map((c) => new Promise((resolve) => {
    if (c.exitCode !== null || c.signalCode !== null) return resolve(undefined);
    c.once('exit', resolve);
    c.kill('SIGKILL');
  })));
}

describe('processesOf', () => {
  test('finds processes by inherited environment, command line or work dir, and no other', async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'procs-'));
    const opts = { env: { PATH: process.env.PATH }, stdio: 'ignore' as const };
    const sleep = ['sleep', '30'];
    // A registry-like process: a fresh environment, its config under the root on the command line.
    const waitArgv = [process.execPath, '-e', 'setTimeout(() => {}, 30000)', path.join(root, 'config.yml')];
    const byEnv = spawn('sleep', ['30'], { ...opts, env: { ...opts.env, [RUN_ROOT_ENV]: root } });
    const byArgs = spawn(waitArgv[0], waitArgv.slice(1), opts);
    const byCwd = spawn('sleep', ['30'], { ...opts, cwd: root });
    const unrelated = spawn('sleep', ['30'], { ...opts, env: { ...opts.env, [RUN_ROOT_ENV]: `${root}-other` } });
    const children = [byEnv, byArgs, byCwd, unrelated];
    try {
      await Promise.all([started(byEnv, sleep), started(byArgs, waitArgv), started(byCwd, sleep), started(unrelated, sleep)]);
      const pids = processesOf(root).map((p) => p.pid).sort((a, b) => a - b);
      expect(pids).toEqual([byEnv.pid, byArgs.pid, byCwd.pid].sort((a, b) => a! - b!));
    } finally {
      await end(children);
      fs.rmSync(root, { recursive: true });
    }
  });
});
