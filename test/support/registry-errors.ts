/**
 * Runs the step scripts' registry error classifier (src/modelcar/scripts/registry-errors.sh, the file the
 * constructs embed into each step script) in a real shell, on error texts written to files as the steps write
 * skopeo's stderr.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

export const CLASSIFIER = path.join(__dirname, '..', '..', 'src', 'modelcar', 'scripts', 'registry-errors.sh');

/**
 * The shells a step may run it in: dash (Debian's /bin/sh), bash (the UBI images' /bin/sh), BusyBox ash with
 * BusyBox's own grep and tail (a minimal image).
 */
export type Shell = 'dash' | 'bash' | 'busybox';
export const SHELLS: readonly Shell[] = ['dash', 'bash', 'busybox'];

export interface Diagnosis {
  /** `registry_error_class`. */
  readonly klass: string;
  /** `registry_error_explain FILE push 3` (empty unless asked for). */
  readonly push: string;
  /** `registry_error_explain FILE pull ''` (empty unless asked for). */
  readonly pull: string;
}

/** Classifies each text (a tool's whole stderr) with the classifier, in one shell process; `explain` adds the sentences. */
export function diagnose(texts: readonly string[], shell: Shell = 'dash', explain = false): Diagnosis[] {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'registry-errors-'));
  try {
    const files = texts.map((t, i) => {
      const f = path.join(dir, `${i}.err`);
      fs.writeFileSync(f, t);
      return f;
    });
    const sentences = explain ? '"$(registry_error_explain "$f" push 3)" "$(registry_error_explain "$f" pull \'\')"' : '"" ""';
    const script = `set -eu\n. "$1"\nshift\nfor f; do\n  printf "%s\\t%s\\t%s\\n" "$(registry_error_class "$f")" ${sentences}\ndone\n`;
    let cmd: string;
    let env: NodeJS.ProcessEnv = { PATH: '/usr/bin:/bin', LC_ALL: 'C' };
    if (shell === 'busybox') {
      // Only BusyBox on PATH: its ash, grep and tail, as in a minimal image.
      const bin = path.join(dir, 'bin');
      fs.mkdirSync(bin);
      const busybox = ['/usr/bin/busybox', '/bin/busybox'].find((p) => fs.existsSync(p));
      if (!busybox) throw new Error('busybox is missing: install it with bash scripts/install-test-tools.sh');
      for (const applet of ['sh', 'grep', 'tail', 'cat', 'printf', 'echo']) fs.symlinkSync(busybox, path.join(bin, applet));
      cmd = path.join(bin, 'sh');
      env = { PATH: bin, LC_ALL: 'C' };
    } else {
      cmd = shell;
    }
    const args = ['-c', script, 'registry-errors-test', CLASSIFIER, ...files];
    const r = spawnSync(cmd, args, { encoding: 'utf8', env });
    if (r.error || r.status !== 0) {
      throw new Error(`${shell} running ${CLASSIFIER} failed (${r.error?.message ?? `exit ${r.status}`}): ${r.stderr}`);
    }
    const lines = r.stdout.split('\n').filter((l) => l !== '');
    if (lines.length !== texts.length) throw new Error(`expected ${texts.length} diagnoses from ${shell}, got:\n${r.stdout}\n${r.stderr}`);
    return lines.map((l) => {
      const [klass, push, pull] = l.split('\t');
      return { klass, push, pull };
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
