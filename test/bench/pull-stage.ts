/**
 * Pull stage of the benchmark: the node's side of a modelcar. Two images of the same bf16-like model, both in the
 * quay registry of the world (test/e2e/modelcar/world.ts):
 *
 * - `seed`: the analysis's image, built here the analysis's way (buildah from the base, copy the model, commit: the
 *   model in one layer) and pushed the way buildah pushes (`buildah push docker://...`: the layer gzipped);
 * - `ours`: our pipeline's image, built and pushed by the layout pipeline in the e2e runner (one uncompressed layer
 *   per large file, pushed with its digests preserved).
 *
 * Each pull is `skopeo copy docker://... containers-storage:[overlay@ROOT+RUNROOT]...`: skopeo pulls with
 * containers/image into a containers/storage overlay store, the libraries and driver CRI-O uses on an OpenShift
 * node (up to six layers at once, each blob staged in a temporary file of the big-files temp dir, then applied to
 * the store). Every pull gets a fresh "node": its store, run root, temp dir and blob-info cache in a directory of
 * its own, and runs in a private mount namespace (`unshare --mount`) whose /var/lib/containers/cache is that
 * node's cache (containers/image keeps it there as root, with no flag to move it), so nothing is shared between
 * nodes and the overlay driver's private bind mount of its home dies with the namespace. The node directory is
 * removed afterwards (any mount left under it is unmounted first).
 *
 * Two links: loopback (skopeo talks to the registry directly), and a TCP proxy on 127.0.0.1 that caps each
 * connection at `capBytesPerSecond` (a registry behind a link or CDN that caps each stream; TLS passes through
 * untouched) and counts the bytes it carries.
 *
 * Day 2: a node that holds revision 1 of an image (pulled over loopback) pulls revision 2 (one shard changed), or
 * revision 3 (config.json changed, nothing else), through the capped link: per-file layers move what changed, the
 * seed's squashed layer moves everything; what the node re-creates above a changed layer shows in what it stores.
 *
 * Measured per pull: wall time, CPU time and peak RSS of skopeo (`/usr/bin/time`), CPU time of the registry
 * process (/proc/PID/stat), bytes stored in the node (du of the store after the pull), peak disk of the node during
 * the pull (store + temp dir, du every 250 ms), bytes through the proxy, and how many streams carried data on average
 * (100 ms slots in which a proxied connection carried data, over the pull's wall time).
 */
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import { Transform, TransformCallback } from 'stream';
import { duBytes, sampleDisk } from './disk';
import { MODEL_COMMIT, repositoryOf, runModelcar, synthesizePipeline, World } from '../e2e/modelcar/world';
import { ociArchitecture } from '../e2e/support/base-image';
import { BuildahStore, buildahStore } from '../e2e/support/buildah';
import { reviseShard, reviseSmallFile, SyntheticModel } from '../e2e/support/model-fixture';
import { LocalRegistry } from '../e2e/support/registry';
import { pairSockets, run } from '../e2e/support/tools';

/** Where containers/image keeps its blob-info cache when run as root (containers/image pkg/blobinfocache/default.go). */
const SYSTEM_BLOB_INFO_CACHE = '/var/lib/containers/cache';
const CLOCK_TICKS_PER_SECOND = 100;
const SLOT_MS = 100;
const BURST_MS = 100;

export interface LinkProxy {
  readonly host: string;
  /** Bytes from the registry to the node, and from the node to the registry, since the last reset. */
  bytesDown: number;
  bytesUp: number;
  /** Connections opened since the last reset. */
  connections: number;
  /** Sum over connections of the 100 ms slots in which each carried data down, since the last reset, in seconds. */
  busyStreamSeconds(): number;
  reset(): void;
  close(): Promise<void>;
}

