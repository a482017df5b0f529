/**
 * End-to-end scenarios: the synthesized modelcar pipeline (the YAML users apply, default layout builder) run by
 * test/e2e/runner with the real tools: skopeo, python3, coreutils, two docker-registry servers with TLS and
 * htpasswd on 127.0.0.1, under the identities the YAML asks for (fsGroup 1000970000, OpenShift-like uid).
 *
 * Replaced, and named so: only the Hugging Face hub (a fake hub and CDN over TLS, test/e2e/support/fake-hub.ts); the
 * download task's real fetch step talks to it. Failures are staged at
 * precise points with `wrapStep` (the staging is shell in the test; the step it wraps runs unchanged) or from
 * outside (killing the builder, stopping a registry), then the pipeline's own checks must catch them.
 *
 * Missing tools or no root make the suite FAIL, never skip.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { Size } from 'cdk8s';
import { FS_GROUP, MODEL_COMMIT, NAMESPACE, repositoryOf, runModelcar, RunModelcarOptions, runNameOf, servedDigest, startWorld, stopWorld, synthesizePipeline, World, wrapStep } from './world';
import { ModelcarBuilder, VolumeCleanup } from '../../../src';
import { RunPipelineResult, sandboxSupport } from '../runner/tekton-runner';
import { describeModelDir, SyntheticModel, writeSyntheticModel } from '../support/model-fixture';
import { checkModelcarContract } from '../support/modelcar-contract';
import { makeCa } from '../support/registry';
import { freshWorkDir, run } from '../support/tools';

jest.setTimeout(300_000);

let work: string;
let world: World;
let model: SyntheticModel;
let bigModel: SyntheticModel;
let manifests: any[];
let claimManifests: any[];
/** Synthesized like the default app: no fsGroup, the service account's token and docker secrets. */
let namespaceManifests: any[];

/** A namespace range that is not the seed's 1000970000 (OpenShift allocates one per namespace, different everywhere). */
const NAMESPACE_SCC = { uidRange: '1000650000/10000', supplementalGroups: '1000650000/10000' };
const NAMESPACE_UID = 1000650000;

/** The analysis's fix "serialize push-to-quay after push-to-internal": quay starts only after internal finished. */
function pushesSerialized(r: RunPipelineResult): boolean {
  const internal = r.tasks['push-internal'];
  const quay = r.tasks['push-quay'];
  if (!internal?.finishedAt || !quay?.startedAt) throw new Error('both pushes must have run');
  return quay.startedAt.getTime() >= internal.finishedAt.getTime();
}

/** PipelineRun names (each synthesized with its own tag) */
const RUNS = ['happy', 'stale-a', 'stale-b', 'perm-denied', 'perm-ok', 'corrupt', 'down', 'transient', 'bad-creds', 'bad-ca', 'bad-base-creds', 'killed', 'swapped', 'altered-blob', 'repeat-1', 'repeat-2',
  'dl-uncut', 'dl-cut', 'dl-429', 'dl-full', 'dl-pages'];
let retryManifests: any[];

function logTo(name: string): (line: string) => void {
  const file = path.join(work, 'logs', `${name}.log`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  return (line) => fs.appendFileSync(file, `${line}\n`);
}

async function runScenario(name: string, opts: Partial<RunModelcarOptions> = {}): Promise<RunPipelineResult> {
  return runModelcar(world, {
    manifests: opts.manifests ?? manifests,
    pipelineRun: name,
    workDir: path.join(work, 'runs'),
    model: opts.model ?? model,
    log: logTo(name),
    ...opts,
  });
}

function stepLog(r: RunPipelineResult, task: string, step: string): string {
  return r.tasks[task]?.steps.find((s) => s.name === step)?.log ?? '';
}

/** Statuses of the pipeline's tasks in order, e.g. ['download-model:Succeeded', ...]. */
/**
 * SIGKILLs the python3 step scripts (as Tekton runs them, from /tekton/scripts/) whose environment holds `marker`:
 * this run's and no other, since other test processes on the host (another checkout's suite) run steps too.
 * Returns the pids killed.
 */
function killStepScripts(marker: string): string[] {
  const killed: string[] = [];
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmd.includes('python3') && cmd.includes('/tekton/scripts/') && fs.readFileSync(`/proc/${pid}/environ`, 'utf8').includes(marker)) {
        process.kill(Number(pid), 'SIGKILL');
        killed.push(pid);
      }
    } catch {
      // the process is gone
    }
  }
  return killed;
}

function statuses(r: RunPipelineResult): string[] {
  return ['download-model', 'build-image', 'push-internal', 'push-quay'].map((t) => `${t}:${r.tasks[t]?.status ?? 'NotRun'}`);
}

async function expectNothingPushed(tag: string): Promise<void> {
  expect(await servedDigest(world.internal, `${repositoryOf(world.internal)}:${tag}`)).toBeUndefined();
  expect(await servedDigest(world.quay, `${repositoryOf(world.quay)}:${tag}`)).toBeUndefined();
}

/** The host directory of the run's per-run folder on the shared volume (volumeClaimTemplate or claim). */
function runDirs(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string, depth: number) => {
    if (depth > 6 || !fs.existsSync(d)) return;
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (!e.isDirectory()) continue;
      const p = path.join(d, e.name);
      if (path.basename(d) === 'modelcar-runs') out.push(p);
      else walk(p, depth + 1);
    }
  };
  walk(root, 0);
  return out;
}

/** The host directory of a run's folder on its volume (modelcar-runs/<PipelineRun uid>). */
function runDirOf(r: RunPipelineResult, root = path.join(work, 'runs')): string {
  const dir = runDirs(root).find((d) => path.basename(d) === r.pipelineRun.uid);
  if (!dir) throw new Error(`no modelcar-runs/${r.pipelineRun.uid} under ${root}`);
  return dir;
}

