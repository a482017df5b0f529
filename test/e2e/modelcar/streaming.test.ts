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
import { ConnectProxy, startConnectProxy } from '../support/connect-proxy';
import { SyntheticModel, writeSyntheticModel } from '../support/model-fixture';
import { LocalRegistry, startRegistry } from '../support/registry';
import { FaultProxy, REGISTRY_ROUTES, startFaultProxy } from '../support/registry-faults';
import { freshWorkDir } from '../support/tools';

jest.setTimeout(300_000);

const TAGS = ['streamed', 'streamed-alias'];

let work: string;
let world: World;
let model: SyntheticModel;
let streaming: any[];
let volume: any[];
/** The internal registry behind a fault proxy (distribution 2.8 as it is), and the streaming pipeline pushing through it. */
let proxy: FaultProxy;
let viaProxy: any[];
/** The same, the proxy standing in for a registry that tells a stale upload URL its offset. */
let tracking: FaultProxy;
let viaTracking: any[];
/** A registry that authenticates by the Bearer token flow (docker-registry's own token auth, and a token service stand-in). */
let tokenRegistry: LocalRegistry;
let viaToken: any[];
/** An egress proxy (CONNECT only), as a cluster-wide proxy: the token scenario's stream reaches everything through it. */
let egress: ConnectProxy;

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
  proxy = await startFaultProxy(world.internal);
  tracking = await startFaultProxy(world.internal, { trackUploadOffsets: true });
  tokenRegistry = await startRegistry({ name: 'token', workDir: path.join(work, 'registry-token'), ca: world.ca, auth: 'token' });
  const synthVia = (dir: string, internal: { host: string }) => synthesizePipeline(world, path.join(work, dir), {
    builder,
    internal,
    publishMode: PublishMode.streaming({ chunkSize: Size.mebibytes(1), parallelLayers: 2 }),
    runs: [{ name: 'streamed-forced', tags: TAGS, forceRebuild: true }],
  });
  viaProxy = synthVia('dist-proxy', proxy);
  viaTracking = synthVia('dist-tracking', tracking);
  viaToken = synthVia('dist-token', tokenRegistry);
  egress = await startConnectProxy();
}, 120_000);

afterAll(async () => {
  await proxy?.close();
  await tracking?.close();
  await tokenRegistry?.stop();
  await egress?.close();
  await stopWorld(world);
});

