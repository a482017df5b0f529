/**
 * Jest global teardown: leaves the host as the run found it.
 *
 * Checks that nothing of the run is left (a mount under its temp root, a process it started),
 * ends what is, then removes the root. Anything found fails the run: a test that leaves a
 * registry running or a volume mounted is a bug to fix, not to hide.
 * `MODELCAR_KEEP_TEST_TMP=1` keeps the root (work dirs, logs) to read after a failure.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import { KEEP_ENV, mountsUnder, processesOf, RUN_ROOT_ENV } from './run-root';

export default function globalTeardown(): void {
  const root = process.env[RUN_ROOT_ENV];
  if (!root) throw new Error(`global teardown: ${RUN_ROOT_ENV} is not set: test/support/global-setup.ts did not run`);
  const problems: string[] = [];

  const processes = processesOf(root);
  for (const p of processes) {
    problems.push(`process ${p.pid} still running: ${p.command}`);
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // exited meanwhile
    }
  }
  for (const m of mountsUnder(root)) {
    problems.push(`still mounted: ${m}`);
    spawnSync('umount', [m]);
  }
  const stuck = mountsUnder(root);
  if (process.env[KEEP_ENV]) {
    process.stderr.write(`\nkept the test run's temp root (${KEEP_ENV}): ${root}\n`);
  } else if (stuck.length === 0) {
    fs.rmSync(root, { recursive: true, force: true });
  } else {
    // Removing it now would delete through the mount into whatever is mounted there.
    problems.push(`left ${root} in place: cannot unmount ${stuck.join(', ')}`);
  }
  if (problems.length > 0) {
    throw new Error(`the test run left these behind (ended or unmounted now where possible):\n  ${problems.join('\n  ')}`);
  }
}
