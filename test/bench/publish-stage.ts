/**
 * Publish stage of the benchmark (`--publish-only` runs it alone): the WHOLE publish of the model to both registries,
 * download included, three ways side by side in one run, each run by the e2e runner (test/e2e/runner) with the real
 * tools against the fake hub (test/e2e/support/fake-hub.ts) and the two docker-registry servers of the world:
 *
 * - `seed`: the analysis pipeline (analysis-pipeline.ts): download-model (the fetch script) -> build-image (buildah
 *   vfs, `oci-archive:` on the volume, skopeo inspect) -> push-internal -> push-quay (skopeo from the archive);
 * - `volume`: our default pipeline (the layout builder): check-published -> download-model -> build-image (OCI layout
 *   on the volume) -> push-internal -> push-quay (skopeo from the layout) -> report-published, clean-up (finally);
 * - `streaming`: our pipeline with `PublishMode.streaming()` (its defaults): check-published -> stream-internal (hub
 *   to the first registry, no volume) -> push-quay (skopeo registry to registry) -> report-published.
 *
 * Each way twice: with the fake hub's CDN capping each connection at 25 MiB/s (as the download stage does), and on
 * the open loopback (no cap); `--publish-runs N` (default 1) repeats that round N times (the same order each round)
 * and the table keeps each way's and link's best (shortest wall time): on a shared machine a run slowed by something
 * else then weighs less; the JSON has every run. Each run publishes to repositories of its own (`<namespace>/publish-<way>-<link>` at
 * both registries), which hold nothing yet: its check must find nothing, and the stage fails when any task was
 * skipped or the check did not ask for a rebuild. A `sync` before each run: one run's writeback is not the next's.
 *
 * Measured per run:
 * - wall time of the whole publish: the first task's start to the end of push-quay (the report and clean-up after
 *   it are not counted in the time, their writes and memory are);
 * - bytes written to storage per model byte: the runner's per-step I/O accounting (StepIo: Linux's write_bytes of
 *   each step's process tree) summed over every step of the run; tmpfs writes are not storage I/O. The registries
 *   are separate processes of the world, not the steps': what they store is counted for no way;
 * - peak memory: the highest cgroup peak of any step (peakMemoryBytes: memory.max_usage_in_bytes on cgroup v1, or
 *   memory.peak on v2) and which step it was, with that step's limit. The kernel charges a cgroup for the page
 *   cache of the files its processes write, so a step that writes gigabytes peaks near its limit whatever its
 *   processes hold themselves;
 * - also: seconds and bytes written per task, CDN requests, CPU seconds of the bench process (the fake hub, the
 *   runner) and of each registry process meanwhile.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { analysisManifests } from './analysis-pipeline';
import { cpuSecondsOf, registryPid } from './pull-stage';
import { PublishMode } from '../../src';
import { runModelcar, RunModelcarOptions, repositoryOf, synthesizePipeline, World } from '../e2e/modelcar/world';
import { Manifest, RunPipelineResult, StepRecord } from '../e2e/runner/tekton-runner';
import { SyntheticModel } from '../e2e/support/model-fixture';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
/** The per-connection cap of the fake hub's CDN in the capped runs (the download stage's). */
export const CDN_CAP_BYTES_PER_SECOND = 25 * MiB;

export type PublishWay = 'seed' | 'volume' | 'streaming';
export type HubLink = 'cdn-capped' | 'open';

export const PUBLISH_WAYS: readonly PublishWay[] = ['seed', 'volume', 'streaming'];
export const HUB_LINKS: readonly HubLink[] = ['cdn-capped', 'open'];

/** The tasks each way must have run (none skipped), in order; push-quay's end ends the publish. */
const PUBLISH_TASKS: Record<PublishWay, string[]> = {
  seed: ['download-model', 'build-image', 'push-internal', 'push-quay'],
  volume: ['check-published', 'download-model', 'build-image', 'push-internal', 'push-quay'],
  streaming: ['check-published', 'stream-internal', 'push-quay'],
};

