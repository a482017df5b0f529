/**
 * The OCI layout builder's step script (src/modelcar/scripts/layout-build.py) run on its own with the host's
 * /usr/bin/python3, configured by environment variables as the `layers` step runs it, on a base image layout
 * written by test/e2e/support/base-image.ts. What it writes is read back by the real readers: GNU tar, Python's
 * tarfile (what KServe's oci+fetch mode extracts with) and containers/storage (skopeo copy into a vfs store, as
 * CRI-O and podman pull).
 */
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { buildBaseImageLayout, ociArchitecture } from '../support/base-image';
import { freshWorkDir, repoRoot, requireTools, run } from '../support/tools';

const SCRIPT = path.join(repoRoot(), 'src', 'modelcar', 'scripts', 'layout-build.py');
// -B: no __pycache__ beside the script in src/ (it would reach lib/ and other tests' checks)
const PYTHON = '/usr/bin/python3';
const GiB = 1024 ** 3;

let work: string;

beforeAll(() => {
  requireTools(['tar', 'skopeo', 'busybox']);
  work = freshWorkDir('layout-build');
});

/** Deterministic bytes: a sha256 chain seeded by `seed`, `size` bytes long. */
function bytesOf(seed: string, size: number): Buffer {
  const out = Buffer.alloc(size);
  let block = createHash('sha256').update(seed).digest();
  for (let off = 0; off < size; off += block.length) {
    block.copy(out, off);
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

interface Model {
  readonly dir: string;
  readonly sums: string;
  /** path => size */
  readonly files: Record<string, number>;
}

/** Writes `files` (path => size, content derived from the path) and their SHA256SUMS under `dir`. */
function writeModel(dir: string, files: Record<string, number>): Model {
  const modelDir = path.join(dir, 'model');
  const lines: string[] = [];
  for (const [rel, size] of Object.entries(files)) {
    const data = bytesOf(rel, size);
    fs.mkdirSync(path.dirname(path.join(modelDir, rel)), { recursive: true });
    fs.writeFileSync(path.join(modelDir, rel), data);
    lines.push(`${createHash('sha256').update(data).digest('hex')}  ${rel}`);
  }
  const sums = path.join(dir, 'SHA256SUMS');
  fs.writeFileSync(sums, `${lines.join('\n')}\n`);
  return { dir: modelDir, sums, files };
}

interface Built {
  readonly layout: string;
  readonly manifestDigest: string;
  readonly manifest: any;
  readonly config: any;
  readonly log: string;
  /** index.json, and the blob it names (a manifest, or an image index). */
  readonly index: any;
  readonly top: any;
  blob(digest: string): string;
}

/** Builds the modelcar of `model` into a fresh layout under `dir` with the script, as the `layers` step does. */
async function build(dir: string, model: Model, env: Record<string, string> = {}, octalMax?: number, base: (layout: string) => void = (l) => buildBaseImageLayout(l, { tag: 'base' })): Promise<Built> {
  const layout = path.join(dir, 'image');
  base(layout);
  // With `octalMax`, the script's own code runs with a lower limit for the ustar size field, so that small files
  // take the path of files over 8 GiB.
  const args = octalMax === undefined ? [SCRIPT] : ['-c', `${LOAD_SCRIPT}\noci_image.OCTAL_MAX = ${octalMax}\nlb.main()`];
  const r = await run(PYTHON, ['-B', ...args], {
    env: {
      PATH: process.env.PATH,
      LAYOUT: layout,
      BASE_REF: 'base',
      IMAGE_REF: 'modelcar',
      MODEL_DIR: model.dir,
      SUMS_FILE: model.sums,
      MODEL_REPO: 'e2e-org/layout-model',
      MODEL_REVISION: '0123456789abcdef0123456789abcdef01234567',
      BUILD_CONFIG: 'sha256:0000000000000000000000000000000000000000000000000000000000000000',
      LARGE_FILE_BYTES: '4096',
      MAX_LAYERS: '125',
      MODELS_PATH: '/models',
      ...env,
    },
  });
  const blob = (digest: string) => path.join(layout, 'blobs', 'sha256', digest.replace(/^sha256:/, ''));
  const index = JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8'));
  const manifestDigest: string = index.manifests[0].digest;
  const top = JSON.parse(fs.readFileSync(blob(manifestDigest), 'utf8'));
  // An image index: its first platform's manifest stands for the image in the single-platform checks.
  const manifest = top.manifests ? JSON.parse(fs.readFileSync(blob(top.manifests[0].digest), 'utf8')) : top;
  const config = JSON.parse(fs.readFileSync(blob(manifest.config.digest), 'utf8'));
  return { layout, manifestDigest, manifest, config, log: r.stdout, blob, index, top };
}

/**
 * Python code that loads the step script as module `lb` (its main() runs only as __main__), and the module it shares
 * with the streaming publisher, `oci_image` (where tar_header reads OCTAL_MAX), from beside it as the script does.
 */
const LOAD_SCRIPT = [
  'import importlib.util, sys, tarfile',
  `sys.path.insert(0, ${JSON.stringify(path.dirname(SCRIPT))})`,
  'import oci_image',
  `spec = importlib.util.spec_from_file_location('lb', ${JSON.stringify(SCRIPT)})`,
  'lb = importlib.util.module_from_spec(spec)',
  'spec.loader.exec_module(lb)',
].join('\n');

/** The bytes of the script's tar_header() for a regular file `name` of `size` bytes (no data). */
async function scriptHeader(name: string, size: number): Promise<Buffer> {
  const r = await run(PYTHON, ['-B', '-c', `${LOAD_SCRIPT}\nsys.stdout.write(lb.tar_header(sys.argv[1], int(sys.argv[2]), 0o644, tarfile.REGTYPE).hex())`, name, String(size)]);
  return Buffer.from(r.stdout, 'hex');
}

/** A ustar numeric field as GNU tar, Go's archive/tar and Clair's tarfs read it: base-256 when the top bit is set, else octal. */
function ustarNumber(field: Buffer): number {
  if (field[0] >= 0x80) {
    let n = field[0] - 0x80;
    for (const b of field.subarray(1)) n = n * 256 + b;
    return n;
  }
  const text = field.toString('latin1').replace(/[\0 ]+$/, '').replace(/^[\0 ]+/, '');
  return text === '' ? 0 : parseInt(text, 8);
}

interface TarEntry {
  readonly name: string;
  readonly type: string;
  readonly mode: number;
  /** The size in the ustar field, as a reader that ignores PAX records sees it. */
  readonly ustarSize: number;
  /** The PAX record's size, if any. */
  readonly paxSize?: number;
  /** The size field's 12 bytes, hex. */
  readonly sizeField: string;
  readonly magic: string;
  readonly checksumOk: boolean;
}

/**
 * The entries of a tar held in memory (or its first blocks): each header's fields, its PAX records applied as a
 * PAX reader applies them. Walks by the PAX size when there is one, so it reads archives a PAX-blind reader
 * would misread; `ustarSize` shows what that reader would take.
 */
function tarEntries(tar: Buffer, opts: { headersOnly?: boolean } = {}): TarEntry[] {
  const out: TarEntry[] = [];
  let pax: Record<string, string> = {};
  let off = 0;
  while (off + 512 <= tar.length) {
    const h = tar.subarray(off, off + 512);
    if (h.every((b) => b === 0)) break;
    const sizeField = h.subarray(124, 136);
    const ustarSize = ustarNumber(sizeField);
    const type = String.fromCharCode(h[156]);
    const stored = parseInt(h.subarray(148, 156).toString('latin1').replace(/[\0 ]+$/, ''), 8);
    let sum = 0;
    h.forEach((b, i) => { sum += i >= 148 && i < 156 ? 32 : b; });
    const size = type === 'x' ? ustarSize : Number(pax.size ?? ustarSize);
    const data = tar.subarray(off + 512, off + 512 + size);
    if (type === 'x') {
      pax = {};
      for (const rec of data.toString('utf8').split('\n').filter(Boolean)) {
        const m = /^\d+ ([^=]+)=(.*)$/s.exec(rec);
        if (m) pax[m[1]] = m[2];
      }
    } else {
      const prefix = h.subarray(345, 500).toString('utf8').replace(/\0.*$/s, '');
      const ustarName = h.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '');
      out.push({
        name: pax.path ?? (prefix ? `${prefix}/${ustarName}` : ustarName),
        type,
        mode: ustarNumber(h.subarray(100, 108)),
        ustarSize,
        paxSize: pax.size === undefined ? undefined : Number(pax.size),
        sizeField: sizeField.toString('hex'),
        magic: h.subarray(257, 265).toString('latin1'),
        checksumOk: stored === sum,
      });
      pax = {};
      if (opts.headersOnly) return out;
    }
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

/** A tar of the script's header for a `size`-byte file and holes for its data: a sparse file, no data written. */
function headerOnlyTar(file: string, header: Buffer, size: number): void {
  fs.writeFileSync(file, header);
  fs.truncateSync(file, header.length + Math.ceil(size / 512) * 512 + 1024);
}

describe('files over 8 GiB (containers/olot#210)', () => {
  const BIG = 9 * GiB + 123; // 9663676539 bytes
  const NAME = 'models/model-q8_0.gguf';

  test('the ustar size field holds a file over 8 GiB in base-256, beside the PAX size record; the checksum is valid', async () => {
    const header = await scriptHeader(NAME, BIG);
    // A PAX extended header (its block and one block of records), then the ustar header: 3 blocks.
    expect(header.length).toBe(3 * 512);
    expect(header.subarray(512, 1024).toString('utf8')).toContain(`size=${BIG}\n`);
    const [entry] = tarEntries(header, { headersOnly: true });
    expect(entry).toMatchObject({ name: NAME, type: '0', mode: 0o644, magic: 'ustar\u000000', checksumOk: true, paxSize: BIG });
    // 0x80 marks base-256; 9663676539 = 0x24000007b, big-endian in the 11 bytes after it.
    expect(entry.sizeField).toBe('80000000000000024000007b');
    expect(entry.ustarSize).toBe(BIG);
    // What Python's tarfile writes on its own (the script before this change): 0 in the ustar field, the size
    // only in the PAX record; a reader that skips PAX records (Clair's tarfs: "bad block") sees an empty file.
    const plain = await run(PYTHON, ['-B', '-c', `import sys, tarfile
t = tarfile.TarInfo(sys.argv[1]); t.size = int(sys.argv[2])
sys.stdout.write(t.tobuf(format=tarfile.PAX_FORMAT).hex())`, NAME, String(BIG)]);
    expect(tarEntries(Buffer.from(plain.stdout, 'hex'), { headersOnly: true })[0]).toMatchObject({ paxSize: BIG, ustarSize: 0 });
  });

  test('at 8 GiB - 1 (the octal maximum) nothing changes; one byte more takes base-256', async () => {
    const max = 8 ** 11 - 1;
    const [atMax] = tarEntries(await scriptHeader(NAME, max), { headersOnly: true });
    expect(atMax).toMatchObject({ ustarSize: max, paxSize: undefined, sizeField: Buffer.from('77777777777\0').toString('hex') });
    const [over] = tarEntries(await scriptHeader(NAME, max + 1), { headersOnly: true });
    expect(over).toMatchObject({ ustarSize: max + 1, paxSize: max + 1, sizeField: '800000000000000200000000' });
  });

  test('GNU tar and Python\'s tarfile list the size of a 9 GiB file from a header-only archive', async () => {
    const file = path.join(work, 'big-header-only.tar');
    headerOnlyTar(file, await scriptHeader(NAME, BIG), BIG);
    // Sparse: nothing of the 9 GiB is on disk.
    expect(fs.statSync(file).blocks * 512).toBeLessThan(1024 * 1024);
    const gnu = await run('tar', ['-tvf', file]);
    expect(gnu.stdout.trim()).toBe(`-rw-r--r-- 0/0      ${BIG} 1970-01-01 00:00 ${NAME}`);
    expect(gnu.stderr).toBe('');
    const py = await run(PYTHON, ['-B', '-c', 'import sys, tarfile\nfor m in tarfile.open(sys.argv[1]): print(m.name, m.size)', file]);
    expect(py.stdout.trim()).toBe(`${NAME} ${BIG}`);
    fs.rmSync(file);
  });

  test('GNU tar, Python\'s tarfile and containers/storage (skopeo into a vfs store) extract layers written through the base-256 path', async () => {
    // The script with the ustar limit lowered to 1000 bytes: every file over it gets the headers of a file over 8 GiB.
    const dir = path.join(work, 'base256');
    const files = { 'config.json': 600, 'model-00001-of-00002.safetensors': 20_000, 'model-00002-of-00002.safetensors': 9_000, 'tokenizer/tokenizer.json': 5_000 };
    const model = writeModel(dir, files);
    const b = await build(dir, model, {}, 1000);
    const entries = b.manifest.layers.slice(1).flatMap((l: any) => tarEntries(fs.readFileSync(b.blob(l.digest))));
    const regular = entries.filter((e: TarEntry) => e.type === '0');
    // The large files' layers first, then the small files' layer (config.json, under the 4 KiB threshold) on top.
    const layerOrder = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'tokenizer/tokenizer.json', 'config.json'] as const;
    expect(regular.map((e: TarEntry) => [e.name, e.ustarSize])).toEqual(layerOrder.map((p) => [`models/${p}`, files[p]]));
    // The path under test was taken: base-256 size fields and PAX records for all but the 600-byte file.
    expect(regular.filter((e: TarEntry) => e.sizeField.startsWith('80')).map((e: TarEntry) => e.paxSize)).toEqual([20_000, 9_000, 5_000]);
    expect(entries.every((e: TarEntry) => e.checksumOk)).toBe(true);

    const expected = Object.keys(files).sort().map((p) => `${createHash('sha256').update(bytesOf(p, files[p as keyof typeof files])).digest('hex')}  ${p}`);
    const sums = async (root: string) => (await run('sh', ['-c', 'cd "$1" && find . -type f | sed "s|^\\./||" | LC_ALL=C sort | xargs sha256sum', 'sh', root])).stdout.trim().split('\n');
    // GNU tar
    const gnuRoot = path.join(dir, 'gnu-tar');
    fs.mkdirSync(gnuRoot);
    let gnuErrors = '';
    for (const l of b.manifest.layers.slice(1)) gnuErrors += (await run('tar', ['-xf', b.blob(l.digest), '-C', gnuRoot])).stderr;
    expect(await sums(path.join(gnuRoot, 'models'))).toEqual(expected);
    expect(gnuErrors).toBe('');
    // Python's tarfile, as KServe's oci+fetch extracts (streaming mode; its data filter where this Python has it:
    // 3.11.4 and later, Debian 12 has 3.11.2)
    const pyRoot = path.join(dir, 'python');
    await run(PYTHON, ['-B', '-c', `import sys, tarfile
kw = {'filter': 'data'} if hasattr(tarfile, 'data_filter') else {}
for f in sys.argv[2:]:
    with tarfile.open(f, 'r|') as t: t.extractall(sys.argv[1], **kw)`, pyRoot,
    ...b.manifest.layers.slice(1).map((l: any) => b.blob(l.digest))]);
    expect(await sums(path.join(pyRoot, 'models'))).toEqual(expected);
    // containers/storage (CRI-O, podman): skopeo applies every layer into a vfs store; the top layer's directory is
    // the image's root file system.
    const storage = path.join(dir, 'storage');
    await run('skopeo', ['copy', '--quiet', `oci:${b.layout}:modelcar`, `containers-storage:[vfs@${storage}/root+${storage}/runroot]localhost/base256:latest`]);
    const layers = JSON.parse(fs.readFileSync(path.join(storage, 'root', 'vfs-layers', 'layers.json'), 'utf8'));
    const top = layers.find((l: any) => !layers.some((o: any) => o.parent === l.id));
    expect(layers).toHaveLength(b.manifest.layers.length);
    expect(await sums(path.join(storage, 'root', 'vfs', 'dir', top.id, 'models'))).toEqual(expected);
  });
});

describe('reproducible layers', () => {
  test('files under 8 GiB keep their headers: a fixed model\'s layers have the digests the builder gave them before the base-256 change', async () => {
    // Layer digests do not depend on the base image (the manifest's does: it names the host's busybox layer).
    // These are what layout-build.py wrote for this model before it knew base-256 sizes (commit a1db3bd): a change
    // of these digests changes every published image, and must be a deliberate one.
    const dir = path.join(work, 'golden');
    const model = writeModel(dir, {
      'config.json': 300,
      'model-00001-of-00002.safetensors': 20_000,
      'model-00002-of-00002.safetensors': 9_000,
      'tokenizer/tokenizer.json': 5_000,
      // over 100 bytes: a PAX path record
      [`deep/${'d'.repeat(90)}/long-name-${'n'.repeat(40)}.bin`]: 700,
    });
    const b = await build(dir, model);
    // The small files' layer moved on top (plan_layers: a config-only revision then re-creates one small layer on a
    // node): every layer keeps its digest, only their order (and so the manifest's digest) changed.
    expect(b.manifest.layers.slice(1).map((l: any) => l.digest)).toEqual([
      'sha256:a3b15afb7e075c356d60d3d051aade4c9c6f533cc420fb62686fe99036de84f4', // model-00001-of-00002.safetensors
      'sha256:dc20a8240bccf1f53ebbc363ed5400188aa946461d944cc178c275209b3ab9e5', // model-00002-of-00002.safetensors
      'sha256:f772d5412955a7812663f1384f437e29d2fea55dbea3db2d82cb941f4687860f', // tokenizer/tokenizer.json
      'sha256:f4769ece21f8f255e745ae27a5aa99ef019c290efa9cd6e041e212031275796f', // config.json and the long name (small files)
    ]);
    expect(b.manifest.layers.slice(1).every((l: any) => l.mediaType === 'application/vnd.oci.image.layer.v1.tar')).toBe(true);
  });
});

describe('layer cap (Docker stops at 125 layers, overlayfs at 500)', () => {
  // 200 files: a small config.json and 199 "shards" of 5,000 to 7,999 bytes, each over the 4 KiB threshold, so
  // uncapped they would make 1 + 199 model layers on the 1-layer base.
  const files: Record<string, number> = { 'config.json': 500 };
  for (let i = 1; i <= 199; i++) files[`model-${String(i).padStart(5, '0')}-of-00199.safetensors`] = 5000 + ((i * 1237) % 3000);

  test('a model of 200 files: the image has the cap\'s 125 layers, every file is in exactly one, whole; the digest is reproducible', async () => {
    const model = writeModel(path.join(work, 'cap-a'), files);
    const a = await build(path.join(work, 'cap-a'), model);
    const b = await build(path.join(work, 'cap-b'), model);
    expect(a.manifest.layers).toHaveLength(125);
    expect(a.config.rootfs.diff_ids).toHaveLength(125);
    expect(a.config.history).toHaveLength(125);
    expect(a.log).toContain('model: 200 files, ');
    expect(a.log).toContain('-> 124 layers (files of 4096 bytes or more get a layer of their own, up to 124 layers beside the base\'s 1)');
    // The same model on the same base: the same image, byte for byte.
    expect(b.manifestDigest).toBe(a.manifestDigest);

    const perLayer = a.manifest.layers.slice(1).map((l: any) => tarEntries(fs.readFileSync(a.blob(l.digest))).filter((e) => e.type === '0'));
    const names = perLayer.flat().map((e: TarEntry) => e.name);
    expect([...names].sort()).toEqual(Object.keys(files).map((p) => `models/${p}`).sort());
    expect(new Set(names).size).toBe(200);
    // Whole files: each entry's size is the file's, and the extracted bytes match.
    for (const e of perLayer.flat()) expect(e.ustarSize).toBe(files[e.name.slice('models/'.length)]);
    const root = path.join(work, 'cap-a', 'rootfs');
    fs.mkdirSync(root);
    for (const l of a.manifest.layers.slice(1)) await run('tar', ['-xf', a.blob(l.digest), '-C', root]);
    for (const [p, size] of Object.entries(files)) expect(fs.readFileSync(path.join(root, 'models', p)).equals(bytesOf(p, size))).toBe(true);
    // Merged layers hold neighbouring shards (byte order kept), the small files keep their own layer on top, and the
    // largest file still has a layer of its own.
    const order = perLayer.flat().map((e: TarEntry) => e.name);
    expect(order.slice(0, -1)).toEqual([...order.slice(0, -1)].sort());
    expect(perLayer[perLayer.length - 1].map((e: TarEntry) => e.name)).toEqual(['models/config.json']);
    const largest = Object.entries(files).sort((x, y) => y[1] - x[1])[0][0];
    expect(perLayer.find((entries: TarEntry[]) => entries.some((e) => e.name === `models/${largest}`))).toHaveLength(1);
    expect(perLayer.filter((entries: TarEntry[]) => entries.length === 1).length).toBeGreaterThan(40);
  });

  test('the cap counts the base image\'s layers: a cap of 3 on a 1-layer base gives 2 model layers', async () => {
    const model = writeModel(path.join(work, 'cap-3'), files);
    const b = await build(path.join(work, 'cap-3'), model, { MAX_LAYERS: '3' });
    expect(b.manifest.layers).toHaveLength(3);
    const names = b.manifest.layers.slice(1).flatMap((l: any) => tarEntries(fs.readFileSync(b.blob(l.digest))).filter((e) => e.type === '0').map((e) => e.name));
    expect(names).toHaveLength(200);
  });

  test('fails when the base image leaves no layer for the model', async () => {
    const model = writeModel(path.join(work, 'cap-1'), { 'config.json': 10 });
    await expect(build(path.join(work, 'cap-1'), model, { MAX_LAYERS: '1' })).rejects.toThrow(
      'layout build failed: the base image has 1 layers, MAX_LAYERS is 1: no layer is left for the model; raise maxLayers or choose a base image with fewer layers');
  });
});

describe('platforms: one image index, a manifest per platform, the model layers shared', () => {
  const VERIFY = path.join(repoRoot(), 'src', 'modelcar', 'scripts', 'verify-artifact.py');
  const files = { 'config.json': 300, 'model-00001-of-00002.safetensors': 20_000, 'model-00002-of-00002.safetensors': 9_000 };
  const host = ociArchitecture();
  const json = (b: Built, digest: string) => JSON.parse(fs.readFileSync(b.blob(digest), 'utf8'));
  /** Names the layout's base manifest also `base-linux-<arch>` for each of `archs` (what skopeo leaves from a single-platform base). */
  const alsoNamed = (layout: string, archs: string[]) => {
    const file = path.join(layout, 'index.json');
    const index = JSON.parse(fs.readFileSync(file, 'utf8'));
    const [base] = index.manifests;
    index.manifests.push(...archs.map((a) => ({ ...base, annotations: { 'org.opencontainers.image.ref.name': `base-linux-${a}` } })));
    fs.writeFileSync(file, JSON.stringify(index));
  };

  test('two platforms: an image index of two manifests, each on its own platform\'s base, with the same model layers written once', async () => {
    const dir = path.join(work, 'platforms-two');
    const model = writeModel(dir, files);
    const b = await build(dir, model, { PLATFORMS: 'linux/amd64 linux/arm64' }, undefined, (l) => {
      // What the base step leaves: a manifest per platform, named base-linux-<arch>, and no index.
      const base = buildBaseImageLayout(l, { tag: 'base', architectures: ['amd64', 'arm64'] });
      const file = path.join(l, 'index.json');
      const index = JSON.parse(fs.readFileSync(file, 'utf8'));
      fs.writeFileSync(file, JSON.stringify({ ...index, manifests: index.manifests.filter((m: any) => m.digest !== base.manifestDigest) }));
      fs.rmSync(path.join(l, 'blobs', 'sha256', base.manifestDigest.slice('sha256:'.length)));
    });
    // index.json names the image index only (the bases are gone from it)
    expect(b.index.manifests).toEqual([expect.objectContaining({ mediaType: 'application/vnd.oci.image.index.v1+json', annotations: { 'org.opencontainers.image.ref.name': 'modelcar' } })]);
    expect(b.top.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(b.top.manifests.map((m: any) => m.platform)).toEqual([{ architecture: 'amd64', os: 'linux' }, { architecture: 'arm64', os: 'linux' }]);
    const [amd64, arm64] = b.top.manifests.map((m: any) => json(b, m.digest));
    const configs = [amd64, arm64].map((m) => json(b, m.config.digest));
    expect(configs.map((c) => c.architecture)).toEqual(['amd64', 'arm64']);
    expect(configs[1].config.Labels).toEqual(configs[0].config.Labels);
    expect(configs[0].config.Labels['io.kserve.modelcar.model']).toBe('e2e-org/layout-model');
    // Each platform's base layer is its own; the model layers are the same blobs.
    expect(amd64.layers[0].digest).not.toBe(arm64.layers[0].digest);
    expect(amd64.layers.slice(1)).toHaveLength(3);
    expect(arm64.layers.slice(1)).toEqual(amd64.layers.slice(1));
    expect(configs[1].rootfs.diff_ids.slice(1)).toEqual(configs[0].rootfs.diff_ids.slice(1));
    // Written once: one log line per model layer, not per platform.
    expect(b.log.match(/^layer \d+\/3: /gm)).toHaveLength(3);
    expect(b.log).toContain(`index ${b.manifestDigest} (linux/amd64 manifest ${b.top.manifests[0].digest}, linux/arm64 manifest ${b.top.manifests[1].digest})`);
    // The base's own manifests and configs are gone; the layout holds the image and nothing else.
    const referenced = new Set([b.manifestDigest, ...b.top.manifests.map((m: any) => m.digest),
      ...[amd64, arm64].flatMap((m) => [m.config.digest, ...m.layers.map((l: any) => l.digest)])].map((d) => d.slice('sha256:'.length)));
    expect(fs.readdirSync(path.join(b.layout, 'blobs', 'sha256')).sort()).toEqual([...referenced].sort());

    // The verify step reads every blob once, through the index; skopeo resolves each platform's manifest.
    const v = await run(PYTHON, ['-B', VERIFY], { env: { PATH: process.env.PATH, ARTIFACT_FORMAT: 'oci', ARTIFACT_TMP: b.layout, IMAGE_REF: 'modelcar' } });
    expect(v.stdout).toContain(`index ${b.manifestDigest} of 2 manifests, 7 configs and layers`);
    for (const [arch, m] of [['amd64', b.top.manifests[0]], ['arm64', b.top.manifests[1]]]) {
      const out = JSON.parse((await run('skopeo', ['--override-arch', arch, 'inspect', `oci:${b.layout}:modelcar`])).stdout);
      const layers = json(b, m.digest).layers.map((l: any) => l.digest);
      expect({ arch, architecture: out.Architecture, layers: out.Layers }).toEqual({ arch, architecture: arch, layers });
    }
    // A shared model layer cut short fails the verification.
    fs.truncateSync(b.blob(amd64.layers[2].digest), 100);
    await expect(run(PYTHON, ['-B', VERIFY], { env: { PATH: process.env.PATH, ARTIFACT_FORMAT: 'oci', ARTIFACT_TMP: b.layout, IMAGE_REF: 'modelcar' } }))
      .rejects.toThrow(`the built artifact is not valid: blob ${amd64.layers[2].digest} has 100 bytes, its descriptor says ${amd64.layers[2].size}`);
  });

  test('one platform: no image index, the same image byte for byte as the builder made before platforms', async () => {
    const dir = path.join(work, 'platforms-one');
    const model = writeModel(dir, files);
    const before = await build(path.join(dir, 'before'), model);
    const one = await build(path.join(dir, 'one'), model, { PLATFORMS: `linux/${host}` }, undefined, (l) => {
      buildBaseImageLayout(l, { tag: 'base' });
      alsoNamed(l, [host]);
    });
    expect(one.top.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(one.manifestDigest).toBe(before.manifestDigest);
    expect(fs.readFileSync(path.join(one.layout, 'index.json'))).toEqual(fs.readFileSync(path.join(before.layout, 'index.json')));
  });

  test('fails when the base image has no manifest for a platform (a single-platform base)', async () => {
    const dir = path.join(work, 'platforms-single-base');
    const model = writeModel(dir, files);
    const other = host === 'arm64' ? 'amd64' : 'arm64';
    // skopeo copies a single-platform base whatever platform it is asked for: both names hold the host's manifest.
    await expect(build(dir, model, { PLATFORMS: `linux/${host} linux/${other}` }, undefined, (l) => {
      buildBaseImageLayout(l, { tag: 'base' });
      alsoNamed(l, [host, other]);
    })).rejects.toThrow(new RegExp(`layout build failed: the base image for linux/${other} \\(sha256:[0-9a-f]{64}\\) is built for linux/${host}: `
      + 'the base image must be an image index with a manifest for every platform \\(pin it by the index digest\\), or build for the platforms it has'));
  });

  test('fails when a platform is not os/architecture', async () => {
    const dir = path.join(work, 'platforms-bad');
    const model = writeModel(dir, files);
    await expect(build(dir, model, { PLATFORMS: 'arm64' })).rejects.toThrow('layout build failed: platform \'arm64\' in PLATFORMS is not os/architecture[/variant]');
  });
});
