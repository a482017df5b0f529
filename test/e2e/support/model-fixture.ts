/**
 * STAND-IN FOR THE HUGGING FACE HUB DOWNLOAD. The tests have no internet, so instead of
 * `huggingface-cli download <repo>` / `snapshot_download()` they write a synthetic model directory that looks
 * like a Hugging Face snapshot: `config.json`, `tokenizer.json` and sharded safetensors weights
 * (`model-00001-of-00002.safetensors`, ... plus `model.safetensors.index.json`, or one `model.safetensors`).
 * This is the ONLY stub in the e2e tests: everything else (registries, buildah, skopeo) is the real tool.
 *
 * Every safetensors file is valid: 8-byte little-endian header length, a JSON header (padded with spaces to
 * 256 bytes) describing one U8 tensor, then the tensor bytes. The bytes are pseudo-random (AES-256-CTR
 * keystream keyed by sha256(seed/file name): seeded, deterministic, incompressible like real weights, ~1 GB/s),
 * written in 1 MiB chunks, so ~2 GB streams without being held in memory. Same seed and sizes => same files.
 * Sizes: the files add up to exactly `totalBytes`.
 *
 * `weights: 'bf16'` makes the shards compress like real bf16 weights instead (for what a compressed layer costs,
 * e.g. the inflate a node pays when it pulls a gzip layer): every byte pair is a little-endian bf16 whose low byte
 * (7 mantissa bits and the exponent's last bit) is the keystream and whose high byte (sign and the exponent's top
 * 7 bits) takes one of 12 values, as in trained weights, whose magnitudes span a few powers of two around 2^-6.
 * gzip keeps about 83% of it (model-fixture.test.ts checks 80-90%); real bf16 checkpoints keep 80-90% too,
 * where random bytes keep 100%.
 */
import { createCipheriv, createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';

export interface SyntheticModelOptions {
  /** Total size of all the files written, in bytes (exact). */
  readonly totalBytes: number;
  /** Number of safetensors shards. Default 2 (one => `model.safetensors`, no index). */
  readonly files?: number;
  /** Seed of the pseudo-random weights. Default 'cdk8s-modelcar-tekton'. */
  readonly seed?: string;
  /** 'random' (default): incompressible bytes; 'bf16': bytes that compress like bf16 weights (module comment). */
  readonly weights?: WeightBytes;
}

export type WeightBytes = 'random' | 'bf16';

export interface ModelFile {
  /** Path relative to the model directory, '/'-separated. */
  readonly path: string;
  readonly size: number;
  /** Hex sha256 of the content. */
  readonly sha256: string;
}

export interface SyntheticModel {
  readonly dir: string;
  /** Every file written, sorted by path. */
  readonly files: ModelFile[];
  readonly totalBytes: number;
  /** What the shards' tensor bytes are like (default 'random'). */
  readonly weights?: WeightBytes;
}

/** Length of the padded safetensors JSON header. */
const HEADER_LEN = 256;
const CHUNK = 1024 * 1024;

function safetensorsHeader(tensorName: string, dataBytes: number): Buffer {
  const json = JSON.stringify({
    __metadata__: { format: 'pt', generator: 'cdk8s-modelcar-tekton synthetic stand-in for a Hugging Face download' },
    [tensorName]: { dtype: 'U8', shape: [dataBytes], data_offsets: [0, dataBytes] },
  });
  if (json.length > HEADER_LEN) throw new Error(`safetensors header longer than ${HEADER_LEN}: ${json}`);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(HEADER_LEN));
  return Buffer.concat([len, Buffer.from(json.padEnd(HEADER_LEN, ' '), 'utf8')]);
}

async function writeSmallFile(file: string, content: string): Promise<{ size: number; sha256: string }> {
  const data = Buffer.from(content, 'utf8');
  await fs.promises.writeFile(file, data);
  return { size: data.length, sha256: createHash('sha256').update(data).digest('hex') };
}

/**
 * The bf16 high byte for each keystream byte: per sign, exponent pairs 2^-2..2^-13 (0x3e down to 0x39), weighted
 * towards the middle (counts out of 128). Sign and magnitude are independent, like weights centred on 0.
 */
const BF16_HIGH_BYTE: Buffer = (() => {
  const counts = [8, 20, 32, 32, 24, 12];
  const half = counts.flatMap((n, i) => Array<number>(n).fill(0x3e - i));
  return Buffer.from([...half, ...half.map((v) => v + 0x80)]); // the same magnitudes with the sign bit set
})();

