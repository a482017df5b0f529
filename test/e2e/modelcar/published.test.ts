/**
 * End to end: a published model run again costs seconds (issue #11). The synthesized pipeline (the YAML users
 * apply) run by test/e2e/runner against two docker-registry servers with TLS and htpasswd and the fake hub over TLS
 * (test/e2e/support/fake-hub.ts: STAND-IN FOR THE HUGGING FACE HUB, the one part that cannot run here). Everything
 * else is real: the check task's hub lookup (hf-fetch.py) and skopeo inspect, download, build, pushes, the report.
 *
 * The same run (same model, same tags) three times, each on a fresh volume:
 *   1. builds and pushes;
 *   2. finds both registries serving every tag built from this commit and build config: no model file is requested
 *      from the hub, no build step runs, the pushes are skipped, the pipeline results are the first run's;
 *   3. after one tag is gone from one registry, rebuilds and pushes again.
 * The serving tag (issue #18): the reference a run pinned to the commit gives at synth (servingReference()) is the
 * tag the first run pushed, at the digest it pushed, and that run finds it published; a forced rebuild leaves it
 * where it was, and a target that serves another image under it fails the push rather than move it.
 * Then a registry that is down, and credentials a registry refuses: the check fails with the registry's words.
 *
 * Missing tools or no root make the suite FAIL, never skip.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Size } from 'cdk8s';
import { MODEL_COMMIT, MODEL_REPO, repositoryOf, runModelcar, RunModelcarOptions, servedDigest, startWorld, stopWorld, synthesizePipeline, World } from './world';
import { ModelcarBuilder } from '../../../src';
import { RunPipelineResult, sandboxSupport } from '../runner/tekton-runner';
import { SyntheticModel, writeSyntheticModel } from '../support/model-fixture';
import { deleteManifest } from '../support/registry';
import { freshWorkDir, run } from '../support/tools';

jest.setTimeout(300_000);

const TAGS = ['published', 'published-alias'];
const GUARDED = ['download-model', 'build-image', 'push-internal', 'push-quay'];
// One variant, run again and again: on a cluster that is the same PipelineRun (same name, same spec) created once
// more, by Argo CD's self-heal after the Tekton pruner deleted it, or by a rebuilt cluster; each creation is a new
// uid, so a fresh volume and a fresh run directory. (Two variants with the same inputs would fail at synth.)
const RUNS = ['published', 'published-forced'];
// The same model, tags and build configuration, pinned to the commit `main` points to: its serving reference is known
// at synth, and its run (check and report only, after the first run) reuses what the first run pushed.
const PINNED = 'published-pinned';
const OTHER_COMMIT = 'fedcba9876543210fedcba9876543210fedcba98';

let work: string;
let world: World;
let model: SyntheticModel;
let manifests: any[];
/** The same runs from a pipeline whose layout builder has another layer threshold: another build configuration. */
let otherConfig: any[];
/** What the pinned run gives at synth: its serving reference at each target. */
let servingRefs: { internal: string; quay: string };
/** What the run on `main` says when asked for one. */
let mainRefError: string;

