/**
 * The clean-up step's script (scripts/clean-up.sh), run with /bin/sh on a temporary "volume":
 * it removes exactly this run's directory and refuses anything else. The end-to-end scenarios
 * run it as the pipeline's finally task.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadScript } from '../../src/modelcar/scripts';

describe('clean-up.sh', () => {
  let volume: string;
  let script: string;
  beforeEach(() => {
    volume = fs.mkdtempSync(path.join(os.tmpdir(), 'clean-up-'));
    script = path.join(volume, '..', `${path.basename(volume)}.sh`);
    fs.writeFileSync(script, loadScript('clean-up.sh'));
    for (const run of ['run-a', 'run-b']) {
      fs.mkdirSync(path.join(volume, 'modelcar-runs', run, 'model', 'sub'), { recursive: true });
      fs.writeFileSync(path.join(volume, 'modelcar-runs', run, 'model', 'sub', 'weights.bin'), Buffer.alloc(4096, 1));
      fs.writeFileSync(path.join(volume, 'modelcar-runs', run, 'SHA256SUMS'), '');
    }
  });
  afterEach(() => {
    fs.rmSync(volume, { recursive: true, force: true });
    fs.rmSync(script, { force: true });
  });

  const run = (env: Record<string, string>) => {
    const r = spawnSync('/bin/sh', [script], { env: { PATH: process.env.PATH, WORKSPACE: volume, RUN_STATUS: 'Failed', ...env }, encoding: 'utf8' });
    return { status: r.status, out: r.stdout, err: r.stderr };
  };
  const runs = () => fs.readdirSync(path.join(volume, 'modelcar-runs')).sort();

  test('removes this run\'s directory and nothing beside it, and says what it freed', () => {
    const r = run({ RUN_ID: 'run-a', RUN_DIR: `${volume}/modelcar-runs/run-a` });
    expect(r).toMatchObject({ status: 0, err: '' });
    expect(r.out).toContain('run status: Failed');
    expect(r.out).toContain(`removed ${volume}/modelcar-runs/run-a`);
    expect(r.out).toMatch(/free space before:[\s\S]*free space after:/);
    expect(runs()).toEqual(['run-b']);
    expect(fs.readdirSync(path.join(volume, 'modelcar-runs', 'run-b', 'model', 'sub'))).toEqual(['weights.bin']);
  });

  test('a run that wrote nothing (its image was published): nothing to remove, success', () => {
    const r = run({ RUN_ID: 'run-c', RUN_DIR: `${volume}/modelcar-runs/run-c` });
    expect(r.status).toBe(0);
    expect(r.out).toContain(`nothing to remove: ${volume}/modelcar-runs/run-c does not exist`);
    expect(runs()).toEqual(['run-a', 'run-b']);
  });

  test('fails when the directory is not this run\'s, or the run id is not a plain name, and removes nothing', () => {
    expect(run({ RUN_ID: 'run-a', RUN_DIR: `${volume}/modelcar-runs` })).toMatchObject({
      status: 1, err: `refusing to remove ${volume}/modelcar-runs: not this run's directory (${volume}/modelcar-runs/run-a)\n`,
    });
    expect(run({ RUN_ID: 'run-a', RUN_DIR: `${volume}/modelcar-runs/run-b` }).status).toBe(1);
    for (const id of ['', '..', 'a/../..', 'a b']) {
      const r = run({ RUN_ID: id, RUN_DIR: `${volume}/modelcar-runs/${id}` });
      expect(r.status).toBe(1);
      expect(r.err).toContain(`RUN_ID "${id}" is not a plain name`);
    }
    expect(runs()).toEqual(['run-a', 'run-b']);
  });
});