/** In place: every odd byte (the high byte of a little-endian bf16) becomes one of BF16_HIGH_BYTE's 12 values. */
function asBf16(chunk: Buffer): Buffer {
  for (let i = 1; i < chunk.length; i += 2) chunk[i] = BF16_HIGH_BYTE[chunk[i]];
  return chunk;
}

/** Streams `header` + `dataBytes` pseudo-random bytes (AES-256-CTR keystream of `key`) into `file`; returns its sha256. */
async function writeShard(file: string, header: Buffer, dataBytes: number, key: Buffer, weights: WeightBytes = 'random'): Promise<string> {
  const hash = createHash('sha256');
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16, 0));
  const zeros = Buffer.alloc(CHUNK, 0);
  const fh = await fs.promises.open(file, 'w');
  try {
    hash.update(header);
    await fh.write(header);
    let left = dataBytes;
    while (left > 0) {
      const n = Math.min(left, CHUNK);
      const stream = cipher.update(n === CHUNK ? zeros : zeros.subarray(0, n));
      const chunk = weights === 'bf16' ? asBf16(stream) : stream;
      hash.update(chunk);
      await fh.write(chunk);
      left -= n;
    }
  } finally {
    await fh.close();
  }
  return hash.digest('hex');
}

/**
 * Writes the synthetic model into `dir` (created; existing files of the same names are overwritten)
 * and returns its files with sizes and sha256.
 */
export async function writeSyntheticModel(dir: string, opts: SyntheticModelOptions): Promise<SyntheticModel> {
  const shards = opts.files ?? 2;
  const seed = opts.seed ?? 'cdk8s-modelcar-tekton';
  if (!Number.isInteger(shards) || shards < 1) throw new Error(`files must be a positive integer, got ${shards}`);
  if (!Number.isSafeInteger(opts.totalBytes) || opts.totalBytes < 0) throw new Error(`totalBytes must be a non-negative integer, got ${opts.totalBytes}`);
  fs.mkdirSync(dir, { recursive: true });

  const config = JSON.stringify({
    _comment: 'synthetic model written by the cdk8s-modelcar-tekton e2e tests (stand-in for a Hugging Face download)',
    architectures: ['SyntheticForCausalLM'],
    model_type: 'synthetic',
    torch_dtype: 'uint8',
    num_shards: shards,
  }, null, 2) + '\n';
  const tokenizer = JSON.stringify({
    version: '1.0',
    added_tokens: [{ id: 0, content: '<unk>', special: true }],
    model: { type: 'WordLevel', vocab: { '<unk>': 0, 'hello': 1, 'world': 2 }, unk_token: '<unk>' },
  }, null, 2) + '\n';
  const pad = (n: number) => String(n).padStart(5, '0');
  const shardNames = shards === 1
    ? ['model.safetensors']
    : Array.from({ length: shards }, (_, i) => `model-${pad(i + 1)}-of-${pad(shards)}.safetensors`);
  const tensorName = (i: number) => `model.layers.${i}.weight`;

  // Shard sizes take what config, tokenizer and the index leave; the index's size depends on the shard sizes
  // (total_size), so iterate until stable (2-3 rounds).
  const fixed = Buffer.byteLength(config) + Buffer.byteLength(tokenizer);
  let index = '';
  let dataBytes: number[] = [];
  for (let round = 0; ; round++) {
    const rest = opts.totalBytes - fixed - Buffer.byteLength(index);
    const overhead = 8 + HEADER_LEN;
    if (rest < shards * (overhead + 1)) {
      throw new Error(`totalBytes ${opts.totalBytes} is too small for ${shards} shard(s): need at least ${fixed + Buffer.byteLength(index) + shards * (overhead + 1)}`);
    }
    const per = Math.floor(rest / shards);
    const sizes = shardNames.map((_, i) => (i === shards - 1 ? rest - per * (shards - 1) : per));
    dataBytes = sizes.map((s) => s - overhead);
    const next = shards === 1 ? '' : JSON.stringify({
      metadata: { total_size: dataBytes.reduce((a, b) => a + b, 0) },
      weight_map: Object.fromEntries(shardNames.map((n, i) => [tensorName(i), n])),
    }, null, 2) + '\n';
    if (next === index) break;
    if (round > 10) throw new Error('model index size did not converge');
    index = next;
  }

  const files: ModelFile[] = [];
  const small: Array<[string, string]> = [['config.json', config], ['tokenizer.json', tokenizer]];
  if (index) small.push(['model.safetensors.index.json', index]);
  for (const [name, content] of small) {
    const f = await writeSmallFile(path.join(dir, name), content);
    files.push({ path: name, size: f.size, sha256: f.sha256 });
  }
  for (let i = 0; i < shards; i++) {
    const name = shardNames[i];
    const header = safetensorsHeader(tensorName(i), dataBytes[i]);
    const key = createHash('sha256').update(`${seed}/${name}`).digest();
    const digest = await writeShard(path.join(dir, name), header, dataBytes[i], key, opts.weights);
    files.push({ path: name, size: header.length + dataBytes[i], sha256: digest });
  }
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const totalBytes = files.reduce((a, f) => a + f.size, 0);
  if (totalBytes !== opts.totalBytes) throw new Error(`internal: wrote ${totalBytes} bytes, asked ${opts.totalBytes}`);
  return { dir, files, totalBytes, weights: opts.weights ?? 'random' };
}