function logTo(name: string): (line: string) => void {
  const file = path.join(work, 'logs', `${name}.log`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  return (line) => fs.appendFileSync(file, `${line}\n`);
}

/** Runs variant `published` (or the one `opts.pipelineRun` names) once more; `name` names its log. */
async function runScenario(name: string, opts: Partial<RunModelcarOptions> = {}): Promise<RunPipelineResult> {
  const variant = ['published-forced', 'published-other-config', PINNED].includes(name) ? name : 'published';
  return runModelcar(world, { manifests, pipelineRun: variant, workDir: path.join(work, 'runs'), model, log: logTo(name), ...opts });
}

const seconds = (r: RunPipelineResult) => (r.finishedAt.getTime() - r.startedAt.getTime()) / 1000;
const stepLog = (r: RunPipelineResult, task: string, step: string) => r.tasks[task]?.steps.find((s) => s.name === step)?.log ?? '';
const status = (r: RunPipelineResult, tasks: string[]) => tasks.map((t) => `${t}:${r.tasks[t]?.status ?? 'NotRun'}`);
const imageResults = (r: RunPipelineResult) => Object.fromEntries(Object.entries(r.results).filter(([k]) => /_IMAGE_(URL|DIGEST|REF)$/.test(k)));

beforeAll(async () => {
  const support = sandboxSupport();
  if (!support.ok) throw new Error(`the e2e runner cannot run here: ${support.reason}`);
  work = freshWorkDir('published');
  world = await startWorld(work);
  // A model of its own (its own digest): deleting its manifest touches no other suite's tags.
  model = await writeSyntheticModel(path.join(work, 'model'), { totalBytes: 24 * 1024 * 1024, files: 3, seed: 'published' });
  const builder = ModelcarBuilder.ociLayout({ largeFileThreshold: Size.mebibytes(4) });
  manifests = synthesizePipeline(world, path.join(work, 'dist'), {
    builder,
    runs: [...RUNS.map((n) => ({ name: n, tags: TAGS, forceRebuild: n === 'published-forced' ? true : undefined })),
      { name: PINNED, tags: TAGS, revision: MODEL_COMMIT }],
    onRun: (name, r) => {
      if (name === PINNED) servingRefs = { internal: r.servingReference(), quay: r.servingReference('quay') };
      if (name === 'published') mainRefError = (() => { try { return r.servingReference(); } catch (e: any) { return e.message; } })();
    },
  });
  otherConfig = synthesizePipeline(world, path.join(work, 'dist-other-config'), {
    builder: ModelcarBuilder.ociLayout({ largeFileThreshold: Size.mebibytes(8) }),
    runs: [{ name: 'published-other-config', tags: TAGS }],
  });
}, 120_000);

afterAll(async () => {
  await stopWorld(world);
});

describe('a published model run again costs seconds', () => {
  let first: RunPipelineResult;
  let second: RunPipelineResult;

  test('1. first run: nothing published yet, the check says rebuild; download, build, both pushes; the report publishes the results', async () => {
    world.hub.reset();
    first = await runScenario('published-1');
    expect(first.status).toBe('Succeeded');
    expect(status(first, ['check-published', ...GUARDED, 'report-published'])).toEqual([
      'check-published:Succeeded', 'download-model:Succeeded', 'build-image:Succeeded', 'push-internal:Succeeded', 'push-quay:Succeeded', 'report-published:Succeeded',
    ]);
    expect(first.tasks['check-published'].results.REBUILD).toBe('true');
    expect(stepLog(first, 'check-published', 'check')).toContain(`internal: rebuild: ${repositoryOf(world.internal)}: tag published not found (`);
    expect(stepLog(first, 'check-published', 'check')).toContain('rebuilding: a target lacks this image');
    const digest = first.tasks['build-image'].results.IMAGE_DIGEST;
    expect(imageResults(first)).toEqual({
      INTERNAL_IMAGE_URL: `${repositoryOf(world.internal)}:published`,
      INTERNAL_IMAGE_DIGEST: digest,
      INTERNAL_IMAGE_REF: `${repositoryOf(world.internal)}@${digest}`,
      QUAY_IMAGE_URL: `${repositoryOf(world.quay)}:published`,
      QUAY_IMAGE_DIGEST: digest,
      QUAY_IMAGE_REF: `${repositoryOf(world.quay)}@${digest}`,
    });
    expect(first.results).toMatchObject({ MODEL_RESOLVED_REVISION: MODEL_COMMIT, MODEL_SIZE: String(model.totalBytes), REBUILD: 'true' });
    // The push tasks' own results agree with the report's.
    expect(first.tasks['push-quay'].results.IMAGE_REF).toBe(first.results.QUAY_IMAGE_REF);
    // The image carries the labels the check compares.
    const config = JSON.parse((await run('skopeo', ['inspect', '--config', '--cert-dir', world.quay.certDir, '--authfile', world.quay.authFile,
      `docker://${repositoryOf(world.quay)}:published`])).stdout);
    expect(config.config.Labels).toMatchObject({
      'org.opencontainers.image.source': `https://huggingface.co/${MODEL_REPO}`,
      'io.kserve.modelcar.model': MODEL_REPO,
      'io.kserve.modelcar.revision': MODEL_COMMIT,
      'io.kserve.modelcar.build-config': first.tasks['check-published'].results.BUILD_CONFIG,
    });
    for (const f of model.files) expect(world.hub.fileRequests(f.path).length).toBeGreaterThanOrEqual(1);
  });

  test('2. the same run again on a fresh volume: no model file from the hub, no build step, pushes skipped, the first run\'s results', async () => {
    expect(first?.status).toBe('Succeeded');
    world.hub.reset();
    const logBefore = fs.statSync(world.quay.logPath).size;
    second = await runScenario('published-2');
    // The registry was asked for each tag's manifest (and the config blob), never for its tag list (skopeo inspect --no-tags).
    const registryLog = fs.readFileSync(world.quay.logPath).subarray(logBefore).toString();
    expect(registryLog).toContain('http.request.uri=/v2/private-ai-demo/synthetic-model/manifests/published-alias');
    expect(registryLog).not.toContain('/tags/list');
    expect(second.status).toBe('Succeeded');
    expect(second.reason).toBe('Completed'); // Tekton's reason when tasks were skipped
    expect(status(second, ['check-published', ...GUARDED, 'report-published'])).toEqual([
      'check-published:Succeeded', 'download-model:Skipped', 'build-image:Skipped', 'push-internal:Skipped', 'push-quay:Skipped', 'report-published:Succeeded',
    ]);
    for (const t of GUARDED) {
      expect(second.tasks[t]).toMatchObject({ reason: 'When Expressions evaluated to false', attempts: 0, steps: [] });
    }
    // The hub was asked for the revision and the commit's file list (the model's size): no file, no CDN blob.
    expect(world.hub.requests.map((r) => `${r.server} ${r.path}`)).toEqual([
      `hub /api/models/${MODEL_REPO}/revision/main`, `hub /api/models/${MODEL_REPO}/tree/${MODEL_COMMIT}`,
    ]);
    for (const f of model.files) expect(world.hub.fileRequests(f.path)).toEqual([]);
    // What each target held, and why the run skipped.
    const digest = first.tasks['build-image'].results.IMAGE_DIGEST;
    expect(stepLog(second, 'check-published', 'check')).toContain(`quay: ${repositoryOf(world.quay)}:published-alias is ${digest}, built from ${MODEL_REPO} at ${MODEL_COMMIT} with this build config`);
    expect(stepLog(second, 'check-published', 'check')).toContain(`internal: serves ${digest}`);
    expect(stepLog(second, 'check-published', 'check')).toContain('skipping download, build and pushes: every target already serves every tag of this run');
    // The same pipeline results as after the build.
    expect(imageResults(second)).toEqual(imageResults(first));
    expect(second.results).toMatchObject({ MODEL_RESOLVED_REVISION: MODEL_COMMIT, MODEL_SIZE: String(model.totalBytes), REBUILD: 'false' });
    // A figure, not an assertion: performance is measured by benchmarks; this is the "second run vs first".
    const line = `published model: first run ${seconds(first).toFixed(1)} s (download, build, 2 pushes), second run ${seconds(second).toFixed(1)} s (check and report only), `
      + `${(seconds(first) / seconds(second)).toFixed(1)}x; model ${model.totalBytes} bytes`;
    fs.writeFileSync(path.join(work, 'timing.txt'), `${line}\n`);
    console.log(line);
  });

  test('2b. the serving reference a pinned run gives at synth is what the first run pushed, at its digest; the pinned run finds it published', async () => {
    expect(first?.status).toBe('Succeeded');
    const digest = first.tasks['build-image'].results.IMAGE_DIGEST;
    const tag = first.tasks['check-published'].results.SERVING_TAG;
    expect(tag).toMatch(new RegExp(`^${MODEL_COMMIT}-[0-9a-f]{16}$`));
    expect(first.results.SERVING_TAG).toBe(tag);
    expect(servingRefs).toEqual({ internal: `oci://${repositoryOf(world.internal)}:${tag}`, quay: `oci://${repositoryOf(world.quay)}:${tag}` });
    // What the registries serve under it (skopeo inspect through TLS and credentials) is what the build published.
    expect(await servedDigest(world.internal, servingRefs.internal.slice('oci://'.length))).toBe(digest);
    expect(await servedDigest(world.quay, servingRefs.quay.slice('oci://'.length))).toBe(digest);
    expect(stepLog(first, 'push-quay', 'push')).toContain(`copying to docker://${repositoryOf(world.quay)}:${tag}`);
    // A run on a branch gives none, and says why.
    expect(mainRefError).toMatch(/no serving reference for revision "main": it is a branch or tag, which moves/);

    world.hub.reset();
    const pinned = await runScenario(PINNED);
    expect(pinned.status).toBe('Succeeded');
    expect(world.hub.requests[0]).toMatchObject({ path: `/api/models/${MODEL_REPO}/revision/${MODEL_COMMIT}` });
    expect(status(pinned, GUARDED).every((x) => x.endsWith(':Skipped'))).toBe(true);
    expect(pinned.results).toMatchObject({ SERVING_TAG: tag, REBUILD: 'false', QUAY_IMAGE_DIGEST: digest, INTERNAL_IMAGE_DIGEST: digest });
    // The check asked for the serving tag too, and the report read it back from both targets.
    expect(stepLog(pinned, 'check-published', 'check')).toContain(`quay: ${repositoryOf(world.quay)}:${tag} is ${digest}`);
    expect(stepLog(pinned, 'report-published', 'report')).toContain(`every target serves ${digest} under published published-alias ${tag}`);
  });

  test('2c. an image published before the serving tag (every run tag, not the serving tag): the check says rebuild', async () => {
    expect(first?.status).toBe('Succeeded');
    // check-published.sh as the check step runs it, against quay, which serves every tag of the first run: with the
    // serving tag of a configuration it never built (as an image pushed before serving tags existed lacks its own),
    // and without one (as before).
    const check = async (servingTag?: string) => {
      const dir = fs.mkdtempSync(path.join(work, 'check-'));
      fs.mkdirSync(path.join(dir, 'tmp'));
      if (servingTag) fs.writeFileSync(path.join(dir, 'serving-tag'), servingTag);
      const r = await run('sh', [path.join(__dirname, '..', '..', '..', 'src', 'modelcar', 'scripts', 'check-published.sh')], {
        allowFailure: true,
        timeoutMs: 120_000,
        env: {
          PATH: process.env.PATH,
          HOME: path.join(dir, 'home'),
          MODE: 'check',
          TARGETS: `quay ${repositoryOf(world.quay)} true 0 ${world.quay.certDir} secret ${world.quay.authFile}`,
          IMAGE_TAGS: TAGS.join(' '),
          MODEL_REPO,
          TMPDIR: path.join(dir, 'tmp'),
          FORCE_REBUILD: 'false',
          EXPECTED_REVISION: MODEL_COMMIT,
          EXPECTED_CONFIG: first.tasks['check-published'].results.BUILD_CONFIG,
          ...(servingTag ? { SERVING_TAG_FILE: path.join(dir, 'serving-tag') } : {}),
          RESULT_REBUILD: path.join(dir, 'rebuild'),
        },
      });
      return { code: r.code, rebuild: fs.readFileSync(path.join(dir, 'rebuild'), 'utf8'), log: r.stdout };
    };
    const missing = `${MODEL_COMMIT}-${'0'.repeat(16)}`;
    const before = await check(missing);
    expect([before.code, before.rebuild]).toEqual([0, 'true']);
    expect(before.log).toContain(`quay: rebuild: ${repositoryOf(world.quay)}: tag ${missing} not found (manifest unknown)`);
    const without = await check();
    expect([without.code, without.rebuild]).toEqual([0, 'false']);
  });

  test('3. one tag gone from one registry: the third run rebuilds and pushes; the registry serves it again', async () => {
    expect(second?.status).toBe('Succeeded');
    const digest = first.tasks['build-image'].results.IMAGE_DIGEST;
    // docker-registry deletes by digest (both tags go), then the first tag comes back: quay lacks only the alias.
    expect(await deleteManifest(world.quay, 'private-ai-demo/synthetic-model', digest)).toBe(202);
    expect(await servedDigest(world.quay, `${repositoryOf(world.quay)}:published`)).toBeUndefined();
    await run('skopeo', ['copy', '--quiet', '--all', '--src-cert-dir', world.internal.certDir, '--src-authfile', world.internal.authFile,
      '--dest-cert-dir', world.quay.certDir, '--dest-authfile', world.quay.authFile,
      `docker://${repositoryOf(world.internal)}:published`, `docker://${repositoryOf(world.quay)}:published`]);
    expect(await servedDigest(world.quay, `${repositoryOf(world.quay)}:published-alias`)).toBeUndefined();

    world.hub.reset();
    const third = await runScenario('published-3');
    expect(third.status).toBe('Succeeded');
    expect(status(third, ['check-published', ...GUARDED, 'report-published']).every((s) => s.endsWith(':Succeeded'))).toBe(true);
    expect(stepLog(third, 'check-published', 'check')).toContain('internal: serves');
    expect(stepLog(third, 'check-published', 'check')).toContain(`quay: rebuild: ${repositoryOf(world.quay)}: tag published-alias not found (manifest unknown)`);
    expect(third.tasks['check-published'].results.REBUILD).toBe('true');
    for (const f of model.files) expect(world.hub.fileRequests(f.path).length).toBeGreaterThanOrEqual(1);
    expect(third.tasks['build-image'].results.IMAGE_DIGEST).toBe(digest); // reproducible build
    expect(await servedDigest(world.quay, `${repositoryOf(world.quay)}:published-alias`)).toBe(digest);
    expect(imageResults(third)).toEqual(imageResults(first));
  });

  test('4. forceRebuild: the check asks no registry and the run builds and pushes although both serve it', async () => {
    const r = await runScenario('published-forced');
    expect(r.status).toBe('Succeeded');
    expect(r.tasks['check-published'].results.REBUILD).toBe('true');
    expect(stepLog(r, 'check-published', 'check')).toContain('rebuild forced (FORCE_REBUILD=true)');
    expect(stepLog(r, 'check-published', 'check')).toContain('rebuilding: forced by FORCE_REBUILD=true');
    expect(status(r, GUARDED).every((s) => s.endsWith(':Succeeded'))).toBe(true);
    // The same digest again (a reproducible build): the serving tag stays where it was.
    const tag = r.tasks['check-published'].results.SERVING_TAG;
    expect(r.tasks['build-image'].results.IMAGE_DIGEST).toBe(first.tasks['build-image'].results.IMAGE_DIGEST);
    expect(stepLog(r, 'push-quay', 'push')).toContain(`the serving tag ${tag} already names ${r.tasks['build-image'].results.IMAGE_DIGEST}`);
  });

  test('4a. a target serving another image under the serving tag: the push fails and the tag keeps that image', async () => {
    const digest = first.tasks['build-image'].results.IMAGE_DIGEST;
    const tag = first.tasks['check-published'].results.SERVING_TAG;
    // Another image (the base) under quay's serving tag, as a build that did not reproduce the image would give.
    await run('skopeo', ['copy', '--quiet', '--src-cert-dir', world.internal.certDir, '--src-authfile', world.internal.authFile,
      '--dest-cert-dir', world.quay.certDir, '--dest-authfile', world.quay.authFile, `docker://${world.base.reference}`, `docker://${repositoryOf(world.quay)}:${tag}`]);
    const other = await servedDigest(world.quay, `${repositoryOf(world.quay)}:${tag}`);
    expect(other).not.toBe(digest);
    try {
      const r = await runScenario('published-forced', { log: logTo('published-forced-moved') });
      expect(r.status).toBe('Failed');
      expect(status(r, ['push-internal', 'push-quay'])).toEqual(['push-internal:Succeeded', 'push-quay:Failed']);
      expect(stepLog(r, 'push-quay', 'push')).toContain(`push to ${repositoryOf(world.quay)} failed: the serving tag ${tag} names ${other}, `
        + `and this build of the same model commit and build configuration is ${digest}: the build did not reproduce the image; a serving tag is never moved `
        + `(what git serves by it stays), so it keeps ${other}`);
      expect(await servedDigest(world.quay, `${repositoryOf(world.quay)}:${tag}`)).toBe(other);
      expect(await servedDigest(world.quay, `${repositoryOf(world.quay)}:published`)).toBe(digest);
    } finally {
      // Back as the first run left it, for the scenarios after this one.
      await run('skopeo', ['copy', '--quiet', '--src-cert-dir', world.quay.certDir, '--src-authfile', world.quay.authFile,
        '--dest-cert-dir', world.quay.certDir, '--dest-authfile', world.quay.authFile,
        `docker://${repositoryOf(world.quay)}:published`, `docker://${repositoryOf(world.quay)}:${tag}`]);
    }
  });

  test('4b. the same commit built with another build configuration (layer threshold) is not taken for this run\'s: rebuild', async () => {
    const before = await servedDigest(world.quay, `${repositoryOf(world.quay)}:published`);
    const r = await runScenario('published-other-config', { manifests: otherConfig });
    expect(r.status).toBe('Succeeded');
    expect(r.tasks['check-published'].results.REBUILD).toBe('true');
    expect(stepLog(r, 'check-published', 'check')).toMatch(
      new RegExp(`internal: rebuild: \\S+:published is ${before}, built with build config "sha256:[0-9a-f]{64}", not ${r.tasks['check-published'].results.BUILD_CONFIG}`));
    expect(status(r, GUARDED).every((s) => s.endsWith(':Succeeded'))).toBe(true);
    expect(r.results.QUAY_IMAGE_DIGEST).not.toBe(before);
  });

  test('5. a registry down: the check fails with what it could not reach; nothing is skipped as published, nothing runs', async () => {
    await world.quay.stop();
    let r: RunPipelineResult;
    try {
      r = await runScenario('published-down');
    } finally {
      await world.quay.restart();
    }
    expect(r.status).toBe('Failed');
    expect(status(r, ['check-published', ...GUARDED, 'report-published'])).toEqual([
      'check-published:Failed', ...GUARDED.map((t) => `${t}:Skipped`), 'report-published:Skipped',
    ]);
    // Skipped because the run stopped, not because of the check's answer.
    for (const t of GUARDED) expect(r.tasks[t].reason).toBe('PipelineRun was stopping');
    const log = stepLog(r, 'check-published', 'check');
    expect(log).toContain('connection refused');
    expect(log).toContain(`quay: cannot ask ${repositoryOf(world.quay)} whether it serves published: cannot reach the registry (after 3 retries); `
      + 'whether it already serves the image is unknown, so the run stops rather than skip or rebuild');
    expect(imageResults(r)).toEqual({});
  });

  test('6. credentials a registry refuses: the check fails with the registry\'s words, not a skip', async () => {
    const wrong = { '.dockerconfigjson': JSON.stringify({ auths: { [world.quay.host]: { auth: Buffer.from('robot:wrong-password').toString('base64') } } }) };
    const r = await runScenario('published-bad-creds', { secrets: { 'quay-push': wrong } });
    expect(r.status).toBe('Failed');
    expect(r.tasks['check-published'].status).toBe('Failed');
    const log = stepLog(r, 'check-published', 'check');
    expect(log).toMatch(/unauthorized: authentication required/);
    expect(log).toContain(`quay: cannot ask ${repositoryOf(world.quay)} whether it serves published: the registry refused the credentials (401)`);
    expect(r.tasks['download-model'].status).toBe('Skipped');
  });

  test('7. main moved to another commit: the images are of the old revision, the run rebuilds and labels the new one', async () => {
    const r = await runScenario('published-new-commit', { commit: OTHER_COMMIT });
    expect(r.status).toBe('Succeeded');
    expect(r.results.MODEL_RESOLVED_REVISION).toBe(OTHER_COMMIT);
    expect(stepLog(r, 'check-published', 'check')).toMatch(new RegExp(`internal: rebuild: \\S+:published is sha256:[0-9a-f]{64}, built from revision "${MODEL_COMMIT}", not ${OTHER_COMMIT}`));
    expect(stepLog(r, 'download-model', 'fetch')).toContain(`resolved ${MODEL_REPO}@${OTHER_COMMIT} -> commit ${OTHER_COMMIT}`);
    const config = JSON.parse((await run('skopeo', ['inspect', '--config', '--cert-dir', world.quay.certDir, '--authfile', world.quay.authFile,
      `docker://${repositoryOf(world.quay)}:published-alias`])).stdout);
    expect(config.config.Labels['io.kserve.modelcar.revision']).toBe(OTHER_COMMIT);
  });
});
