/**
 * The registration step (register-model.py, as synthesized: what the pod runs) against the STAND-IN FOR THE MODEL
 * REGISTRY (test/support/model-registry-stand-in.ts), which keeps its state and validates every request against the
 * upstream OpenAPI document. Over TLS, with the CA given as the step gets it (REGISTRY_CA_DIR), and the token as a
 * file. The end-to-end runs through the runner are in test/e2e/modelcar/register-model.test.ts.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Testing } from 'cdk8s';
import { ModelcarPipeline, ModelRegistry, PushTarget, RegistryCredentials, RegistryTrust } from '../../src';
import { loadScript } from '../../src/modelcar/scripts';
import { makeCa } from '../e2e/support/ca';
import { run } from '../e2e/support/tools';
import { startStandInModelRegistry, StandInModelRegistry } from '../support/model-registry-stand-in';
import { synth } from '../support/synth';

jest.setTimeout(60_000);

const TOKEN = 'pipeline-token';
const OTHER_TOKEN = 'viewer-token';
const COMMIT = '0123456789abcdef0123456789abcdef01234567';
const CONFIG = `sha256:${'c'.repeat(64)}`;
const DIGEST = `sha256:${'d'.repeat(64)}`;
const TARGETS = 'internal image-registry.openshift-image-registry.svc:5000/ns/model\nquay quay.io/org/model';

let tmp: string;
let registry: StandInModelRegistry;
let script: string;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'register-model-'));
  const ca = await makeCa(path.join(tmp, 'ca'));
  const cert = await ca.issueServerCert(path.join(tmp, 'server'));
  fs.mkdirSync(path.join(tmp, 'certs'));
  fs.copyFileSync(ca.certPath, path.join(tmp, 'certs', 'service-ca.crt'));
  registry = await startStandInModelRegistry({
    ...cert,
    tokens: {
      [TOKEN]: { account: 'system:serviceaccount:private-ai-demo:pipeline', allowed: true },
      [OTHER_TOKEN]: { account: 'system:serviceaccount:private-ai-demo:viewer', allowed: false },
    },
  });
  fs.writeFileSync(path.join(tmp, 'token'), TOKEN);
  fs.writeFileSync(path.join(tmp, 'other-token'), OTHER_TOKEN);
  fs.writeFileSync(path.join(tmp, 'wrong-token'), 'not-a-token');
  script = path.join(tmp, 'register-model.py');
  fs.writeFileSync(script, loadScript('register-model.py'));
});

afterAll(async () => {
  await registry?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

/** Runs the step script with the env the Task gives it; `env` overrides. */
async function register(env: Record<string, string> = {}) {
  return run('python3', [script], {
    allowFailure: true,
    timeoutMs: 30_000,
    env: {
      PATH: process.env.PATH!,
      PYTHONDONTWRITEBYTECODE: '1',
      REGISTRY_URL: registry.url,
      REGISTRY_CA_DIR: path.join(tmp, 'certs'),
      SA_TOKEN_FILE: path.join(tmp, 'token'),
      REGISTRY_ACCESS: 'the role registry-user-private-ai-model-registry in namespace rhoai-model-registries',
      TARGETS,
      URI_TARGET: 'internal',
      MODEL_FORMAT_NAME: 'vLLM',
      MODEL_FORMAT_VERSION: '1',
      REGISTERED_MODEL_NAME: '',
      MODEL_REPO: 'RedHatAI/Mistral-Small-24B',
      MODEL_REVISION: COMMIT,
      BUILD_CONFIG: CONFIG,
      IMAGE_DIGEST: DIGEST,
      PIPELINE_RUN: 'mistral-0123456789',
      REGISTRY_RETRIES: '2',
      ...env,
    },
  });
}

const str = (v: string) => ({ metadataType: 'MetadataStringValue', string_value: v });