export interface PublishFigures {
  /** 1-based round (--publish-runs). */
  readonly round: number;
  readonly way: PublishWay;
  readonly link: HubLink;
  /** The CDN's per-connection cap during the run (bytes/s); null: none. */
  readonly cdnCapBytesPerSecond: number | null;
  /** First task start to the end of push-quay. */
  readonly wallSeconds: number;
  /** Sum over every step of the run of StepIo.writeBytes. */
  readonly bytesWritten: number;
  /** Of those, never written because the file was truncated or deleted first (StepIo.cancelledWriteBytes). */
  readonly bytesCancelled: number;
  readonly writtenPerModelByte: number;
  /** (written - cancelled) per model byte. */
  readonly netWrittenPerModelByte: number;
  /** The highest cgroup peak of any step, and which (`task/step`), with that step's memory limit. */
  readonly peakMemoryBytes: number;
  readonly peakMemoryStep: string;
  readonly peakMemoryLimit?: string;
  readonly digest: string;
  /** Every task of the run: status, seconds, bytes written, its highest step peak. */
  readonly perTask: Record<string, { status: string; seconds: number; bytesWritten: number; peakMemoryBytes?: number }>;
  readonly cdnRequests: number;
  /** CPU seconds of this process (the fake hub and CDN, the runner) during the run. */
  readonly benchCpuSeconds: number;
  /** CPU seconds of each registry's process during the run. */
  readonly registryCpuSeconds: { internal: number; quay: number };
  /** The machine's 1-minute load average when the run started (this bench's previous run included). */
  readonly loadAverage1mAtStart: number;
}