/** Passes chunks on, then holds the next one until the connection is back under `bytesPerSecond` (on average over 100 ms). */
class Throttle extends Transform {
  private next = 0;
  constructor(private readonly bytesPerSecond: number | undefined, private readonly onChunk: (n: number) => void) {
    super();
  }
  _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.onChunk(chunk.length);
    this.push(chunk);
    if (!this.bytesPerSecond) return done();
    // A token bucket holding up to BURST_MS of the rate: timers fire late on a busy machine, and a connection
    // that restarted its clock at every late timer would fall far below the cap (it did, at ~10 MiB/s).
    const now = Date.now();
    this.next = Math.max(this.next, now - BURST_MS) + (chunk.length / this.bytesPerSecond) * 1000;
    const wait = this.next - now;
    if (wait >= 5) setTimeout(done, wait);
    else done();
  }
}

/** A TCP proxy on 127.0.0.1 to `target` that caps each connection's downstream at `bytesPerSecond` (none if undefined). */
export async function startLinkProxy(target: LocalRegistry, bytesPerSecond: number | undefined): Promise<LinkProxy> {
  const sockets = new Set<net.Socket>();
  let slots = new Map<number, Set<number>>();
  let ids = 0;
  const proxy: LinkProxy = {
    host: '',
    bytesDown: 0,
    bytesUp: 0,
    connections: 0,
    busyStreamSeconds: () => [...slots.values()].reduce((a, s) => a + s.size, 0) * SLOT_MS / 1000,
    reset: () => {
      proxy.bytesDown = 0;
      proxy.bytesUp = 0;
      proxy.connections = 0;
      slots = new Map();
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server = net.createServer((client) => {
    const id = ids++;
    proxy.connections++;
    const upstream = net.connect(target.port, '127.0.0.1');
    pairSockets(client, upstream, sockets);
    const down = new Throttle(bytesPerSecond, (n) => {
      proxy.bytesDown += n;
      const mine = slots.get(id) ?? new Set<number>();
      mine.add(Math.floor(Date.now() / SLOT_MS));
      slots.set(id, mine);
    });
    const up = new Throttle(undefined, (n) => (proxy.bytesUp += n));
    upstream.pipe(down).pipe(client);
    client.pipe(up).pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  (proxy as { host: string }).host = `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return proxy;
}

/** The pid of the registry's process (docker-registry serve CONFIG; setpriv execs it, see registry.ts). */
export function registryPid(registry: LocalRegistry): number {
  for (const p of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const argv = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
      if (argv.some((a) => a.endsWith('docker-registry')) && argv.includes(registry.configPath)) return Number(p);
    } catch {
      // gone meanwhile
    }
  }
  throw new Error(`no docker-registry process serves ${registry.configPath}`);
}

/** CPU seconds (user + system) of a process so far. */
export function cpuSecondsOf(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND; // utime, stime (fields 14, 15 of stat)
}

export interface PullFigures {
  readonly image: string;
  readonly link: string;
  readonly wallSeconds: number;
  readonly skopeoCpuSeconds: number;
  readonly skopeoMaxRssBytes: number;
  readonly registryCpuSeconds: number;
  /** du -sb of the store (root and run root) after the pull, minus before. */
  readonly storedBytes: number;
  /** Peak of du of the whole node (store, run root, temp dir) during the pull, minus before. */
  readonly peakDiskBytes: number;
  /** Through the proxy (0 on loopback). */
  readonly bytesDown: number;
  readonly connections: number;
  /** Mean number of connections carrying data during the pull (through the proxy). */
  readonly meanBusyStreams: number;
}

/** A node: a containers/storage overlay store with its run root, temp dir and blob-info cache under `dir`. */
export interface Node {
  readonly dir: string;
  readonly root: string;
  readonly runroot: string;
  readonly tmp: string;
  readonly cache: string;
}

export function newNode(dir: string): Node {
  const node = { dir, root: path.join(dir, 'root'), runroot: path.join(dir, 'runroot'), tmp: path.join(dir, 'tmp'), cache: path.join(dir, 'cache') };
  for (const d of [node.root, node.runroot, node.tmp, node.cache]) fs.mkdirSync(d, { recursive: true });
  return node;
}

/** Unmounts anything left under the node's directory (deepest first), then removes it. */
export async function removeNode(node: Node): Promise<void> {
  const mounts = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')
    .map((l) => l.split(' ')[4]).filter((m) => m && (m === node.dir || m.startsWith(`${node.dir}/`)))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) await run('umount', [m]);
  fs.rmSync(node.dir, { recursive: true, force: true });
}

export interface PullOptions {
  /** `host/repo:tag` as the node sees it (the registry's host, or the proxy's). */
  readonly reference: string;
  readonly registry: LocalRegistry;
  readonly registryPid: number;
  readonly proxy?: LinkProxy;
  readonly label: { image: string; link: string };
  readonly log: string;
}

/** One `skopeo copy` into the node's overlay store; throws if it fails. */
export async function pull(node: Node, opts: PullOptions): Promise<PullFigures> {
  if (!fs.existsSync(SYSTEM_BLOB_INFO_CACHE)) {
    throw new Error(`${SYSTEM_BLOB_INFO_CACHE} is missing: run any skopeo command as root once (it creates it), then the bench again`);
  }
  const times = path.join(node.dir, 'times');
  const storedBefore = duBytes(node.root) + duBytes(node.runroot);
  const disk = sampleDisk(node.dir);
  disk.mark();
  opts.proxy?.reset();
  const registryCpu = cpuSecondsOf(opts.registryPid);
  const started = Date.now();
  const destination = `containers-storage:[overlay@${node.root}+${node.runroot}]${opts.reference.split('/').slice(1).join('/')}`;
  const script = 'cache=$1; times=$2; shift 2; mount --bind "$cache" /var/lib/containers/cache && exec /usr/bin/time -f "%U %S %M" -o "$times" skopeo "$@"';
  const args = [
    '--mount', '--propagation', 'private', '--', '/bin/sh', '-c', script, 'sh', node.cache, times,
    '--tmpdir', node.tmp, 'copy', '--quiet', '--src-cert-dir', opts.registry.certDir,
    '--src-creds', `${opts.registry.username}:${opts.registry.password}`, `docker://${opts.reference}`, destination,
  ];
  const log = fs.openSync(opts.log, 'a');
  fs.writeSync(log, `\n=== ${opts.label.image} over ${opts.label.link}: unshare ${args.join(' ')}\n`);
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn('unshare', args, { stdio: ['ignore', log, log] });
    child.on('error', reject);
    child.on('close', resolve);
  });
  fs.closeSync(log);
  const wallSeconds = (Date.now() - started) / 1000;
  const registryCpuSeconds = cpuSecondsOf(opts.registryPid) - registryCpu;
  const peakDiskBytes = await disk.stop();
  if (code !== 0) throw new Error(`pull of ${opts.reference} (${opts.label.image}, ${opts.label.link}) failed (exit ${code}); see ${opts.log}`);
  const [user, sys, rssKiB] = fs.readFileSync(times, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
  fs.rmSync(times);
  const busy = opts.proxy ? opts.proxy.busyStreamSeconds() : 0;
  return {
    ...opts.label,
    wallSeconds,
    skopeoCpuSeconds: user + sys,
    skopeoMaxRssBytes: rssKiB * 1024,
    registryCpuSeconds,
    storedBytes: duBytes(node.root) + duBytes(node.runroot) - storedBefore,
    peakDiskBytes,
    bytesDown: opts.proxy?.bytesDown ?? 0,
    connections: opts.proxy?.connections ?? 0,
    meanBusyStreams: busy / wallSeconds,
  };
}

/** Sum of the sizes of the regular files under `models/` of every layer of the store (what the node can serve). */
export function modelBytesInStore(node: Node): number {
  let total = 0;
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) total += fs.statSync(p).size;
    }
  };
  const layers = path.join(node.root, 'overlay');
  for (const l of fs.readdirSync(layers)) {
    const models = path.join(layers, l, 'diff', 'models');
    if (fs.existsSync(models)) walk(models);
  }
  return total;
}