describe('register-model.py against the stand-in model registry', () => {
  test('a first run registers the model, a version for the commit and build configuration, and the artifact by digest', async () => {
    const r = await register();
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    // The upstream client's order: find the model, create it, find the version, create it, list, add the artifact.
    expect(registry.requests.map((q) => `${q.method} ${q.path.replace('/api/model_registry/v1alpha3', '')} ${q.status}`)).toEqual([
      'GET /registered_model 404', 'POST /registered_models 201', 'GET /model_version 404', 'POST /model_versions 201',
      'GET /model_versions/2/artifacts 200', 'POST /model_versions/2/artifacts 201',
    ]);
    expect(registry.models).toEqual([expect.objectContaining({ name: 'RedHatAI/Mistral-Small-24B' })]);
    expect(registry.versions).toEqual([expect.objectContaining({
      name: `${COMMIT.slice(0, 12)}-${'c'.repeat(12)}`,
      registeredModelId: registry.models[0].id,
      customProperties: {
        huggingface_repo: str('RedHatAI/Mistral-Small-24B'),
        huggingface_commit: str(COMMIT),
        build_config: str(CONFIG),
        image_digest: str(DIGEST),
        pipeline_run: str('mistral-0123456789'),
        image_internal: str(`image-registry.openshift-image-registry.svc:5000/ns/model@${DIGEST}`),
        image_quay: str(`quay.io/org/model@${DIGEST}`),
      },
    })]);
    expect(registry.artifacts).toEqual([expect.objectContaining({
      artifactType: 'model-artifact',
      uri: `oci://image-registry.openshift-image-registry.svc:5000/ns/model@${DIGEST}`,
      modelFormatName: 'vLLM',
      modelFormatVersion: '1',
    })]);
    expect(r.stdout).toContain(`registered oci://image-registry.openshift-image-registry.svc:5000/ns/model@${DIGEST} as version`);
  });

  test('a second run registers nothing new: the version with this digest is left as it is', async () => {
    const before = registry.writes().length;
    const r = await register({ PIPELINE_RUN: 'mistral-again' });
    expect(r.code).toBe(0);
    expect(registry.writes()).toHaveLength(before);
    expect([registry.models.length, registry.versions.length, registry.artifacts.length]).toEqual([1, 1, 1]);
    expect(r.stdout).toContain(`is already registered with ${DIGEST}: left as it is`);
  });

  test('a new model commit makes a new version of the same registered model', async () => {
    const commit = 'fedcba9876543210fedcba9876543210fedcba98';
    const r = await register({ MODEL_REVISION: commit, IMAGE_DIGEST: `sha256:${'e'.repeat(64)}` });
    expect(r.code).toBe(0);
    expect(registry.models).toHaveLength(1);
    expect(registry.versions.map((v) => v.name)).toEqual([`${COMMIT.slice(0, 12)}-${'c'.repeat(12)}`, `${commit.slice(0, 12)}-${'c'.repeat(12)}`]);
    expect(registry.artifacts[1].uri).toBe(`oci://image-registry.openshift-image-registry.svc:5000/ns/model@sha256:${'e'.repeat(64)}`);
  });

  test('fails when the version is registered with another digest, naming both, and changes nothing', async () => {
    const before = registry.writes().length;
    const r = await register({ IMAGE_DIGEST: `sha256:${'f'.repeat(64)}` });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`is registered with oci://image-registry.openshift-image-registry.svc:5000/ns/model@${DIGEST}, `
      + `not oci://image-registry.openshift-image-registry.svc:5000/ns/model@sha256:${'f'.repeat(64)}`);
    expect(registry.writes()).toHaveLength(before);
  });

  test('two runs at once: a model, version and artifact another run made between the look-up and the create (409) are taken as they are, never twice', async () => {
    // GIVEN another run of the same image, which creates each record just before this run's create reaches the registry
    const name = 'race/model';
    const version = `${COMMIT.slice(0, 12)}-${'c'.repeat(12)}`;
    const uri = `oci://image-registry.openshift-image-registry.svc:5000/ns/model@${DIGEST}`;
    const modelId = () => registry.models.find((m) => m.name === name)!.id!;
    const versionId = () => registry.versions.find((v) => v.name === version && v.registeredModelId === modelId())!.id!;
    registry.beforeNext('POST /registered_models', (r) => r._create('model', { name }));
    registry.beforeNext('POST /model_versions', (r) => r._create('version', { name: version, registeredModelId: modelId() }));
    registry.beforeNext(/^POST \/model_versions\/\d+\/artifacts$/, (r) => r._create('artifact', {
      artifactType: 'model-artifact', name: `race-model-${version}`, uri,
    }, versionId()));
    const from = registry.requests.length;

    // WHEN
    const r = await register({ REGISTERED_MODEL_NAME: name });

    // THEN each create met the registry's 409, and the run took the record the other run made
    expect([r.code, r.stderr]).toEqual([0, '']);
    expect(registry.requests.slice(from).filter((q) => q.method === 'POST').map((q) => q.status)).toEqual([409, 409, 409]);
    expect(r.stdout.match(/created meanwhile by another run \(409\): taken as it is/g)).toHaveLength(3);
    expect(r.stdout).toContain(`version ${version} is already registered with ${DIGEST}: left as it is`);
    expect(registry.models.filter((m) => m.name === name)).toHaveLength(1);
    expect(registry.versions.filter((v) => v.registeredModelId === modelId())).toHaveLength(1);
    expect(registry.artifacts.filter((a) => a._version === versionId())).toEqual([expect.objectContaining({ uri })]);
  });

  test('fails when another run registers another digest under the version at the same moment, naming both', async () => {
    const name = 'race/other-digest';
    const version = `${COMMIT.slice(0, 12)}-${'c'.repeat(12)}`;
    const other = `oci://image-registry.openshift-image-registry.svc:5000/ns/model@sha256:${'a'.repeat(64)}`;
    registry.beforeNext(/^POST \/model_versions\/\d+\/artifacts$/, (r) => r._create('artifact', {
      artifactType: 'model-artifact', name: `race-other-digest-${version}`, uri: other,
    }, r.versions[r.versions.length - 1].id));
    const r = await register({ REGISTERED_MODEL_NAME: name });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`is registered with ${other}, not oci://image-registry.openshift-image-registry.svc:5000/ns/model@${DIGEST}`);
  });

  test('fails when the proxy refuses the token (401), in the proxy\'s words', async () => {
    const r = await register({ SA_TOKEN_FILE: path.join(tmp, 'wrong-token') });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('the registry\'s proxy refused the service account\'s token (401: Unauthorized)');
    expect(r.stderr).toContain('the images stay published: the next run registers them');
    expect(r.stderr).not.toContain('not-a-token');
  });

  test('fails when the account lacks the role (403), naming the role', async () => {
    const r = await register({ SA_TOKEN_FILE: path.join(tmp, 'other-token') });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('(403: Forbidden (user=system:serviceaccount:private-ai-demo:viewer, verb=get, resource=services, subresource=)): '
      + 'grant it the role registry-user-private-ai-model-registry in namespace rhoai-model-registries');
  });

  test('fails when the registry rejects a request, in the registry\'s words', async () => {
    // A name the upstream document's query pattern refuses (printable ASCII only); the construct refuses it at synth.
    const r = await register({ REGISTERED_MODEL_NAME: 'modèle' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/finding registered model modèle: the registry rejected the request \(HTTP 400: query parameter name "modèle" does not match/);
  });

  test('fails when the CA is not the registry\'s, saying which trust to give', async () => {
    const r = await register({ REGISTRY_CA_DIR: '' });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('TLS certificate verification failed');
    expect(r.stderr).toContain('give the registry\'s CA');
  });

  test('fails when the CA directory holds no certificate, or a file that is not one, in words (ca_trust.py, shared with the hub steps)', async () => {
    const dir = path.join(tmp, 'bad-certs');
    fs.mkdirSync(dir, { recursive: true });
    const empty = await register({ REGISTRY_CA_DIR: dir });
    expect([empty.code, empty.stderr]).toEqual([1, expect.stringContaining(`REGISTRY_CA_DIR=${dir} is not a directory holding *.crt files: check the CA ConfigMap's keys`)]);
    fs.writeFileSync(path.join(dir, 'ca.crt'), 'not a certificate\n');
    const broken = await register({ REGISTRY_CA_DIR: dir });
    expect(broken.code).toBe(1);
    expect(broken.stderr).toContain(`cannot load CA certificate ${path.join(dir, 'ca.crt')}`);
    expect(broken.stderr).not.toContain('Traceback');
  });

  test('fails when the registry is unreachable, after its retries, naming the URL', async () => {
    const url = registry.url;
    await registry.stop();
    try {
      const r = await register();
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`cannot reach the model registry at ${url} after 2 attempt(s): [Errno 111] Connection refused`);
    } finally {
      await registry.start();
    }
  });
});