/**
 * The next revision of `model` in `dir` (created): every file hard-linked from `model` except the shard `shard`,
 * written anew with the same size and header from `seed` (so only that shard's bytes differ).
 */
export async function reviseShard(model: SyntheticModel, dir: string, shard: string, seed: string): Promise<SyntheticModel> {
  const old = model.files.find((f) => f.path === shard);
  if (!old || !shard.endsWith('.safetensors')) throw new Error(`reviseShard: ${shard} is not a shard of ${model.dir}`);
  fs.mkdirSync(dir, { recursive: true });
  for (const f of model.files) if (f.path !== shard) fs.linkSync(path.join(model.dir, f.path), path.join(dir, f.path));
  const src = await fs.promises.open(path.join(model.dir, shard), 'r');
  const header = Buffer.alloc(8 + HEADER_LEN);
  try {
    await src.read(header, 0, header.length, 0);
  } finally {
    await src.close();
  }
  const key = createHash('sha256').update(`${seed}/${shard}`).digest();
  const sha256 = await writeShard(path.join(dir, shard), header, old.size - header.length, key, model.weights);
  const files = model.files.map((f) => (f.path === shard ? { ...f, sha256 } : f));
  return { dir, files, totalBytes: model.totalBytes, weights: model.weights };
}

/**
 * The next revision of `model` in `dir` (created) in which only the small file `file` (say, config.json) changed:
 * every other file hard-linked from `model`, `file` written anew with `content`.
 */
export async function reviseSmallFile(model: SyntheticModel, dir: string, file: string, content: string): Promise<SyntheticModel> {
  const old = model.files.find((f) => f.path === file);
  if (!old || file.endsWith('.safetensors')) throw new Error(`reviseSmallFile: ${file} is not a small file of ${model.dir}`);
  fs.mkdirSync(dir, { recursive: true });
  for (const f of model.files) if (f.path !== file) fs.linkSync(path.join(model.dir, f.path), path.join(dir, f.path));
  fs.writeFileSync(path.join(dir, file), content);
  const size = Buffer.byteLength(content);
  const sha256 = createHash('sha256').update(content).digest('hex');
  const files = model.files.map((f) => (f.path === file ? { ...f, size, sha256 } : f));
  return { dir, files, totalBytes: model.totalBytes - old.size + size, weights: model.weights };
}

/** sha256 (hex) of a file, streamed. */
export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of fs.createReadStream(file, { highWaterMark: CHUNK })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Every regular file under `dir` with size and sha256, sorted by path: compare it with `SyntheticModel.files`
 * to check a model that went through an image (e.g. /models extracted from the modelcar).
 */
export async function describeModelDir(dir: string): Promise<ModelFile[]> {
  const out: ModelFile[] = [];
  const walk = async (rel: string): Promise<void> => {
    for (const ent of await fs.promises.readdir(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${ent.name}` : ent.name;
      if (ent.isDirectory()) {
        await walk(r);
      } else if (ent.isFile()) {
        const abs = path.join(dir, r);
        out.push({ path: r, size: (await fs.promises.stat(abs)).size, sha256: await sha256File(abs) });
      }
    }
  };
  await walk('');
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