/**
 * The analysis's image, the analysis's way: buildah from the base, copy the model to /models, commit (the model
 * is one layer), then `buildah push docker://` (buildah gzips the layer on the way, as it does to any registry).
 */
export async function buildSeedImage(store: BuildahStore, base: { reference: string; registry: LocalRegistry }, modelDir: string,
  target: LocalRegistry, reference: string): Promise<void> {
  const ctr = (await store.buildah(['from', '--quiet', '--cert-dir', base.registry.certDir, '--authfile', base.registry.authFile,
    `docker://${base.reference}`])).stdout.trim();
  await store.buildah(['copy', '--quiet', ctr, modelDir, '/models']);
  await store.buildah(['commit', '--quiet', ctr, 'modelcar'], { timeoutMs: 1_800_000 });
  await store.buildah(['push', '--quiet', '--cert-dir', target.certDir, '--authfile', target.authFile, 'modelcar', `docker://${reference}`],
    { timeoutMs: 1_800_000 });
  await store.buildah(['rm', ctr]);
}

/**
 * Layer media types and sizes of an image in a registry (skopeo inspect --raw): of this host's platform's manifest
 * when the image is an index (what a node of this architecture pulls).
 */
export async function layersOf(registry: LocalRegistry, reference: string): Promise<{ mediaType: string; size: number }[]> {
  const raw = async (ref: string) => JSON.parse((await run('skopeo', ['inspect', '--raw', '--cert-dir', registry.certDir, '--authfile', registry.authFile,
    `docker://${ref}`])).stdout);
  let manifest = await raw(reference);
  if (manifest.manifests) {
    const own = manifest.manifests.find((m: any) => m.platform?.architecture === ociArchitecture());
    if (!own) throw new Error(`layersOf: ${reference} is an index without a manifest for ${ociArchitecture()}`);
    manifest = await raw(`${reference.replace(/[:@][^/]*$/, '')}@${own.digest}`);
  }
  return (manifest.layers as { mediaType: string; size: number }[]).map((l) => ({ mediaType: l.mediaType, size: l.size }));
}

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const REVISION_2 = 'fedcba9876543210fedcba9876543210fedcba92';
const REVISION_3 = 'fedcba9876543210fedcba9876543210fedcba93';