export interface PublishStageResult {
  /** Rounds run (--publish-runs). */
  readonly rounds: number;
  /** Every run, in order. */
  readonly runs: PublishFigures[];
  /** Per way and link, the run with the shortest wall time (link by link, way by way). */
  readonly best: PublishFigures[];
  /** Per link: wall-time ratios of the ways' best runs, all measured in this bench run. */
  readonly ratios: Record<HubLink, { seedOverVolume: number; seedOverStreaming: number; volumeOverStreaming: number }>;
  /** The volume mode and the streaming mode published the same digest on both links. */
  readonly sameDigestVolumeAndStreaming: boolean;
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

/** Every step of every task of a run. */
function stepsOf(r: RunPipelineResult): { task: string; step: StepRecord }[] {
  return Object.values(r.tasks).flatMap((t) => t.steps.map((step) => ({ task: t.pipelineTask, step })));
}

/** Throws, loudly, unless the run did the whole publish: every expected task ran and succeeded, nothing skipped. */
function requireWholePublish(way: PublishWay, link: HubLink, r: RunPipelineResult, logFile: string): void {
  const label = `publish ${way} (${link})`;
  if (r.status !== 'Succeeded') throw new Error(`${label}: the pipeline failed (${r.reason}: ${r.message}); see ${logFile}`);
  const statuses = Object.fromEntries(Object.values(r.tasks).map((t) => [t.pipelineTask, `${t.status}${t.reason && t.reason !== t.status ? ` (${t.reason})` : ''}`]));
  const missing = PUBLISH_TASKS[way].filter((t) => r.tasks[t]?.status !== 'Succeeded');
  const notRun = Object.values(r.tasks).filter((t) => t.status !== 'Succeeded');
  if (missing.length || notRun.length) {
    throw new Error(`${label}: NOT A WHOLE PUBLISH, the figures would be meaningless: ${[...new Set([...missing, ...notRun.map((t) => t.pipelineTask)])].join(', ')} `
      + `did not run to success (task statuses: ${JSON.stringify(statuses)}); see ${logFile}`);
  }
  if (way !== 'seed' && r.tasks['check-published'].results.REBUILD !== 'true') {
    throw new Error(`${label}: check-published found the image already published (REBUILD=${r.tasks['check-published'].results.REBUILD}): `
      + `the repositories were not fresh; see ${logFile}`);
  }
  for (const { task, step } of stepsOf(r)) {
    if (!step.io) throw new Error(`${label}: no I/O accounting for step ${task}/${step.name}: the bytes written cannot be summed`);
    if (step.peakMemoryBytes === undefined) throw new Error(`${label}: no cgroup peak for step ${task}/${step.name} (the LimitRange gives every step one)`);
  }
}

/** One whole publish of `model`, `way`, over `link`, to fresh repositories; see the module comment. */
async function publishOnce(
  world: World, model: SyntheticModel, work: string, way: PublishWay, link: HubLink, round: number,
): Promise<PublishFigures> {
  const name = `publish-${way}-${link}-${round}`;
  const tag = name;
  const dir = path.join(work, name);
  const runs = path.join(dir, 'runs');
  fs.mkdirSync(runs, { recursive: true });
  const logFile = path.join(work, `${name}.log`);
  let manifests: Manifest[];
  let pipelineRun: string;
  let extra: RunModelcarOptions['extra'];
  if (way === 'seed') {
    manifests = analysisManifests(world, { repositoryName: name, tag });
    pipelineRun = 'analysis';
    // Privileged buildah as root, as the analysis's cluster admitted it (see the bench's main(): no SCC for it).
    extra = { scc: undefined };
  } else {
    manifests = synthesizePipeline(world, path.join(dir, 'dist'), {
      repositoryName: name,
      publishMode: way === 'streaming' ? PublishMode.streaming() : undefined,
      runs: [{ name: 'publish', tags: [tag] }],
    });
    pipelineRun = 'publish';
  }
  const cap = link === 'cdn-capped' ? CDN_CAP_BYTES_PER_SECOND : undefined;
  // One run's dirty pages are written back before the next starts.
  execFileSync('sync');
  world.hub.reset();
  world.hub.cdnBytesPerSecond = cap;
  const loadAverage1mAtStart = os.loadavg()[0];
  const pids = { internal: registryPid(world.internal), quay: registryPid(world.quay) };
  const registryCpu = { internal: cpuSecondsOf(pids.internal), quay: cpuSecondsOf(pids.quay) };
  const benchCpu = process.cpuUsage();
  const log = fs.createWriteStream(logFile);
  let r: RunPipelineResult;
  try {
    r = await runModelcar(world, { manifests, pipelineRun, workDir: runs, model, extra, log: (line) => log.write(`${line}\n`) });
  } finally {
    await new Promise((resolve) => log.end(resolve));
  }
  const benchUsage = process.cpuUsage(benchCpu);
  const registryCpuSeconds = { internal: cpuSecondsOf(pids.internal) - registryCpu.internal, quay: cpuSecondsOf(pids.quay) - registryCpu.quay };
  const cdnRequests = world.hub.requests.filter((q) => q.server === 'cdn').length;
  world.hub.reset();
  fs.rmSync(dir, { recursive: true, force: true });
  requireWholePublish(way, link, r, logFile);

  const tasks = Object.values(r.tasks);
  const first = Math.min(...tasks.filter((t) => t.startedAt).map((t) => t.startedAt!.getTime()));
  const wallSeconds = (r.tasks['push-quay'].finishedAt!.getTime() - first) / 1000;
  const steps = stepsOf(r);
  const bytesWritten = sum(steps.map(({ step }) => step.io!.writeBytes));
  const bytesCancelled = sum(steps.map(({ step }) => step.io!.cancelledWriteBytes));
  const peak = steps.reduce((a, s) => (s.step.peakMemoryBytes! > a.step.peakMemoryBytes! ? s : a));
  const perTask: PublishFigures['perTask'] = {};
  for (const t of tasks) {
    perTask[t.pipelineTask] = {
      status: t.status,
      seconds: t.startedAt && t.finishedAt ? (t.finishedAt.getTime() - t.startedAt.getTime()) / 1000 : NaN,
      bytesWritten: sum(t.steps.map((s) => s.io!.writeBytes)),
      peakMemoryBytes: t.steps.length ? Math.max(...t.steps.map((s) => s.peakMemoryBytes!)) : undefined,
    };
  }
  // What quay serves under the run's tag: the image the whole publish delivered.
  const digest = execFileSync('skopeo', ['inspect', '--format', '{{.Digest}}', '--cert-dir', world.quay.certDir, '--authfile', world.quay.authFile,
    `docker://${repositoryOf(world.quay, name)}:${tag}`], { encoding: 'utf8' }).trim();
  return {
    round,
    way,
    link,
    cdnCapBytesPerSecond: cap ?? null,
    wallSeconds,
    bytesWritten,
    bytesCancelled,
    writtenPerModelByte: bytesWritten / model.totalBytes,
    netWrittenPerModelByte: (bytesWritten - bytesCancelled) / model.totalBytes,
    peakMemoryBytes: peak.step.peakMemoryBytes!,
    peakMemoryStep: `${peak.task}/${peak.step.name}`,
    peakMemoryLimit: peak.step.limits?.memory,
    digest,
    perTask,
    cdnRequests,
    benchCpuSeconds: (benchUsage.user + benchUsage.system) / 1e6,
    registryCpuSeconds,
    loadAverage1mAtStart,
  };
}

/** The three ways, capped CDN first, then the open loopback, `rounds` times; see the module comment. */
export async function publishStage(world: World, model: SyntheticModel, work: string, rounds: number = 1): Promise<PublishStageResult> {
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--publish-runs must be a whole number of at least 1, got ${rounds}`);
  const runs: PublishFigures[] = [];
  for (let round = 1; round <= rounds; round++) {
    for (const link of HUB_LINKS) {
      for (const way of PUBLISH_WAYS) {
        process.stderr.write(`publish${rounds > 1 ? ` (round ${round} of ${rounds})` : ''}: ${way} `
          + `(${link === 'open' ? 'open loopback' : `CDN capped at ${CDN_CAP_BYTES_PER_SECOND / MiB} MiB/s per connection`})...\n`);
        const f = await publishOnce(world, model, work, way, link, round);
        process.stderr.write(`  ${way} (${link}): ${f.wallSeconds.toFixed(1)} s, wrote ${(f.bytesWritten / GiB).toFixed(2)} GiB, `
          + `peak memory ${(f.peakMemoryBytes / MiB).toFixed(0)} MiB (${f.peakMemoryStep})\n`);
        runs.push(f);
      }
    }
  }
  const best = HUB_LINKS.flatMap((link) => PUBLISH_WAYS.map((way) => runs.filter((f) => f.way === way && f.link === link)
    .reduce((a, f) => (f.wallSeconds < a.wallSeconds ? f : a))));
  const of = (way: PublishWay, link: HubLink) => best.find((f) => f.way === way && f.link === link)!;
  const ratios = Object.fromEntries(HUB_LINKS.map((link) => [link, {
    seedOverVolume: of('seed', link).wallSeconds / of('volume', link).wallSeconds,
    seedOverStreaming: of('seed', link).wallSeconds / of('streaming', link).wallSeconds,
    volumeOverStreaming: of('volume', link).wallSeconds / of('streaming', link).wallSeconds,
  }])) as PublishStageResult['ratios'];
  const ours = runs.filter((f) => f.way !== 'seed').map((f) => f.digest);
  return { rounds, runs, best, ratios, sameDigestVolumeAndStreaming: ours.every((d) => d === ours[0]) };
}

/** The stage's table (lines to print). */
export function publishTable(result: PublishStageResult, model: SyntheticModel): string[] {
  const mib = (n: number) => `${(n / MiB).toFixed(0)} MiB`;
  const rows = [
    ['hub link', 'way', 'wall s', 'written', 'written/model', 'net/model', 'peak memory (step, its limit)'],
    ...result.best.map((f) => [
      f.link === 'open' ? 'open loopback' : `CDN ${(f.cdnCapBytesPerSecond ?? 0) / MiB} MiB/s/conn`, f.way, f.wallSeconds.toFixed(1),
      `${(f.bytesWritten / GiB).toFixed(2)} GiB`, f.writtenPerModelByte.toFixed(3), f.netWrittenPerModelByte.toFixed(3),
      `${mib(f.peakMemoryBytes)} (${f.peakMemoryStep}, ${f.peakMemoryLimit ?? 'no limit'})`,
    ]),
  ];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  const lines = [
    `publish: the whole publish to both registries (download included), ${(model.totalBytes / GiB).toFixed(2)} GiB model; wall = first task start `
      + 'to push-quay end; written = storage writes of every step of the run (registries\' own storage not counted for any way)'
      + (result.rounds > 1 ? `; best of ${result.rounds} rounds` : ''),
    ...rows.map((row) => row.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()),
  ];
  for (const link of HUB_LINKS) {
    const r = result.ratios[link];
    lines.push(`  wall-time ratios (${link === 'open' ? 'open loopback' : 'CDN capped'}): seed/volume ${r.seedOverVolume.toFixed(2)}x, `
      + `seed/streaming ${r.seedOverStreaming.toFixed(2)}x, volume/streaming ${r.volumeOverStreaming.toFixed(2)}x`);
  }
  lines.push('  per run, per task: seconds / bytes written / highest step cgroup peak (the page cache of what a step writes is charged to it); '
    + 'net = written minus what was deleted before writeback (cancelled_write_bytes)');
  for (const f of result.runs) {
    lines.push(`  ${result.rounds > 1 ? `round ${f.round}: ` : ''}${f.way} (${f.link}): ${Object.entries(f.perTask).map(([t, v]) => `${t} ${v.seconds.toFixed(1)} s / ${(v.bytesWritten / GiB).toFixed(2)} GiB`
      + (v.peakMemoryBytes !== undefined ? ` / ${mib(v.peakMemoryBytes)}` : '')).join(', ')}; ${f.cdnRequests} CDN requests; CPU s: bench (fake hub, runner) `
      + `${f.benchCpuSeconds.toFixed(1)}, registry internal ${f.registryCpuSeconds.internal.toFixed(1)}, quay ${f.registryCpuSeconds.quay.toFixed(1)}; `
      + `load ${f.loadAverage1mAtStart.toFixed(2)} at its start`);
  }
  lines.push(`  volume and streaming published the same digest on both links: ${result.sameDigestVolumeAndStreaming}`);
  return lines;
}
