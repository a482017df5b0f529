/** Disk figures for the benchmark: du of a directory, once or sampled while something runs. */
import { execFileSync, spawn } from 'child_process';

/** Bytes under a directory (du -sb). */
export function duBytes(dir: string): number {
  return Number(execFileSync('du', ['-sb', dir], { encoding: 'utf8' }).split('\t')[0]);
}

/** Peak of `du -sb dir` sampled every 250 ms while `during` runs, minus the value at the first sample after `mark()`. */
export function sampleDisk(dir: string): { mark: () => void; stop: () => Promise<number> } {
  let baseline: number | undefined;
  let wantMark = false;
  let peak = 0;
  let stopped = false;
  let busy: Promise<void> = Promise.resolve();
  const du = () => new Promise<number>((resolve) => {
    const p = spawn('du', ['-sb', dir], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    p.stdout.on('data', (b) => (out += b));
    p.on('close', () => resolve(Number(out.split('\t')[0]) || 0));
  });
  const tick = async () => {
    const v = await du();
    if (wantMark) {
      baseline = v;
      wantMark = false;
    }
    if (baseline !== undefined) peak = Math.max(peak, v);
  };
  const timer = setInterval(() => {
    if (!stopped) busy = busy.then(tick);
  }, 250);
  return {
    mark: () => {
      wantMark = true;
    },
    stop: async () => {
      stopped = true;
      clearInterval(timer);
      await busy;
      return baseline === undefined ? 0 : Math.max(0, peak - baseline);
    },
  };
}