export interface PullStageOptions {
  /** Pulls of each image over each link; the best (shortest wall time) is kept. */
  readonly runs: number;
  /** Per-connection cap of the capped link. */
  readonly capBytesPerSecond: number;
}

export interface PullStageResult {
  readonly layers: Record<string, { mediaType: string; size: number }[]>;
  /** Every pull, in order. */
  readonly pulls: PullFigures[];
  /** Best of the runs per image and link. */
  readonly best: PullFigures[];
  /**
   * Day 2: revision 2 (one shard changed), then revision 3 (config.json changed, nothing else), each pulled into a
   * node holding revision 1, through the capped link.
   */
  readonly day2: PullFigures[];
  readonly changedShard: string;
  readonly changedShardBytes: number;
}

/** Builds both images (revisions 1 and 2), then pulls them; see the module comment. */
export async function pullStage(world: World, model: SyntheticModel, work: string, opts: PullStageOptions): Promise<PullStageResult> {
  const repo = repositoryOf(world.quay);
  const shard = model.files.find((f) => f.path.endsWith('.safetensors'))!;
  process.stderr.write(`pull: revision 2 of the model (${shard.path} changed)...\n`);
  const rev2 = await reviseShard(model, path.join(work, 'model-rev2'), shard.path, 'revision-2');
  // What a revision most often changes alone: the config (here, one setting more).
  const config = JSON.parse(fs.readFileSync(path.join(model.dir, 'config.json'), 'utf8'));
  const rev3 = await reviseSmallFile(model, path.join(work, 'model-rev3'), 'config.json', JSON.stringify({ ...config, max_position_embeddings: 32768 }));

  // Ours: the layout pipeline, as the build stage runs it, once per revision.
  const manifests = synthesizePipeline(world, path.join(work, 'dist-pull'), {
    runs: [{ name: 'pull-1', tags: ['pull-1'] }, { name: 'pull-2', tags: ['pull-2'] }, { name: 'pull-3', tags: ['pull-3'] }],
  });
  for (const [runName, m, commit] of [['pull-1', model, MODEL_COMMIT], ['pull-2', rev2, REVISION_2], ['pull-3', rev3, REVISION_3]] as const) {
    process.stderr.write(`pull: building ours (${runName}) with the layout pipeline...\n`);
    const runs = path.join(work, `runs-${runName}`);
    const logFile = fs.createWriteStream(path.join(work, `${runName}.log`));
    const r = await runModelcar(world, { manifests, pipelineRun: runName, workDir: runs, model: m, commit, log: (l) => logFile.write(`${l}\n`) });
    logFile.end();
    if (r.status !== 'Succeeded') throw new Error(`pull: the layout pipeline ${runName} failed (${r.reason}: ${r.message}); see ${path.join(work, `${runName}.log`)}`);
    fs.rmSync(runs, { recursive: true, force: true });
  }
  // The seed's: buildah on this host (root, vfs store in the work dir), one build per revision.
  const store = buildahStore(path.join(work, 'buildah-seed'));
  try {
    for (const [tag, m] of [['seed-1', model], ['seed-2', rev2], ['seed-3', rev3]] as const) {
      process.stderr.write(`pull: building the seed's (${tag}) with buildah...\n`);
      await buildSeedImage(store, { reference: world.base.reference, registry: world.internal }, m.dir, world.quay, `${repo}:${tag}`);
    }
  } finally {
    await store.clean();
    fs.rmSync(path.join(work, 'buildah-seed'), { recursive: true, force: true });
  }
  fs.rmSync(rev2.dir, { recursive: true, force: true });
  fs.rmSync(rev3.dir, { recursive: true, force: true });

  const images = [{ image: 'seed', tags: ['seed-1', 'seed-2', 'seed-3'] }, { image: 'ours', tags: ['pull-1', 'pull-2', 'pull-3'] }];
  const layers: PullStageResult['layers'] = {};
  for (const i of images) layers[i.image] = await layersOf(world.quay, `${repo}:${i.tags[0]}`);

  const pid = registryPid(world.quay);
  const proxy = await startLinkProxy(world.quay, opts.capBytesPerSecond);
  const capLabel = `capped ${opts.capBytesPerSecond / MiB} MiB/s/conn`;
  const log = path.join(work, 'pull.log');
  const nodes = path.join(work, 'nodes');
  let serial = 0;
  const pulls: PullFigures[] = [];
  const day2: PullFigures[] = [];
  const withNode = async <T>(f: (node: Node) => Promise<T>): Promise<T> => {
    const node = newNode(path.join(nodes, `node-${serial++}`));
    try {
      return await f(node);
    } finally {
      await removeNode(node);
    }
  };
  const via = (link: 'loopback' | 'capped', tag: string) => ({
    reference: `${link === 'loopback' ? world.quay.host : proxy.host}/${repo.split('/').slice(1).join('/')}:${tag}`,
    registry: world.quay,
    registryPid: pid,
    proxy: link === 'capped' ? proxy : undefined,
    log,
  });
  try {
    for (const link of ['loopback', 'capped'] as const) {
      for (let round = 1; round <= opts.runs; round++) {
        for (const i of images) {
          const label = { image: i.image, link: link === 'loopback' ? 'loopback' : capLabel };
          process.stderr.write(`pull: ${i.image} over ${label.link} (run ${round})...`);
          const f = await withNode(async (node) => {
            const figures = await pull(node, { ...via(link, i.tags[0]), label });
            const served = modelBytesInStore(node);
            if (served !== model.totalBytes) throw new Error(`pull: the node holds ${served} model bytes, not ${model.totalBytes} (${i.image}, ${label.link})`);
            return figures;
          });
          process.stderr.write(` ${f.wallSeconds.toFixed(2)} s, ${f.skopeoCpuSeconds.toFixed(2)} CPU s\n`);
          pulls.push(f);
        }
      }
    }
    for (const [revision, what] of [[1, 'day 2, a shard'], [2, 'day 2, config.json']] as const) {
      for (const i of images) {
        process.stderr.write(`pull: ${what} of ${i.image} (revision 1 over loopback, then revision ${revision + 1} over ${capLabel})...`);
        const f = await withNode(async (node) => {
          await pull(node, { ...via('loopback', i.tags[0]), label: { image: i.image, link: 'loopback (day 1)' } });
          return pull(node, { ...via('capped', i.tags[revision]), label: { image: i.image, link: `${capLabel} (${what})` } });
        });
        process.stderr.write(` ${f.wallSeconds.toFixed(2)} s, ${(f.bytesDown / MiB).toFixed(1)} MiB moved, ${(f.storedBytes / MiB).toFixed(1)} MiB stored\n`);
        day2.push(f);
      }
    }
  } finally {
    await proxy.close();
    fs.rmSync(nodes, { recursive: true, force: true });
  }
  const best = images.flatMap((i) => [...new Set(pulls.map((p) => p.link))].map((link) => pulls
    .filter((p) => p.image === i.image && p.link === link).reduce((a, b) => (b.wallSeconds < a.wallSeconds ? b : a))));
  return { layers, pulls, best, day2, changedShard: shard.path, changedShardBytes: shard.size };
}