beforeAll(async () => {
  const support = sandboxSupport();
  if (!support.ok) throw new Error(`the e2e runner cannot run here: ${support.reason}`);
  work = freshWorkDir('scenarios');
  world = await startWorld(work);
  // Three shards of ~10 MiB plus config, tokenizer and index: "a few tens of MB of safetensors-like files".
  model = await writeSyntheticModel(path.join(work, 'model'), { totalBytes: 30 * 1024 * 1024, files: 3 });
  bigModel = await writeSyntheticModel(path.join(work, 'big-model'), { totalBytes: 256 * 1024 * 1024, files: 1 });
  // The layout builder (the default) with a 4 MiB threshold, so that the ~10 MiB shards get a layer each.
  const builder = ModelcarBuilder.ociLayout({ largeFileThreshold: Size.mebibytes(4) });
  // The push failures (registry down, back during the retries, wrong credentials, untrusted CA) are staged for the
  // whole run: forced rebuilds, whose check asks no registry, let them reach the push they are about. The check's
  // own failures with a registry down or refusing credentials are in published.test.ts.
  const forced = ['down', 'transient', 'bad-creds', 'bad-ca'];
  // 4 MiB download ranges: each ~10 MiB shard comes in three ranges over the 8 connections.
  const downloadChunkSize = Size.mebibytes(4);
  // The volume clean-up, in each of its modes where a scenario can tell them apart: keepFailed() here, so that a
  // failed run's directory stays for the scenario to look into (a succeeded one is removed: scenario 1); never()
  // where a scenario reads a succeeded run's directory (10c) or an earlier run's leftovers (2); the default,
  // always(), like the default app, in the namespace's runs (9a, 9d).
  manifests = synthesizePipeline(world, path.join(work, 'dist'), {
    builder,
    downloadChunkSize,
    volumeCleanup: VolumeCleanup.keepFailed(),
    runs: RUNS.map((n) => ({ name: n, tags: [n, `${n}-alias`], forceRebuild: forced.includes(n) || undefined })),
  });
  retryManifests = synthesizePipeline(world, path.join(work, 'dist-retry'), {
    builder, downloadChunkSize, downloadRetries: 1, volumeCleanup: VolumeCleanup.never(), runs: [{ name: 'dl-retry', tags: ['dl-retry'] }],
  });
  claimManifests = synthesizePipeline(world, path.join(work, 'dist-claim'), {
    builder, volumeCleanup: VolumeCleanup.never(), runs: RUNS.map((n) => ({ name: n, tags: [n] })), existingClaim: 'models',
  });
  namespaceManifests = synthesizePipeline(world, path.join(work, 'dist-namespace'), {
    builder,
    serviceAccountCredentials: true,
    runs: [
      { name: 'ns-default', tags: ['ns-default', 'ns-default-alias'], fsGroup: 'namespace' },
      { name: 'ns-seed-group', tags: ['ns-seed-group'], fsGroup: FS_GROUP },
      { name: 'ns-parallel', tags: ['ns-parallel'], fsGroup: 'namespace' },
      { name: 'ns-build-fails', tags: ['ns-build-fails'], fsGroup: 'namespace' },
    ],
  });
}, 120_000);

afterAll(async () => {
  await stopWorld(world);
});

beforeEach(() => {
  world?.hub.reset();
});