/** A forced streaming run whose first target is `via` (a proxy or another registry), with its credentials. */
async function forcedVia(name: string, manifests: any[], via: { dockerConfigJson: string },
  opts: Partial<RunModelcarOptions> = {}): Promise<RunPipelineResult> {
  return forced(name, { manifests, secrets: { 'internal-push': { '.dockerconfigjson': via.dockerConfigJson } }, ...opts });
}

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

  test('5xx, a PATCH cut mid-body, an answer lost, an expired session (distribution 2.8 as it is): each retried or started again, same image', async () => {
    proxy.reset();
    proxy.failWith(500, 2, REGISTRY_ROUTES.uploadPatch);
    proxy.cutRequestBody(1, REGISTRY_ROUTES.uploadPatch, 200_000);
    proxy.cutAfterForwarding(1, REGISTRY_ROUTES.uploadPatch);
    proxy.expireUpload(1, REGISTRY_ROUTES.uploadPatch);
    proxy.failWith(503, 1, REGISTRY_ROUTES.manifestPut);
    const r = await forcedVia('registry-faults', viaProxy, proxy);
    if (r.status !== 'Succeeded') throw new Error(r.log.slice(-6000));
    expect(proxy.pendingFaults()).toEqual([]);
    expect(r.tasks['stream-internal'].results.IMAGE_DIGEST).toBe(digest);
    const log = stepLog(r, 'stream-internal', 'stream');
    // In the registry's own words, retried.
    expect(log).toMatch(/HTTP 500: UNKNOWN: unknown error.*retrying in/);
    expect(log).toMatch(/PUT .*manifests.*HTTP 503: UNAVAILABLE: service unavailable.*retrying in/);
    // The cut body: the registry got none of it, the session goes on from what it holds.
    expect(log).toMatch(/the connection was closed before an answer|connection failed/);
    // The lost answer (2.8 no longer takes that session's URL: BLOB_UPLOAD_INVALID) and the expired session
    // (BLOB_UPLOAD_UNKNOWN): the blob starts again in a new session.
    expect(log).toMatch(/BLOB_UPLOAD_INVALID.*starting the blob again/);
    expect(log).toMatch(/BLOB_UPLOAD_UNKNOWN.*starting the blob again/);
  });

  test('an answer lost where the registry tells the offset: the upload goes on from the registry\'s offset, not from the start', async () => {
    tracking.reset();
    tracking.cutAfterForwarding(2, REGISTRY_ROUTES.uploadPatch);
    const r = await forcedVia('offset-resume', viaTracking, tracking);
    if (r.status !== 'Succeeded') throw new Error(r.log.slice(-6000));
    expect(r.tasks['stream-internal'].results.IMAGE_DIGEST).toBe(digest);
    const log = stepLog(r, 'stream-internal', 'stream');
    expect(log.match(/the registry holds \d+ bytes, resuming there/g)?.length).toBe(2);
    expect(log).not.toMatch(/starting the blob again/);
  });

  test('a registry that keeps failing: the stream fails within its retries, in the registry\'s words, and no manifest or tag is pushed', async () => {
    proxy.reset();
    proxy.failWith(503, 1000, REGISTRY_ROUTES.uploadPatch, { message: 'storage backend is read-only (injected)' });
    const r = await forcedVia('registry-down', viaProxy, proxy);
    expect(r.status).toBe('Failed');
    const log = stepLog(r, 'stream-internal', 'stream');
    expect(log).toMatch(/stream-publish: error: .*HTTP 503: UNAVAILABLE: storage backend is read-only \(injected\).*gave up after 5 attempts in a row without progress/);
    // The proxy saw the stream's uploads (the checks below would hold for a stream that sent nothing).
    expect(proxy.requests.filter((q) => q.method === 'PATCH' && q.status === 503).length).toBeGreaterThanOrEqual(5);
    expect(proxy.requests.filter((q) => q.method === 'PUT' && /\/manifests\//.test(q.path))).toEqual([]);
    // Every session it opened was cancelled (DELETE) or never committed (no PUT on an upload URL).
    expect(proxy.requests.filter((q) => q.method === 'PUT' && /\/blobs\/uploads\//.test(q.path) && q.status === 201)).toEqual([]);
    expect(r.tasks['push-quay']?.status ?? 'NotRun').not.toBe('Succeeded');
  });

  test('a file the hub serves other than its listing says: its layer is cancelled, nothing is committed for it, no manifest', async () => {
    proxy.reset();
    const shard = model.files.find((f) => f.path === 'model-00002-of-00003.safetensors')!;
    const file = path.join(model.dir, shard.path);
    const fd = fs.openSync(file, 'r+');
    const original = Buffer.alloc(1);
    try {
      // One byte in the middle of the shard (past its first chunk) changes on the hub's storage; its listing keeps
      // the sha256 it had.
      fs.readSync(fd, original, 0, 1, 5_000_000);
      fs.writeSync(fd, Buffer.from([255 - original[0]]), 0, 1, 5_000_000);
      const r = await forcedVia('hub-mismatch', viaProxy, proxy);
      expect(r.status).toBe('Failed');
      const log = stepLog(r, 'stream-internal', 'stream');
      expect(log).toMatch(/stream-publish: error: model-00002-of-00003\.safetensors from the hub does not match the hub's listing \(sha256 \(LFS oid\) [0-9a-f]{64}, listed [0-9a-f]{64}\): refusing to publish it; its layer is cancelled/);
      expect(proxy.requests.filter((q) => q.method === 'PUT' && /\/manifests\//.test(q.path))).toEqual([]);
      // Its session was cancelled (DELETE on it), never committed.
      const sessions = proxy.requests.filter((q) => q.method === 'DELETE' && /\/blobs\/uploads\//.test(q.path));
      expect(sessions.length).toBeGreaterThanOrEqual(1);
    } finally {
      fs.writeSync(fd, original, 0, 1, 5_000_000);
      fs.closeSync(fd);
    }
  });

  test('the Bearer token flow (a quay.io-like token service): tokens asked for pull,push, renewed as they expire mid-push; base layers copied across registries; all through an egress proxy', async () => {
    const tokens = tokenRegistry.tokenServer!;
    tokens.reset();
    egress.connects.length = 0;
    const log = logTo('token');
    const r = await forcedVia('token', viaToken, tokenRegistry, {
      // While the stream step runs, and only then, tokens live 1 s and the registry holds them to it (no leeway): the
      // stream, which takes longer, must renew its token. (skopeo,
      // in the tasks before and after, takes any token for at least 60 s, as the token spec lets clients do.)
      log: (line) => {
        log(line);
        if (line.startsWith('[stream-internal/stream] stream-publish: ')) Object.assign(tokens, { lifetimeSeconds: 1, strictExpiry: true });
        if (/^\[stream-internal\] (Succeeded|Failed)/.test(line)) Object.assign(tokens, { lifetimeSeconds: 300, strictExpiry: false });
      },
      // HTTPS_PROXY on the stream step only, as a cluster-wide proxy's env would be.
      overrides: (task, step, spec) => (task === 'stream-internal' && step === 'stream'
        ? { ...spec, env: [...spec.env, { name: 'HTTPS_PROXY', value: egress.url }] } : undefined),
    });
    if (r.status !== 'Succeeded') throw new Error(r.log.slice(-6000));
    expect(r.tasks['stream-internal'].results.IMAGE_DIGEST).toBe(digest);
    expect(await servedDigest(tokenRegistry, `${repositoryOf(tokenRegistry)}:${TAGS[0]}`)).toBe(digest);
    const streamLog = stepLog(r, 'stream-internal', 'stream');
    // The base is in another registry: its layers go registry to registry through the stream step.
    expect(streamLog).toMatch(/base layer sha256:[0-9a-f]{64}: .* copied from /);
    const requests = tokens.requests;
    const streamed = requests.filter((q) => q.credentials === 'valid' && q.scopes.includes(`repository:${repositoryOf(tokenRegistry).split('/').slice(1).join('/')}:pull,push`));
    // Renewed: a token lives 1 s and the stream takes longer.
    expect(streamed.length).toBeGreaterThanOrEqual(2);
    expect(requests.filter((q) => q.credentials !== 'valid')).toEqual([]);
    // Every host the stream reached, through the proxy: the hub, its CDN, the base's registry, the token service, the target.
    const tunnels = new Set(egress.connects);
    const hosts = [world.hub.hubUrl, world.hub.cdnUrl, tokenRegistry.tokenServer!.url].map((u) => new URL(u).host);
    for (const host of [...hosts, world.internal.host, tokenRegistry.host]) {
      expect(tunnels).toContain(host);
    }
  });
});