/** The stage's figures as lines, side by side with ratios (seed over ours). */
export function pullTable(r: PullStageResult, model: SyntheticModel, runs: number): string[] {
  const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;
  const gib = (n: number) => `${(n / GiB).toFixed(2)} GiB`;
  const lines: string[] = [];
  for (const [image, layers] of Object.entries(r.layers)) {
    lines.push(`  pull: ${image} layers: ${layers.map((l) => `${mib(l.size)}${l.mediaType.endsWith('gzip') ? ' gzip' : ''}`).join(', ')}`
      + ` (${gib(layers.reduce((a, l) => a + l.size, 0))} on the wire for a ${gib(model.totalBytes)} model)`);
  }
  const rows = [['pull', 'link', 'wall s', 'node CPU s', 'registry CPU s', 'max RSS', 'stored/model', 'peak disk/model', 'moved', 'busy streams']];
  const row = (f: PullFigures) => [f.image, f.link, f.wallSeconds.toFixed(2), f.skopeoCpuSeconds.toFixed(2), f.registryCpuSeconds.toFixed(2),
    mib(f.skopeoMaxRssBytes), `${(f.storedBytes / model.totalBytes).toFixed(3)}x`, `${(f.peakDiskBytes / model.totalBytes).toFixed(2)}x`,
    f.link === 'loopback' ? '-' : mib(f.bytesDown), f.link === 'loopback' ? '-' : f.meanBusyStreams.toFixed(2)];
  for (const f of [...r.best, ...r.day2]) rows.push(row(f));
  const widths = rows[0].map((_, i) => Math.max(...rows.map((x) => x[i].length)));
  lines.push(`  pull: best of ${runs} per image and link; day 2 = revision 2 (${r.changedShard}, ${mib(r.changedShardBytes)}, changed) or 3 (config.json changed) `
    + 'into a node holding revision 1');
  for (const x of rows) lines.push(`  ${x.map((c, i) => c.padEnd(widths[i])).join('  ')}`);
  const pair = (list: PullFigures[], link: string) => [list.find((f) => f.image === 'seed' && f.link === link)!, list.find((f) => f.image === 'ours' && f.link === link)!];
  for (const [list, link] of [...[...new Set(r.best.map((f) => f.link))].map((l) => [r.best, l] as const),
    ...[...new Set(r.day2.map((f) => f.link))].map((l) => [r.day2, l] as const)]) {
    const [seed, ours] = pair(list, link);
    lines.push(`  pull: seed/ours over ${link}: wall ${(seed.wallSeconds / ours.wallSeconds).toFixed(2)}x, node CPU ${(seed.skopeoCpuSeconds / ours.skopeoCpuSeconds).toFixed(2)}x`
      + `, stored ${(seed.storedBytes / ours.storedBytes).toFixed(2)}x${seed.bytesDown ? `, moved ${(seed.bytesDown / ours.bytesDown).toFixed(2)}x` : ''}`);
  }
  return lines;
}