describe('modelcar pipeline end to end (layout builder, the default)', () => {
  test('1. happy path: download, build, both pushes; both registries serve the build\'s digest; /models comes back byte for byte', async () => {
    const r = await runScenario('happy');
    expect(statuses(r)).toEqual(['download-model:Succeeded', 'build-image:Succeeded', 'push-internal:Succeeded', 'push-quay:Succeeded']);
    expect(r.status).toBe('Succeeded');
    // The run is the one the YAML names from its inputs (variant, then the hash): runNameOf() found it.
    expect(r.pipelineRun.name).toMatch(/^happy-[0-9a-f]{10}$/);
    // The check resolved main to its commit; the real fetch step downloaded every file of exactly that commit from
    // the fake hub over TLS.
    expect(stepLog(r, 'check-published', 'resolve')).toContain(`resolved e2e-org/synthetic-model@main -> commit ${MODEL_COMMIT}`);
    expect(stepLog(r, 'download-model', 'fetch')).toContain(`resolved e2e-org/synthetic-model@${MODEL_COMMIT} -> commit ${MODEL_COMMIT}`);
    for (const f of model.files) expect(world.hub.fileRequests(f.path).length).toBeGreaterThanOrEqual(1);

    const digest = r.tasks['build-image'].results.IMAGE_DIGEST;
    expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(r.results).toMatchObject({
      INTERNAL_IMAGE_DIGEST: digest,
      QUAY_IMAGE_DIGEST: digest,
      INTERNAL_IMAGE_REF: `${repositoryOf(world.internal)}@${digest}`,
      QUAY_IMAGE_REF: `${repositoryOf(world.quay)}@${digest}`,
      MODEL_RESOLVED_REVISION: MODEL_COMMIT,
      MODEL_SIZE: String(model.totalBytes),
    });
    for (const tag of ['happy', 'happy-alias']) {
      expect(await servedDigest(world.internal, `${repositoryOf(world.internal)}:${tag}`)).toBe(digest);
      expect(await servedDigest(world.quay, `${repositoryOf(world.quay)}:${tag}`)).toBe(digest);
    }
    // Serialized pushes: quay starts after internal finished (the runner runs independent tasks at once, so a
    // missing runAfter would show: see 9c).
    expect(pushesSerialized(r)).toBe(true);
    // The default build ran without buildah and without any added capability.
    expect(r.tasks['build-image'].steps.map((s) => s.name)).toEqual(['debug', 'base', 'layers', 'verify', 'publish']);
    // Every pod as the cluster builds it: place-scripts exec'd, each step's termination message within the kubelet's
    // share, each step in a real cgroup under the namespace's LimitRange (2 GiB). The figures go to the log.
    const pods = Object.entries(r.tasks).map(([name, t]) => ({
      name,
      placeScripts: t.pod?.placeScriptsBytes,
      share: t.pod?.terminationMessageShare,
      steps: t.steps.map((st) => `${st.name} uid=${st.uid} msg=${st.terminationMessageBytes ?? '-'}B peak=${((st.peakMemoryBytes ?? 0) / 2 ** 20).toFixed(1)}MiB`),
    }));
    logTo('pod-figures')(JSON.stringify(pods, undefined, 1));
    // eslint-disable-next-line no-console
    if (process.env.MODELCAR_POD_FIGURES) console.log(JSON.stringify(pods, undefined, 1));
    for (const t of Object.values(r.tasks)) {
      expect(t.pod?.placeScriptsBytes).toBeLessThan(65_536);
      for (const st of t.steps.filter((x) => x.reason === 'Completed')) {
        expect(st.peakMemoryBytes).toBeGreaterThan(0);
        expect(st.peakMemoryBytes).toBeLessThan(2 * 2 ** 30);
        expect(st.terminationMessageBytes ?? 0).toBeLessThanOrEqual(t.pod!.terminationMessageShare);
      }
    }
    // Under pipelines-scc each step runs as its image's own user (skopeo root, Python 1001), sharing the fsGroup:
    // the analysis's first root cause (identities that differ between steps), which the build must survive.
    expect(r.tasks['build-image'].steps.map((s) => [s.name, s.uid, s.groups!.includes(FS_GROUP)])).toEqual([
      ['debug', 0, true], ['base', 0, true], ['layers', 1001, true], ['verify', 1001, true], ['publish', 0, true],
    ]);

    // Pull it back from quay by digest and unpack it as a container runtime would.
    const pulled = path.join(work, 'pulled');
    await run('skopeo', ['copy', '--quiet', '--src-cert-dir', world.quay.certDir, '--src-authfile', world.quay.authFile,
      `docker://${repositoryOf(world.quay)}@${digest}`, `oci:${pulled}:x`]);
    const manifest = JSON.parse((await run('skopeo', ['inspect', '--raw', `oci:${pulled}:x`])).stdout);
    const rootfs = path.join(work, 'rootfs');
    fs.mkdirSync(rootfs);
    for (const layer of manifest.layers) {
      await run('tar', ['-xf', path.join(pulled, 'blobs', 'sha256', layer.digest.split(':')[1]), '-C', rootfs]);
    }
    const files = await describeModelDir(path.join(rootfs, 'models'));
    expect(files).toEqual(model.files);
    // What KServe needs of a modelcar: a shell, /models present and not empty, readable by an arbitrary uid.
    const check = await run('chroot', ['--userspec=123456:123456', rootfs, '/bin/sh', '-c',
      'test -d /models && [ -n "$(ls -A /models)" ] && cd /models && sha256sum *']);
    expect(check.stdout.trim().split('\n')).toEqual(model.files.map((f) => `${f.sha256}  ${f.path}`));
    const config = JSON.parse((await run('skopeo', ['inspect', '--config', `oci:${pulled}:x`])).stdout);
    expect(config.config.Labels).toMatchObject({ 'io.kserve.modelcar.model': 'e2e-org/synthetic-model', 'io.kserve.modelcar.revision': MODEL_COMMIT });
    expect(config.config.Entrypoint ?? null).toBeNull();
    // KServe's modelcar contract (modelcar sidecar and init container, oci+fetch), on the image quay serves.
    const contract = await checkModelcarContract(world.quay, `${repositoryOf(world.quay)}@${digest}`, path.join(work, 'contract-happy'));
    expect(contract.modelFiles).toEqual(Object.fromEntries(model.files.map((f) => [f.path, f.size])));
    // The busybox base's gzip layer, then the model: the small files together and one layer per ~10 MiB shard.
    expect(contract.layerMediaTypes).toEqual(['application/vnd.oci.image.layer.v1.tar+gzip', ...Array(4).fill('application/vnd.oci.image.layer.v1.tar')]);
    // The volume given back: the finally task removed the run's directory (model and image) once the run succeeded.
    expect(r.tasks['clean-up']).toMatchObject({ status: 'Succeeded', isFinally: true });
    expect(stepLog(r, 'clean-up', 'clean-up')).toContain(`removed /workspace/source/modelcar-runs/${r.pipelineRun.uid}`);
    expect(runDirs(path.join(work, 'runs')).map((d) => path.basename(d))).not.toContain(r.pipelineRun.uid);
  });

  test('2. stale artifact on a reused volume: the new build fails midway, nothing is pushed, the log says why', async () => {
    const claim = path.join(work, 'claim-models');
    const a = await runScenario('stale-a', { manifests: claimManifests, claims: { models: claim } });
    expect(a.status).toBe('Succeeded');
    const oldDigest = a.tasks['build-image'].results.IMAGE_DIGEST;
    const [oldRun] = runDirs(claim);
    const snapshot = (dir: string) => JSON.stringify({
      index: fs.readFileSync(path.join(dir, 'index.json'), 'utf8'),
      blobs: fs.readdirSync(path.join(dir, 'blobs', 'sha256')).map((b) => [b, fs.statSync(path.join(dir, 'blobs', 'sha256', b)).size]),
    });
    const before = snapshot(path.join(oldRun, 'image'));

    // Run B on the same volume: a model shard changes on the volume after the download checked it (the build
    // reads every byte against SHA256SUMS and fails after writing the first layers).
    const b = await runScenario('stale-b', {
      manifests: claimManifests,
      claims: { models: claim },
      overrides: (task, step, spec) => (task === 'build-image' && step === 'layers'
        ? wrapStep(spec, { before: 'printf "corrupted" | dd of="${MODEL_DIR}/model-00003-of-00003.safetensors" bs=1 seek=4096 conv=notrunc 2>/dev/null' })
        : undefined),
    });
    expect(statuses(b)).toEqual(['download-model:Succeeded', 'build-image:Failed', 'push-internal:Skipped', 'push-quay:Skipped']);
    expect(b.status).toBe('Failed');
    // The first two shards' layers were written (the small files' layer comes last, on top), then the third failed.
    expect(stepLog(b, 'build-image', 'layers')).toMatch(/layer 2\/4: sha256:/);
    expect(stepLog(b, 'build-image', 'layers')).not.toMatch(/layer 3\/4: sha256:/);
    expect(stepLog(b, 'build-image', 'layers')).toContain('model-00003-of-00003.safetensors does not match SHA256SUMS from the download');
    await expectNothingPushed('stale-b');
    // The old artifact is still on the volume, untouched, and was not pushed for run B; run B has no artifact.
    const dirs = runDirs(claim);
    expect(dirs).toHaveLength(2);
    const newRun = dirs.find((d) => d !== oldRun)!;
    expect(fs.existsSync(path.join(newRun, 'image'))).toBe(false);
    expect(snapshot(path.join(oldRun, 'image'))).toBe(before);
    expect(await servedDigest(world.quay, `${repositoryOf(world.quay)}:stale-a`)).toBe(oldDigest);
  });

  test('3. permission: a push task under another identity fails at the preamble, naming uid, groups, owner, group and mode; the generated securityContext passes', async () => {
    // The seed's symptom A: a task with its own securityContext (no fsGroup) on a volume only the fsGroup may enter.
    const seedLike = manifests.map((d) => (d.kind === 'PipelineRun' && d.metadata.name === runNameOf(manifests, 'perm-denied')
      ? { ...d, spec: { ...d.spec, taskRunSpecs: [{ pipelineTaskName: 'push-internal', podTemplate: { securityContext: { runAsUser: 1001, runAsGroup: 1001 } } }] } }
      : d));
    // The seed's cluster had no SCC to assign an fsGroup: under pipelines-scc (fsGroup MustRunAs) or restricted-v2 the
    // namespace's fsGroup would be set on this pod anyway, so the symptom needs a cluster without one.
    const denied = await runScenario('perm-denied', { manifests: seedLike, freshVolumeMode: 0o770, extra: { scc: undefined, imageUsers: undefined } });
    expect(statuses(denied)).toEqual(['download-model:Succeeded', 'build-image:Succeeded', 'push-internal:Failed', 'push-quay:Skipped']);
    const debug = denied.tasks['push-internal'].steps[0];
    expect(debug.name).toBe('debug');
    expect(debug.exitCode).toBe(1);
    expect(debug.log).toMatch(/cannot read \/workspace\/source: this task runs as uid 1001, gid 1001, groups 1001; the file has owner \S+ \(uid 0\), group \S+ \(gid 1000970000\), mode drwxrws---/);
    expect(debug.log).toContain('Likely fix: run every task under the same fsGroup');
    expect(denied.tasks['push-internal'].steps.find((s) => s.name === 'push')!.reason).not.toBe('Completed');
    await expectNothingPushed('perm-denied');

    // The same cluster, with the generated securityContext: passes.
    const ok = await runScenario('perm-ok', { freshVolumeMode: 0o770, extra: { scc: undefined, imageUsers: undefined } });
    expect(statuses(ok)).toEqual(['download-model:Succeeded', 'build-image:Succeeded', 'push-internal:Succeeded', 'push-quay:Succeeded']);
    expect(ok.tasks['push-internal'].steps[0].log).toContain(`artifact is readable by uid ${FS_GROUP}`);
  });

  test('4. corrupt artifact (a truncated blob): validation fails before any push', async () => {
    const r = await runScenario('corrupt', {
      overrides: (task, step, spec) => (task === 'build-image' && step === 'layers'
        // after the layers are written: cut the largest blob in half (a full disk, a crashed writer)
        ? wrapStep(spec, { after: 'f=$(ls -S "${LAYOUT}"/blobs/sha256/* | head -n 1); truncate -s "$(( $(stat -c %s "$f") / 2 ))" "$f"; echo "E2E truncated $f"' })
        : undefined),
    });
    expect(statuses(r)).toEqual(['download-model:Succeeded', 'build-image:Failed', 'push-internal:Skipped', 'push-quay:Skipped']);
    expect(stepLog(r, 'build-image', 'verify')).toMatch(/the built artifact is not valid: blob sha256:[0-9a-f]{64} has \d+ bytes, its descriptor says \d+: the artifact is truncated or corrupt/);
    expect(r.tasks['build-image'].results.IMAGE_DIGEST).toBeUndefined();
    await expectNothingPushed('corrupt');
    // Why the verify step exists: skopeo inspect (the analysis's validation) accepts the truncated layout.
    const partial = path.join(runDirOf(r), '.image.partial');
    const inspect = await run('skopeo', ['inspect', `oci:${partial}:modelcar`], { allowFailure: true });
    expect(inspect.code).toBe(0);
    expect(fs.existsSync(path.join(runDirOf(r), 'image'))).toBe(false);
  });

  test('5a. registry down: the push retries a bounded number of times, then fails clearly; nothing partial counts as success', async () => {
    // quay's port always holds "401" (world.ts): the diagnosis must come from the error, not from the port (#13).
    expect(String(world.quay.port)).toContain('401');
    await world.quay.stop();
    try {
      const r = await runScenario('down');
      expect(statuses(r)).toEqual(['download-model:Succeeded', 'build-image:Succeeded', 'push-internal:Succeeded', 'push-quay:Failed']);
      const push = stepLog(r, 'push-quay', 'push');
      expect(push).toContain(`dial tcp ${world.quay.host}: connect: connection refused`);
      expect(push).toContain(`push to ${repositoryOf(world.quay)} failed: cannot reach the registry (after 3 retries)`);
      expect(push).not.toContain('credentials');
      expect(push.match(/retrying/gi)?.length).toBe(3);
      expect(r.status).toBe('Failed');
      expect(r.tasks['push-quay'].results).toEqual({});
      expect(Object.keys(r.results).filter((k) => /^QUAY_/.test(k))).toEqual([]);
    } finally {
      await world.quay.restart();
    }
    expect(await servedDigest(world.quay, `${repositoryOf(world.quay)}:down`)).toBeUndefined();
  });

  test('5b. registry back during the retries: the push succeeds', async () => {
    await world.quay.stop();
    let restarted: Promise<void> | undefined;
    const log = logTo('transient');
    const r = await runScenario('transient', {
      log: (line) => {
        log(line);
        // skopeo's first attempt fails at once (connection refused) and its first retry comes 1 s later: the
        // registry is back 0.8 s after the copy starts, in between. The log must show that retry.
        if (!restarted && /^\[push-quay\/push\] copying to docker:/.test(line)) {
          restarted = new Promise((resolve) => setTimeout(resolve, 800)).then(() => world.quay.restart());
        }
      },
    });
    await restarted;
    expect(restarted).toBeDefined();
    expect(statuses(r)).toEqual(['download-model:Succeeded', 'build-image:Succeeded', 'push-internal:Succeeded', 'push-quay:Succeeded']);
    expect(stepLog(r, 'push-quay', 'push')).toMatch(/retrying/i);
    expect(await servedDigest(world.quay, `${repositoryOf(world.quay)}:transient`)).toBe(r.tasks['build-image'].results.IMAGE_DIGEST);
  });

  test('5c. wrong credentials: the push fails at once with what to fix; the earlier push stays, the run fails', async () => {
    const wrong = { '.dockerconfigjson': JSON.stringify({ auths: { [world.quay.host]: { auth: Buffer.from('robot:wrong-password').toString('base64') } } }) };
    const r = await runScenario('bad-creds', { secrets: { 'quay-push': wrong } });
    expect(statuses(r)).toEqual(['download-model:Succeeded', 'build-image:Succeeded', 'push-internal:Succeeded', 'push-quay:Failed']);
    const push = stepLog(r, 'push-quay', 'push');
    expect(push).toContain('unauthorized: authentication required');
    expect(push).toContain('the registry refused the credentials (401): check the docker config secret or service account of the push target');
    expect(push).not.toMatch(/retrying/i);
    expect(r.status).toBe('Failed');
    expect(r.results.QUAY_IMAGE_DIGEST).toBeUndefined();
    expect(await servedDigest(world.quay, `${repositoryOf(world.quay)}:bad-creds`)).toBeUndefined();
  });

  test('5d. untrusted TLS: the push fails with what to fix (TLS verification stays on)', async () => {
    const other = await makeCa(path.join(work, 'other-ca'), { commonName: 'not the registry CA' });
    const r = await runScenario('bad-ca', { configMaps: { 'registry-ca': { 'ca.crt': fs.readFileSync(other.certPath, 'utf8') } } });
    expect(statuses(r)).toEqual(['download-model:Succeeded', 'build-image:Succeeded', 'push-internal:Failed', 'push-quay:Skipped']);
    const push = stepLog(r, 'push-internal', 'push');
    expect(push).toContain('x509: certificate signed by unknown authority');
    expect(push).toContain('the registry\'s TLS certificate is not trusted: give the push target the CA that signed it');
    expect(push).not.toMatch(/retrying/i);
    await expectNothingPushed('bad-ca');
  });

  test('5e. the base image\'s registry refuses the build\'s credentials: the build fails at the base copy, saying so', async () => {
    const wrong = { '.dockerconfigjson': JSON.stringify({ auths: { [world.internal.host]: { auth: Buffer.from('pipeline:wrong-password').toString('base64') } } }) };
    const r = await runScenario('bad-base-creds', { secrets: { 'base-pull': wrong } });
    expect(statuses(r)).toEqual(['download-model:Succeeded', 'build-image:Failed', 'push-internal:Skipped', 'push-quay:Skipped']);
    const base = stepLog(r, 'build-image', 'base');
    expect(base).toContain('unauthorized: authentication required');
    expect(base).toContain(`cannot copy the base image ${world.base.reference} for linux/amd64: the registry refused the credentials (401): check baseImageCredentials`);
    await expectNothingPushed('bad-base-creds');
  });

  test('6. build killed midway: no artifact under its final name, nothing pushed', async () => {
    const runsDir = path.join(work, 'runs');
    let killed = '';
    const watcher = setInterval(() => {
      if (killed) return;
      for (const d of runDirs(runsDir)) {
        const blobs = path.join(d, '.image.partial', 'blobs', 'sha256');
        if (!fs.existsSync(blobs)) continue;
        // A layer finished between the listing and the stat is renamed to its digest: not the one to catch
        // (seen once in ten runs), so a vanished entry is skipped rather than failing the watcher.
        const partial = fs.readdirSync(blobs).find((f) => f.startsWith('.tmp-layer') && (fs.statSync(path.join(blobs, f), { throwIfNoEntry: false })?.size ?? 0) > 8 * 1024 * 1024);
        if (!partial) continue;
        // SIGKILL the builder (an OOM kill or an eviction), found by its script argument and by this run's layout
        // in its env: other test processes on the host (another checkout's suite) may run builders of their own.
        const pids = killStepScripts(`/modelcar-runs/${path.basename(d)}/.image.partial`);
        if (pids.length > 0) killed = `${pids.join(' ')} while writing ${partial}`;
      }
    }, 10);
    let r: RunPipelineResult;
    try {
      r = await runScenario('killed', { model: bigModel });
    } finally {
      clearInterval(watcher);
    }
    expect(killed).not.toBe('');
    expect(statuses(r)).toEqual(['download-model:Succeeded', 'build-image:Failed', 'push-internal:Skipped', 'push-quay:Skipped']);
    expect(r.tasks['build-image'].steps.find((s) => s.name === 'layers')!.exitCode).toBe(137);
    const dir = runDirOf(r);
    expect(fs.readdirSync(path.join(dir, '.image.partial', 'blobs', 'sha256')).filter((f) => f.startsWith('.tmp-layer'))).toHaveLength(1);
    expect(fs.existsSync(path.join(dir, 'image'))).toBe(false);
    await expectNothingPushed('killed');
  });

  /**
   * Runs `stage(artifactDir)` on the host the moment the build has published its digest (the publish step's last
   * log line), before any push task starts: like another pod writing to the same volume (the seed's failure B).
   */
  function afterPublish(name: string, stage: (artifact: string) => void): (line: string) => void {
    const log = logTo(name);
    return (line) => {
      log(line);
      const published = /^\[build-image\/publish\] published oci:\/workspace\/source\/modelcar-runs\/([0-9a-f-]+)\/image:/.exec(line);
      if (published) {
        const dir = runDirs(path.join(work, 'runs')).find((d) => path.basename(d) === published[1])!;
        stage(path.join(dir, 'image'));
        log(`E2E staged a change to ${dir}/image`);
      }
    };
  }

  test('7a. content changed between build and push (another image under the artifact\'s name): detected, nothing pushed', async () => {
    const r = await runScenario('swapped', {
      log: afterPublish('swapped', (artifact) => {
        // A different, valid image now sits under the artifact's name (the base image, its index and all, copied over it).
        execFileSync('skopeo', ['copy', '--quiet', '--all', '--src-cert-dir', world.internal.certDir, '--src-authfile', world.internal.authFile,
          `docker://${world.base.reference}`, `oci:${artifact}:modelcar`]);
      }),
    });
    expect(statuses(r)).toEqual(['download-model:Succeeded', 'build-image:Succeeded', 'push-internal:Failed', 'push-quay:Skipped']);
    const digest = r.tasks['build-image'].results.IMAGE_DIGEST;
    expect(stepLog(r, 'push-internal', 'push')).toContain(`the artifact's digest ${world.base.digest} differs from the digest the build published ${digest}: refusing to push stale or foreign content`);
    await expectNothingPushed('swapped');
  });

  test('7b. a layer altered in place after the build (same size, same manifest): skopeo refuses it while uploading, the run fails', async () => {
    // A model of its own: layers the registries already hold (same model, same digests) are never uploaded again.
    const fresh = await writeSyntheticModel(path.join(work, 'model-altered'), { totalBytes: 12 * 1024 * 1024, files: 2, seed: 'altered-blob' });
    const r = await runScenario('altered-blob', {
      model: fresh,
      log: afterPublish('altered-blob', (artifact) => {
        const blobs = path.join(artifact, 'blobs', 'sha256');
        const largest = fs.readdirSync(blobs).map((f) => path.join(blobs, f)).sort((a, b) => fs.statSync(b).size - fs.statSync(a).size)[0];
        const fd = fs.openSync(largest, 'r+');
        fs.writeSync(fd, Buffer.from('altered'), 0, 7, 1024);
        fs.closeSync(fd);
      }),
    });
    expect(statuses(r)).toEqual(['download-model:Succeeded', 'build-image:Succeeded', 'push-internal:Failed', 'push-quay:Skipped']);
    const push = stepLog(r, 'push-internal', 'push');
    expect(push).toMatch(/Digest did not match, expected sha256:[0-9a-f]{64}, got sha256:[0-9a-f]{64}/);
    expect(push).toContain('a blob of the artifact no longer matches its digest: the artifact changed after the build');
    await expectNothingPushed('altered-blob');
  });

  test('8. the same model twice gives the same manifest digest (fresh volumes, separate runs)', async () => {
    const first = await runScenario('repeat-1');
    const second = await runScenario('repeat-2');
    expect([first.status, second.status]).toEqual(['Succeeded', 'Succeeded']);
    const digest = first.tasks['build-image'].results.IMAGE_DIGEST;
    expect(second.tasks['build-image'].results.IMAGE_DIGEST).toBe(digest);
    expect(first.pipelineRun.uid).not.toBe(second.pipelineRun.uid);
    expect(await servedDigest(world.quay, `${repositoryOf(world.quay)}:repeat-2`)).toBe(digest);
  });
});