describe('the stand-in validates what it is sent against the upstream document', () => {
  test('a body with a field the schema lacks, or of the wrong type, is refused', () => {
    expect(registry.schemas.validate('RegisteredModelCreate', { name: 'm' })).toEqual([]);
    expect(registry.schemas.validate('RegisteredModelCreate', { name: 'm', id: '1' })).toEqual(['json: unknown field "id"']);
    expect(registry.schemas.validate('ModelVersionCreate', { name: 'v' })).toEqual([expect.stringContaining('must have required property \'registeredModelId\'')]);
    expect(registry.schemas.validate('Artifact', { artifactType: 'model-artifact', uri: 'oci://x', customProperties: { a: { string_value: 'b' } } }).length).toBeGreaterThan(0);
    expect(registry.schemas.validate('Artifact', { artifactType: 'weights' })).toEqual([expect.stringContaining('artifactType "weights" is not one of')]);
  });
});

describe('the construct', () => {
  const targets = () => [
    PushTarget.openshiftInternal({ namespace: 'ns', repository: 'model' }),
    PushTarget.quay({ organization: 'org', repository: 'model', credentials: RegistryCredentials.fromDockerConfigSecret('q') }),
  ];

  test('the step gets the registry, its CA, the targets and the params through env only', () => {
    const chart = Testing.chart();
    const modelcar = new ModelcarPipeline(chart, 'm', {
      pushTargets: targets(),
      modelRegistry: ModelRegistry.fromService({ name: 'team-registry', pushTarget: 'quay', modelFormatName: 'vLLM', modelFormatVersion: '2' }),
    });
    modelcar.addRun('r', { model: { repo: 'org/model' }, tags: ['t'], registeredModelName: 'Team model' });
    const docs = synth(chart);
    const task = docs.find((d) => d.kind === 'Task' && d.metadata.name === 'modelcar-register-model');
    const step = task.spec.steps.find((s: any) => s.name === 'register');
    const env = Object.fromEntries(step.env.map((e: any) => [e.name, e.value ?? e.valueFrom]));
    expect(env).toMatchObject({
      REGISTRY_URL: 'https://team-registry.rhoai-model-registries.svc:8443',
      REGISTRY_CA_DIR: '/etc/modelcar/model-registry-certs',
      URI_TARGET: 'quay',
      MODEL_FORMAT_VERSION: '2',
      REGISTRY_ACCESS: 'the role registry-user-team-registry in namespace rhoai-model-registries (get on service team-registry)',
      IMAGE_DIGEST: '$(params.IMAGE_DIGEST)',
    });
    expect(step.script).not.toContain('$(params.');
    expect(task.spec.volumes).toEqual([{ name: 'model-registry-ca', configMap: { name: 'openshift-service-ca.crt' } }]);
    const pipelineRun = docs.find((d) => d.kind === 'PipelineRun');
    expect(pipelineRun.spec.params).toContainEqual({ name: 'REGISTERED_MODEL_NAME', value: 'Team model' });
    const pipeline = docs.find((d) => d.kind === 'Pipeline');
    expect(pipeline.spec.tasks.find((t: any) => t.name === 'register-model').runAfter).toEqual(['report-published']);
  });

  test('fails when the registry does not verify TLS, or the url is not https', () => {
    expect(() => ModelRegistry.fromUrl('https://r.example.com', { trust: RegistryTrust.insecureSkipVerify() }))
      .toThrow('model registry https://r.example.com: trust must verify TLS (the service account\'s token would be open to anyone on the path): give the CA with RegistryTrust.fromConfigMap() or fromSecret()');
    expect(() => ModelRegistry.fromUrl('http://r.example.com')).toThrow('model registry url "http://r.example.com" must be https, without credentials, query or fragment');
  });

  test('fails when the registry\'s push target is not one of the pipeline\'s', () => {
    expect(() => new ModelcarPipeline(Testing.chart(), 'm', { pushTargets: targets(), modelRegistry: ModelRegistry.fromUrl('https://r.example.com', { pushTarget: 'mirror' }) }))
      .toThrow('register model task test/m/RegisterModel: model registry pushTarget "mirror" is not a push target: use one of "internal", "quay"');
  });

  test('fails when a run names a registered model but the pipeline has no registry', () => {
    const modelcar = new ModelcarPipeline(Testing.chart(), 'm', { pushTargets: targets() });
    expect(() => modelcar.addRun('r', { model: { repo: 'org/model' }, tags: ['t'], registeredModelName: 'x' }))
      .toThrow('modelcar run test/m/r: registeredModelName "x" needs a pipeline with a model registry: pass modelRegistry: ModelRegistry.fromService(...) to the ModelcarPipeline, or drop registeredModelName');
  });
});
