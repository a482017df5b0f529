/**
 * End to end: each published image is registered in the model registry by digest (issue 18). The synthesized
 * pipeline, with `modelRegistry`, run by test/e2e/runner against the world of the other scenarios (two TLS
 * registries, STAND-IN FOR THE HUGGING FACE HUB) and the STAND-IN FOR THE MODEL REGISTRY
 * (test/support/model-registry-stand-in.ts: its state kept across the runs, every request validated against the
 * upstream OpenAPI document, the proxy's 401 and 403), over TLS with its CA from the ConfigMap `model-registry-ca`,
 * the `pipeline` service account's token as the Bearer token.
 *
 * Under OpenShift Pipelines' pipelines-scc (clusterLike: the Python image as its own uid 1001), and once under
 * restricted-v2 with a namespace's own range (the namespace's uid for every container).
 * Missing tools or no root make the suite FAIL, never skip.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Size } from 'cdk8s';
import { MODEL_COMMIT, MODEL_REPO, repositoryOf, runModelcar, RunModelcarOptions, servedDigest, startWorld, stopWorld, synthesizePipeline, World } from './world';
import { ModelcarBuilder, ModelRegistry, RegistryTrust } from '../../../src';
import { startStandInModelRegistry, StandInModelRegistry } from '../../support/model-registry-stand-in';
import { RunPipelineResult, sandboxSupport } from '../runner/tekton-runner';
import { SyntheticModel, writeSyntheticModel } from '../support/model-fixture';
import { freshWorkDir, run } from '../support/tools';

jest.setTimeout(300_000);

const OTHER_COMMIT = 'fedcba9876543210fedcba9876543210fedcba98';
const NAMESPACE_SCC = { uidRange: '1000650000/10000', supplementalGroups: '1000650000/10000' };
const ACCOUNT = 'system:serviceaccount:private-ai-demo:pipeline';

let work: string;
let world: World;
let model: SyntheticModel;
let manifests: any[];
let registry: StandInModelRegistry;

function logTo(name: string): (line: string) => void {
  const file = path.join(work, 'logs', `${name}.log`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  return (line) => fs.appendFileSync(file, `${line}\n`);
}

async function runScenario(variant: string, logName: string, opts: Partial<RunModelcarOptions> = {}): Promise<RunPipelineResult> {
  return runModelcar(world, {
    manifests,
    pipelineRun: variant,
    workDir: path.join(work, 'runs'),
    model,
    log: logTo(logName),
    configMaps: { 'model-registry-ca': { 'service-ca.crt': fs.readFileSync(world.ca.certPath, 'utf8') } },
    ...opts,
  });
}

const stepLog = (r: RunPipelineResult, task: string, step: string) => r.tasks[task]?.steps.find((s) => s.name === step)?.log ?? '';
const status = (r: RunPipelineResult, tasks: string[]) => tasks.map((t) => `${t}:${r.tasks[t]?.status ?? 'NotRun'}`);
const versionName = (commit: string, r: RunPipelineResult) => `${commit.slice(0, 12)}-${r.tasks['check-published'].results.BUILD_CONFIG.slice(7, 19)}`;

beforeAll(async () => {
  const support = sandboxSupport();
  if (!support.ok) throw new Error(`the e2e runner cannot run here: ${support.reason}`);
  work = freshWorkDir('register');
  world = await startWorld(work);
  const cert = await world.ca.issueServerCert(path.join(work, 'model-registry'));
  registry = await startStandInModelRegistry({ ...cert, tokens: { [world.serviceAccountToken]: { account: ACCOUNT, allowed: true } } });
  model = await writeSyntheticModel(path.join(work, 'model'), { totalBytes: 12 * 1024 * 1024, files: 2, seed: 'register' });
  manifests = synthesizePipeline(world, path.join(work, 'dist'), {
    builder: ModelcarBuilder.ociLayout({ largeFileThreshold: Size.mebibytes(4) }),
    modelRegistry: ModelRegistry.fromUrl(registry.url, { trust: RegistryTrust.fromConfigMap('model-registry-ca') }),
    runs: [
      { name: 'reg', tags: ['reg'] },
      { name: 'reg-denied', tags: ['reg-denied'] },
      { name: 'reg-ns', tags: ['reg-ns'], fsGroup: 'namespace', registeredModelName: 'restricted-v2 model' },
    ],
  });
}, 120_000);

afterAll(async () => {
  await registry?.stop();
  await stopWorld(world);
});

describe('a published image is registered in the model registry by digest', () => {
  let first: RunPipelineResult;

  test('1. first run: builds, pushes, reports, then registers the model, a version and the artifact by digest (pipelines-scc)', async () => {
    first = await runScenario('reg', 'reg-1');
    expect(first.status).toBe('Succeeded');
    expect(status(first, ['push-internal', 'push-quay', 'report-published', 'register-model'])).toEqual([
      'push-internal:Succeeded', 'push-quay:Succeeded', 'report-published:Succeeded', 'register-model:Succeeded',
    ]);
    const digest = first.results.INTERNAL_IMAGE_DIGEST;
    expect(registry.models.map((m) => m.name)).toEqual([MODEL_REPO]);
    expect(registry.versions).toEqual([
      expect.objectContaining({ name: versionName(MODEL_COMMIT, first), registeredModelId: registry.models[0].id }),
    ]);
    expect(registry.versions[0].customProperties).toMatchObject({
      huggingface_commit: { metadataType: 'MetadataStringValue', string_value: MODEL_COMMIT },
      image_quay: { metadataType: 'MetadataStringValue', string_value: `${repositoryOf(world.quay)}@${digest}` },
      pipeline_run: { metadataType: 'MetadataStringValue', string_value: first.pipelineRun.name },
    });
    expect(registry.artifacts).toEqual([expect.objectContaining({ uri: `oci://${repositoryOf(world.internal)}@${digest}`, modelFormatName: 'vLLM' })]);
    // The digest recorded is the image index's (the default platforms): the reference serves every node's architecture.
    const served = JSON.parse((await run('skopeo', ['inspect', '--raw', '--cert-dir', world.internal.certDir, '--authfile', world.internal.authFile,
      `docker://${repositoryOf(world.internal)}@${digest}`])).stdout);
    expect(served.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(served.manifests.map((m: any) => m.platform.architecture)).toEqual(['amd64', 'arm64']);
    // The Python image's own user, as pipelines-scc runs it; the token never shows.
    expect(first.tasks['register-model'].steps.find((s) => s.name === 'register')!.uid).toBe(1001);
    expect(first.log).not.toContain(world.serviceAccountToken);
  });

  test('2. the same run again: the build is skipped, the registration runs and registers nothing new', async () => {
    expect(first?.status).toBe('Succeeded');
    const writes = registry.writes().length;
    const r = await runScenario('reg', 'reg-2');
    expect(r.status).toBe('Succeeded');
    expect(status(r, ['build-image', 'push-internal', 'register-model'])).toEqual(['build-image:Skipped', 'push-internal:Skipped', 'register-model:Succeeded']);
    expect(registry.writes()).toHaveLength(writes);
    expect(stepLog(r, 'register-model', 'register')).toContain(`is already registered with ${first.results.INTERNAL_IMAGE_DIGEST}: left as it is`);
    // What the stand-in stored after the two runs, for a person to read (MODELCAR_REGISTRY_RECORDS=<file>).
    if (process.env.MODELCAR_REGISTRY_RECORDS) {
      const records = { models: registry.models, versions: registry.versions, artifacts: registry.artifacts };
      fs.writeFileSync(process.env.MODELCAR_REGISTRY_RECORDS, JSON.stringify(records, undefined, 1));
    }
  });

  test('3. a new model commit makes a new version of the same registered model', async () => {
    const r = await runScenario('reg', 'reg-3', { commit: OTHER_COMMIT });
    expect(r.status).toBe('Succeeded');
    expect(registry.models).toHaveLength(1);
    expect(registry.versions.map((v) => v.name)).toEqual([versionName(MODEL_COMMIT, first), versionName(OTHER_COMMIT, r)]);
    expect(registry.artifacts[1].uri).toBe(`oci://${repositoryOf(world.internal)}@${r.results.INTERNAL_IMAGE_DIGEST}`);
  });

  test('4. the account lacks the registry\'s role (403): the run fails after the pushes, the images stay published', async () => {
    registry.setToken(world.serviceAccountToken, { account: ACCOUNT, allowed: false });
    let r: RunPipelineResult;
    try {
      r = await runScenario('reg-denied', 'reg-403');
    } finally {
      registry.setToken(world.serviceAccountToken, { account: ACCOUNT, allowed: true });
    }
    expect(r.status).toBe('Failed');
    expect(status(r, ['push-internal', 'push-quay', 'report-published', 'register-model'])).toEqual([
      'push-internal:Succeeded', 'push-quay:Succeeded', 'report-published:Succeeded', 'register-model:Failed',
    ]);
    expect(stepLog(r, 'register-model', 'register')).toContain(`the registry's proxy denies the PipelineRun's service account (403: Forbidden (user=${ACCOUNT}, `
      + 'verb=get, resource=services, subresource=)): grant it access to the registry (on OpenShift AI: the role registry-user-<registry name>');
    expect(stepLog(r, 'register-model', 'register')).toContain('the images stay published: the next run registers them');
    expect(await servedDigest(world.quay, `${repositoryOf(world.quay)}:reg-denied`)).toBe(r.results.QUAY_IMAGE_DIGEST);
  });

  test('5. a token the proxy does not know (401): the run fails with the proxy\'s words', async () => {
    registry.setToken(world.serviceAccountToken, undefined);
    let r: RunPipelineResult;
    try {
      r = await runScenario('reg', 'reg-401');
    } finally {
      registry.setToken(world.serviceAccountToken, { account: ACCOUNT, allowed: true });
    }
    expect(r.status).toBe('Failed');
    expect(r.tasks['register-model'].status).toBe('Failed');
    expect(stepLog(r, 'register-model', 'register')).toContain('the registry\'s proxy refused the service account\'s token (401: Unauthorized)');
  });

  test('6. the registry unreachable: the run fails naming its URL', async () => {
    const url = registry.url;
    await registry.stop();
    let r: RunPipelineResult;
    try {
      r = await runScenario('reg', 'reg-down');
    } finally {
      await registry.start();
    }
    expect(r.status).toBe('Failed');
    expect(stepLog(r, 'register-model', 'register')).toContain(`cannot reach the model registry at ${url} after 3 attempt(s): [Errno 111] Connection refused`);
  });

  test('7. under restricted-v2 with the namespace\'s own range: registers under the name the run gives', async () => {
    const r = await runScenario('reg-ns', 'reg-ns', { extra: { scc: NAMESPACE_SCC } });
    expect(r.status).toBe('Succeeded');
    expect(r.tasks['register-model'].steps.every((s) => s.uid === 1000650000)).toBe(true);
    const restricted = registry.models.find((m) => m.name === 'restricted-v2 model');
    expect(restricted).toBeDefined();
    expect(registry.artifacts.filter((a) => a.uri === `oci://${repositoryOf(world.internal)}@${r.results.INTERNAL_IMAGE_DIGEST}`)).toHaveLength(2);
    expect(registry.versions.filter((v) => v.registeredModelId === restricted!.id)).toHaveLength(1);
  });
});