describe('in a namespace as OpenShift gives it (restricted-v2 with its own range, HOME as a cluster leaves it, tasks in parallel)', () => {
  test('9a. like the default app (no fsGroup, service account token and docker secrets): both pushes pass under the namespace\'s identity', async () => {
    const pipelineRun = namespaceManifests.find((d) => d.kind === 'PipelineRun' && d.metadata.name === runNameOf(namespaceManifests, 'ns-default'));
    expect(pipelineRun.spec.taskRunTemplate.podTemplate.securityContext).toEqual({ fsGroupChangePolicy: 'OnRootMismatch' });
    const r = await runScenario('ns-default', { manifests: namespaceManifests, extra: { scc: NAMESPACE_SCC } });
    expect(statuses(r)).toEqual(['download-model:Succeeded', 'build-image:Succeeded', 'push-internal:Succeeded', 'push-quay:Succeeded']);
    const digest = r.tasks['build-image'].results.IMAGE_DIGEST;
    for (const tag of ['ns-default', 'ns-default-alias']) {
      expect(await servedDigest(world.internal, `${repositoryOf(world.internal)}:${tag}`)).toBe(digest);
      expect(await servedDigest(world.quay, `${repositoryOf(world.quay)}:${tag}`)).toBe(digest);
    }
    // One identity for every step: the range's first uid, its first value as fsGroup (the SCC's defaults).
    const allSteps = Object.values(r.tasks).flatMap((t) => t.steps);
    expect(allSteps.length).toBeGreaterThan(10);
    expect(allSteps.every((s) => s.uid === NAMESPACE_UID && s.gid === 0 && s.groups!.includes(NAMESPACE_UID))).toBe(true);
    // HOME is left as a cluster leaves it: "/" for this uid, not writable, so Tekton's copy into $HOME fails
    // (the debug step sets no HOME) and nothing may depend on it.
    expect(r.tasks['push-internal'].steps[0].log).toContain('warning: unsuccessful cred copy: ".docker" from "/tekton/creds" to "/"');
    expect(r.tasks['download-model'].steps[0].log).toContain(`identity:  uid=${NAMESPACE_UID}`);
    // The base image came with the account's docker secret (from $(credentials.path)); the token never shows.
    expect(r.log).not.toContain(world.serviceAccountToken);
    expect(r.log).not.toContain('no docker credentials linked to the service account');
    expect(pushesSerialized(r)).toBe(true);
    // The default clean-up, under the namespace's identity: the run's directory removed, and the run asks Tekton to
    // delete its volume when it ends (Tekton 1.11+; the runner does not model it).
    expect(pipelineRun.metadata.annotations['tekton.dev/auto-cleanup-pvc']).toBe('true');
    expect(r.tasks['clean-up'].status).toBe('Succeeded');
    expect(stepLog(r, 'clean-up', 'clean-up')).toContain('run status: Succeeded');
    expect(runDirs(path.join(work, 'runs')).map((d) => path.basename(d))).not.toContain(r.pipelineRun.uid);
  });

  test('9b. a run that sets an fsGroup outside the namespace\'s range fails at pod creation with the SCC\'s words', async () => {
    const r = await runScenario('ns-seed-group', { manifests: namespaceManifests, extra: { scc: NAMESPACE_SCC } });
    expect(r.status).toBe('Failed');
    // The first task's pod is refused (the check, before any download); nothing after it runs.
    expect(statuses(r)).toEqual(['download-model:Skipped', 'build-image:Skipped', 'push-internal:Skipped', 'push-quay:Skipped']);
    expect(r.tasks['check-published']).toMatchObject({ status: 'Failed', reason: 'PodCreationFailed', steps: [] });
    expect(r.tasks['check-published'].message).toContain(
      `unable to validate against any security context constraint: [provider restricted-v2: .spec.securityContext.fsGroup: Invalid value: []int64{${FS_GROUP}}: ${FS_GROUP} is not an allowed group]`);
    // The finally clean-up's pod is refused the same way (nothing was written for it to remove).
    expect(r.tasks['clean-up']).toMatchObject({ status: 'Failed', reason: 'PodCreationFailed' });
    await expectNothingPushed('ns-seed-group');
  });

  test('9c. pushes made parallel by hand (push-quay after build-image only): the serialization check detects it', async () => {
    const byHand = namespaceManifests.map((d) => (d.kind === 'Pipeline'
      ? { ...d, spec: { ...d.spec, tasks: d.spec.tasks.map((t: any) => (t.name === 'push-quay' ? { ...t, runAfter: ['build-image'] } : t)) } }
      : d));
    const r = await runScenario('ns-parallel', { manifests: byHand, extra: { scc: NAMESPACE_SCC } });
    expect(statuses(r)).toEqual(['download-model:Succeeded', 'build-image:Succeeded', 'push-internal:Succeeded', 'push-quay:Succeeded']);
    expect(pushesSerialized(r)).toBe(false);
    // Both pushes ran at once: each started before the other finished.
    expect(r.tasks['push-quay'].startedAt!.getTime()).toBeLessThan(r.tasks['push-internal'].finishedAt!.getTime());
    expect(r.tasks['push-internal'].startedAt!.getTime()).toBeLessThan(r.tasks['push-quay'].finishedAt!.getTime());
    expect(r.pipelineRun.namespace).toBe(NAMESPACE);
  });

  test('9d. a build that fails: the default clean-up still removes what the download wrote, and nothing is pushed', async () => {
    const r = await runScenario('ns-build-fails', {
      manifests: namespaceManifests,
      extra: { scc: NAMESPACE_SCC },
      overrides: (task, step, spec) => (task === 'build-image' && step === 'layers' ? wrapStep(spec, { before: 'echo "E2E: the build fails"; exit 1' }) : undefined),
    });
    expect(r.status).toBe('Failed');
    expect(statuses(r)).toEqual(['download-model:Succeeded', 'build-image:Failed', 'push-internal:Skipped', 'push-quay:Skipped']);
    expect(r.tasks['clean-up']).toMatchObject({ status: 'Succeeded', isFinally: true });
    const log = stepLog(r, 'clean-up', 'clean-up');
    expect(log).toContain('run status: Failed');
    expect(log).toContain(`removed /workspace/source/modelcar-runs/${r.pipelineRun.uid}`);
    // The download had written the model there: the clean-up's own preamble listed it before the removal.
    expect(stepLog(r, 'clean-up', 'debug')).toMatch(/SHA256SUMS/);
    expect(runDirs(path.join(work, 'runs')).map((d) => path.basename(d))).not.toContain(r.pipelineRun.uid);
    await expectNothingPushed('ns-build-fails');
  });
});

