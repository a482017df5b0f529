/**
 * Jest global setup: one temp root for the whole run.
 *
 * Every test's temp files go under it: `TMPDIR` points there, so `os.tmpdir()` in the test
 * workers (cdk8s `Testing.app()` makes a `cdk8s.outdir.*` folder there for every chart), the
 * e2e work dirs (`freshWorkDir`) and the consumer app all land in one place that
 * `global-teardown.ts` checks and removes. Jest starts its workers after this runs, so they
 * inherit the environment set here.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { RUN_ROOT_ENV } from './run-root';

export default function globalSetup(): void {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'modelcar-test-'));
  // Like /tmp: host tools the e2e tests run under other uids (setpriv) write their temp files here.
  fs.chmodSync(root, 0o1777);
  process.env[RUN_ROOT_ENV] = root;
  process.env.TMPDIR = root;
}
