/**
 * The synthetic model's bf16-like weights compress like real bf16 weights (gzip keeps 80-90%), which the pull
 * stage of the benchmark relies on to charge a gzip layer its inflate; random weights stay incompressible.
 * A generator that regressed to random bytes (or to something gzip squeezes far more) fails here.
 */
import * as fs from 'fs';
import * as path from 'path';
import { gzipSync } from 'zlib';
import { describeModelDir, reviseShard, writeSyntheticModel } from './model-fixture';
import { freshWorkDir } from './tools';

const MiB = 1024 * 1024;
let work: string;

beforeAll(() => {
  work = freshWorkDir('model-fixture');
});

afterAll(() => {
  fs.rmSync(work, { recursive: true, force: true });
});

/** gzip (default level, as containers/image compresses layers) size over size, of the data after the header. */
function gzipKeeps(file: string): number {
  const data = fs.readFileSync(file).subarray(264);
  return gzipSync(data).length / data.length;
}

test('bf16 shards: gzip keeps 80-90%, the high byte takes 12 values, the same seed gives the same bytes', async () => {
  const model = await writeSyntheticModel(path.join(work, 'bf16'), { totalBytes: 4 * MiB, files: 2, weights: 'bf16' });
  const shard = path.join(model.dir, 'model-00001-of-00002.safetensors');
  const kept = gzipKeeps(shard);
  expect(kept).toBeGreaterThan(0.8);
  expect(kept).toBeLessThan(0.9);
  const data = fs.readFileSync(shard).subarray(264);
  const high = new Set<number>();
  const low = new Set<number>();
  for (let i = 0; i + 1 < data.length; i += 2) {
    low.add(data[i]);
    high.add(data[i + 1]);
  }
  expect(high.size).toBe(12);
  expect(low.size).toBe(256);
  const again = await writeSyntheticModel(path.join(work, 'bf16-again'), { totalBytes: 4 * MiB, files: 2, weights: 'bf16' });
  expect(again.files).toEqual(model.files);
  expect(model.weights).toBe('bf16');
});

test('random shards stay incompressible', async () => {
  const model = await writeSyntheticModel(path.join(work, 'random'), { totalBytes: 2 * MiB, files: 1 });
  expect(gzipKeeps(path.join(model.dir, 'model.safetensors'))).toBeGreaterThan(0.99);
});

test('reviseShard changes that shard only and leaves the previous revision as it was', async () => {
  const model = await writeSyntheticModel(path.join(work, 'rev1'), { totalBytes: 4 * MiB, files: 2, weights: 'bf16' });
  const before = model.files.map((f) => ({ ...f }));
  const next = await reviseShard(model, path.join(work, 'rev2'), 'model-00002-of-00002.safetensors', 'rev2');
  const changed = next.files.filter((f, i) => f.sha256 !== model.files[i].sha256).map((f) => f.path);
  expect(changed).toEqual(['model-00002-of-00002.safetensors']);
  expect(next.files.map((f) => f.size)).toEqual(model.files.map((f) => f.size));
  expect(await describeModelDir(model.dir)).toEqual(before);
  expect(await describeModelDir(next.dir)).toEqual(next.files);
  const kept = gzipKeeps(path.join(next.dir, 'model-00002-of-00002.safetensors'));
  expect(kept).toBeGreaterThan(0.8);
  expect(kept).toBeLessThan(0.9);
});