/**
 * The download against the fake hub over TLS (test/e2e/support/fake-hub.ts, STAND-IN FOR THE HUB): its faults are
 * the ones a real hub and CDN show; the fetch step, the volume and everything after are the real thing.
 */
describe('download from the (fake) hub: cut connections, rate limits, a task retry, a full volume, a paged tree', () => {
  const fetchLog = (r: RunPipelineResult) => stepLog(r, 'download-model', 'fetch');
  const cdnRanges = () => world.hub.requests.filter((q) => q.server === 'cdn' && q.range && q.range !== 'bytes=0-0');

  test('10a. the CDN cuts bodies mid-way several times, each after progress: the run succeeds with the digest of an uncut run, resuming with ranges', async () => {
    const uncut = await runScenario('dl-uncut');
    expect(uncut.status).toBe('Succeeded');
    world.hub.reset();
    // 5 bodies cut after 1.5 MiB of their 4 MiB range; only attempts without progress count against the retries.
    world.hub.cutBodies({ count: 5, afterBytes: 1.5 * 1024 * 1024 });
    const r = await runScenario('dl-cut');
    expect(statuses(r)).toEqual(['download-model:Succeeded', 'build-image:Succeeded', 'push-internal:Succeeded', 'push-quay:Succeeded']);
    expect(r.tasks['build-image'].results.IMAGE_DIGEST).toBe(uncut.tasks['build-image'].results.IMAGE_DIGEST);
    expect(fetchLog(r).match(/connection lost at byte \d+ of \d+/g)).toHaveLength(5);
    const cut = world.hub.requests.filter((q) => q.server === 'cdn' && q.bytesSent === 1.5 * 1024 * 1024 && q.status === 206);
    expect(cut).toHaveLength(5);
    // Each cut range was asked again from the byte after the last one received.
    for (const c of cut) {
      const start = Number(/^bytes=(\d+)-(\d+)$/.exec(c.range!)![1]);
      const end = /^bytes=(\d+)-(\d+)$/.exec(c.range!)![2];
      expect(cdnRanges().filter((q) => q.path === c.path).map((q) => q.range)).toContain(`bytes=${start + 1.5 * 1024 * 1024}-${end}`);
    }
    expect(cdnRanges().length).toBeGreaterThanOrEqual(9 + 5);
  });

  test('10b. 429 with Retry-After a few seconds, several times: the fetch waits as asked, says so, and succeeds', async () => {
    world.hub.rateLimit({ count: 3, retryAfterSeconds: 2 });
    const r = await runScenario('dl-429');
    expect(statuses(r)).toEqual(['download-model:Succeeded', 'build-image:Succeeded', 'push-internal:Succeeded', 'push-quay:Succeeded']);
    expect(world.hub.requests.filter((q) => q.status === 429)).toHaveLength(3);
    expect(fetchLog(r).match(/rate limited: HTTP 429 for file \S+ .*; waiting 2\.\ds as the hub asks \(Retry-After: 2\)/g)!.length).toBeGreaterThanOrEqual(1);
    expect(r.results.MODEL_SIZE).toBe(String(model.totalBytes));
  });

  test('10c. a task retry after half the files: the verified files are not requested again, the partial ones resume', async () => {
    // 4 MiB/s per CDN connection: the shards take a few seconds, long enough to stop the fetch half-way.
    world.hub.cdnBytesPerSecond = 4 * 1024 * 1024;
    const runsDir = path.join(work, 'runs');
    let killedAt = -1;
    let verifiedAtKill: string[] = [];
    let partialAtKill: string[] = [];
    const earlier = new Set(runDirs(runsDir));
    const watcher = setInterval(() => {
      if (killedAt >= 0) return;
      for (const d of runDirs(runsDir).filter((x) => !earlier.has(x))) {
        const dir = path.join(d, 'model');
        if (!fs.existsSync(dir)) continue;
        const verified = fs.readdirSync(dir);
        if (verified.length < model.files.length / 2 + 1) continue;
        // SIGKILL the fetch (an eviction or an OOM kill): this run's, by the model directory in its env.
        if (killStepScripts(`/modelcar-runs/${path.basename(d)}/model`).length === 0) continue;
        killedAt = world.hub.requests.length;
        verifiedAtKill = fs.readdirSync(dir);
        partialAtKill = fs.readdirSync(path.join(d, '.download')).filter((f) => f.endsWith('.data'));
      }
    }, 20);
    let r: RunPipelineResult;
    try {
      r = await runScenario('dl-retry', { manifests: retryManifests });
    } finally {
      clearInterval(watcher);
    }
    expect(killedAt).toBeGreaterThan(0);
    expect(verifiedAtKill.length).toBeGreaterThanOrEqual(model.files.length / 2 + 1);
    expect(partialAtKill.length).toBeGreaterThanOrEqual(1);
    expect(statuses(r)).toEqual(['download-model:Succeeded', 'build-image:Succeeded', 'push-internal:Succeeded', 'push-quay:Succeeded']);
    expect(r.tasks['download-model'].attempts).toBe(2);
    const log = fetchLog(r);
    expect(log).toContain(`kept ${verifiedAtKill.length} file(s)`);
    expect(log).toMatch(/resuming [\d.]+ MiB of partial files from an earlier attempt/);
    // Not one request for a verified file after the kill.
    const after = world.hub.requests.slice(killedAt);
    for (const f of verifiedAtKill) {
      const blob = model.files.find((m) => m.path === f)!;
      expect(after.filter((q) => decodeURIComponent(q.path).endsWith(`/${f}`) || q.path === `/${blob.sha256}`)).toEqual([]);
    }
    // The image is the model byte for byte: the same digest as any uncut run of this model.
    expect(fs.readFileSync(path.join(runDirOf(r), 'SHA256SUMS'), 'utf8').trim().split('\n')).toEqual(model.files.map((f) => `${f.sha256}  ${f.path}`));
  });

  test('10d. a volume smaller than model plus image: the download task fails before any model file is requested, with both figures', async () => {
    // A real 48 MiB file system (tmpfs) as the run's claim: it holds the 30 MiB model, not the model and its image.
    const claim = path.join(work, 'claim-small');
    fs.mkdirSync(claim, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=48m,mode=0755', 'tmpfs', claim]);
    let r: RunPipelineResult;
    try {
      r = await runScenario('dl-full', { manifests: claimManifests, claims: { models: claim } });
    } finally {
      execFileSync('umount', [claim]);
    }
    expect(statuses(r)).toEqual(['download-model:Failed', 'build-image:Skipped', 'push-internal:Skipped', 'push-quay:Skipped']);
    expect(fetchLog(r)).toMatch(/not enough space on the run's volume: 4\d\.\d MiB free \(of 48\.0 MiB\), the run needs 1\d\d\.\d MiB \(model 30\.0 MiB still to fetch \+ image 30\.0 MiB \+ margin 64\.0 MiB\); nothing was downloaded\. Give the run more storage/);
    expect(world.hub.requests.filter((q) => q.path.includes('/resolve/') || q.server === 'cdn')).toEqual([]);
    await expectNothingPushed('dl-full');
  });

  test('10e. a tree listing over two pages: every file arrives', async () => {
    world.hub.treePageSize = 4;
    const r = await runScenario('dl-pages');
    expect(statuses(r)).toEqual(['download-model:Succeeded', 'build-image:Succeeded', 'push-internal:Succeeded', 'push-quay:Succeeded']);
    // Both pages, twice: the check lists the commit (the model's size, no file) and so does the download.
    const pages = ['?recursive=true&expand=false', '?recursive=true&expand=false&cursor=4'];
    expect(world.hub.requests.filter((q) => q.path.includes('/tree/')).map((q) => q.query)).toEqual([...pages, ...pages]);
    expect(fetchLog(r)).toContain(`${model.files.length} files, 30.0 MiB in the repo (tree listing, 2 pages)`);
    // Every file selected and downloaded (the run's directory is gone: the clean-up removed it; the build verified
    // every file against the download's SHA256SUMS).
    expect(fetchLog(r)).toContain(`selected ${model.files.length} of ${model.files.length} files, 30.0 MiB`);
    expect(fetchLog(r)).toMatch(new RegExp(`downloaded ${model.files.length} files \\(0 kept`));
    expect(r.results.MODEL_SIZE).toBe(String(model.totalBytes));
  });
});
