import * as fs from 'fs';
import * as path from 'path';
import * as yaml from 'js-yaml';
import { expectValidTektonManifests, tektonReferenceDir, validateTektonManifest } from './tekton-schema';

// ---------------------------------------------------------------------------------------------
// The corpus: Tekton's own v1 examples
// ---------------------------------------------------------------------------------------------

interface CorpusDoc {
  /** Path relative to examples-v1/. */
  readonly file: string;
  /** `Kind/name` (`Kind/prefix*` for generateName). */
  readonly id: string;
  readonly doc: any;
}

function yamlFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true })
    .flatMap((entry) => {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) return yamlFiles(full);
      return /\.ya?ml$/.test(entry.name) ? [full] : [];
    })
    .sort();
}

function docId(doc: any): string {
  const meta = doc.metadata ?? {};
  return `${doc.kind}/${meta.name ?? `${meta.generateName}*`}`;
}

function loadCorpus(): CorpusDoc[] {
  const root = path.join(tektonReferenceDir(), 'examples-v1');
  return yamlFiles(root).flatMap((file) =>
    yaml.loadAll(fs.readFileSync(file, 'utf8'))
      .filter((doc): doc is any => typeof doc === 'object' && doc !== null)
      .map((doc) => ({ file: path.relative(root, file), id: docId(doc), doc })));
}

/**
 * Examples our validator rejects on purpose. Each must keep failing with the given error
 * (checked below), so this list cannot silently rot when the examples or the validator change.
 */
const EXPECTED_INVALID: ReadonlyArray<{ file: string; id: string; error: RegExp }> = [
  // A typo in the example: the field is `mountPath`. The CRD leaves embedded task specs open,
  // so the API server never saw it; the webhook and our closed schema reject the unknown field.
  {
    file: 'pipelineruns/beta/isolated-workspaces.yaml',
    id: 'PipelineRun/isolated-workspaces-*',
    error: /\/spec\/pipelineSpec\/tasks\/0\/taskSpec\/steps\/0\/workspaces\/0: unknown field "mountpath"/,
  },
  // Tekton's webhook (validate.ObjectMetadata) rejects '.' in resource names
  // ("special character . must not be present"); our DNS-1123-label rule does too.
  {
    file: 'pipelineruns/pipelinerun.yaml',
    id: 'Pipeline/demo.pipeline',
    error: /\/metadata\/name: must match pattern/,
  },
  // `default: true` is a YAML boolean. Tekton's lenient ParamValue unmarshaller stringifies it,
  // but we require real strings so generated YAML never depends on implicit YAML typing.
  {
    file: 'taskruns/alpha/produce-consume-artifacts.yaml',
    id: 'TaskRun/step-artifacts-*',
    error: /\/spec\/taskSpec\/params\/0\/default: must match one of: must be string/,
  },
];

/**
 * Errors tolerated across the whole corpus (not per file), each with the reason:
 * - unnamed steps/sidecars: the CRD lists `name` as required only because the Go field has no
 *   omitempty, and Tekton's defaulting webhook serialises `name: ""` before the API server checks
 *   it, so Tekton accepts unnamed steps (examples/taskruns/unnamed-steps.yaml tests exactly that).
 *   Our validator still requires names, by project policy (always name steps).
 */
const TOLERATED_IN_CORPUS: readonly RegExp[] = [
  /\/(steps|sidecars)\/\d+: must have required property 'name'$/,
];

describe('the Tekton v1 examples', () => {
  const corpus = loadCorpus();
  const tekton = corpus.filter((d) => typeof d.doc.apiVersion === 'string' && d.doc.apiVersion.startsWith('tekton.dev/'));
  const v1 = tekton.filter((d) => d.doc.apiVersion === 'tekton.dev/v1');
  const other = tekton.filter((d) => d.doc.apiVersion !== 'tekton.dev/v1');
  const isException = (d: CorpusDoc): boolean => EXPECTED_INVALID.some((e) => e.file === d.file && e.id === d.id);
  const toleratedHits = new Map<RegExp, number>(TOLERATED_IN_CORPUS.map((r) => [r, 0]));

  test('the corpus is there and mostly tekton.dev/v1', () => {
    // Sanity bound so an emptied or moved corpus cannot make the next test pass vacuously.
    expect(v1.length).toBeGreaterThan(200);
  });

  test('every tekton.dev/v1 example validates (except the listed ones)', () => {
    const failures: string[] = [];
    let validated = 0;
    for (const d of v1) {
      if (isException(d)) continue;
      validated++;
      const errors = validateTektonManifest(d.doc).filter((e) => {
        const tolerated = TOLERATED_IN_CORPUS.find((r) => r.test(e));
        if (tolerated) toleratedHits.set(tolerated, toleratedHits.get(tolerated)! + 1);
        return !tolerated;
      });
      failures.push(...errors.map((e) => `${d.file}: ${e}`));
    }
    console.log(
      `tekton-schema: validated ${validated} tekton.dev/v1 example documents `
      + `(${EXPECTED_INVALID.length} expected-invalid, ${other.length} non-v1 skipped: `
      + `${[...new Set(other.map((d) => `${d.doc.apiVersion} ${d.doc.kind}`))].join(', ')}); `
      + `tolerated errors: ${[...toleratedHits].map(([r, n]) => `${n}x ${r.source}`).join(', ')}`,
    );
    expect(failures).toEqual([]);
    expect(validated).toBe(v1.length - EXPECTED_INVALID.length);
  });

  test('every tolerated error pattern is still needed', () => {
    // Runs after the corpus test (jest runs tests of a file in order).
    for (const [pattern, hits] of toleratedHits) {
      expect({ pattern: pattern.source, hits: hits > 0 }).toEqual({ pattern: pattern.source, hits: true });
    }
  });

  test.each(EXPECTED_INVALID)('the listed exception $file ($id) really fails', ({ file, id, error }) => {
    const matches = v1.filter((d) => d.file === file && d.id === id);
    expect(matches).toHaveLength(1);
    const errors = validateTektonManifest(matches[0].doc);
    expect(errors.some((e) => error.test(e))).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
// Hand-written documents
// ---------------------------------------------------------------------------------------------

const IMAGE = 'registry.access.redhat.com/ubi9/ubi-minimal:latest';

function task(): any {
  return {
    apiVersion: 'tekton.dev/v1',
    kind: 'Task',
    metadata: { name: 'build', labels: { 'app.kubernetes.io/name': 'modelcar' }, annotations: { note: 'x y z' } },
    spec: {
      params: [{ name: 'model', type: 'string', default: 'granite' }],
      workspaces: [{ name: 'source' }],
      results: [{ name: 'digest', type: 'string' }],
      volumes: [{ name: 'scratch', emptyDir: {} }],
      steps: [{
        name: 'build',
        image: IMAGE,
        computeResources: { requests: { cpu: '500m', memory: '1Gi' }, limits: { cpu: 2 } },
        env: [{ name: 'MODEL', value: '$(params.model)' }],
        volumeMounts: [{ name: 'scratch', mountPath: '/scratch' }],
        script: 'echo "$(params.model)" > "$(results.digest.path)"\n',
      }],
    },
  };
}

function pipeline(): any {
  return {
    apiVersion: 'tekton.dev/v1',
    kind: 'Pipeline',
    metadata: { name: 'modelcar' },
    spec: {
      params: [{ name: 'model', type: 'string' }],
      workspaces: [{ name: 'shared' }],
      tasks: [
        { name: 'build', taskRef: { name: 'build' }, params: [{ name: 'model', value: '$(params.model)' }], retries: 2 },
        {
          name: 'report',
          runAfter: ['build'],
          taskSpec: {
            metadata: { labels: { step: 'report' } },
            steps: [{ name: 'report', image: IMAGE, script: 'echo done\n' }],
          },
        },
      ],
      finally: [{ name: 'cleanup', taskSpec: { steps: [{ name: 'cleanup', image: IMAGE, script: 'true\n' }] } }],
    },
  };
}

function pipelineRun(): any {
  return {
    apiVersion: 'tekton.dev/v1',
    kind: 'PipelineRun',
    metadata: { generateName: 'modelcar-' },
    spec: {
      pipelineSpec: pipeline().spec,
      params: [{ name: 'model', value: 'granite' }],
      taskRunTemplate: {
        serviceAccountName: 'pipeline',
        podTemplate: { securityContext: { runAsNonRoot: true, fsGroup: 1001, seccompProfile: { type: 'RuntimeDefault' } } },
      },
      workspaces: [{
        name: 'shared',
        volumeClaimTemplate: { spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '10Gi' } } } },
      }],
    },
  };
}

function taskRun(): any {
  return {
    apiVersion: 'tekton.dev/v1',
    kind: 'TaskRun',
    metadata: { name: 'build-run' },
    spec: { taskSpec: task().spec, params: [{ name: 'model', value: 'granite' }], workspaces: [{ name: 'source', emptyDir: {} }] },
  };
}

/** Asserts that `doc` is rejected with an error matching `pattern`, and shows the errors otherwise. */
function expectRejected(doc: any, pattern: RegExp): string[] {
  const errors = validateTektonManifest(doc);
  expect(errors).toEqual(expect.arrayContaining([expect.stringMatching(pattern)]));
  return errors;
}

describe('validateTektonManifest', () => {
  test.each([
    ['Task', task],
    ['Pipeline', pipeline],
    ['PipelineRun', pipelineRun],
    ['TaskRun', taskRun],
  ])('accepts a valid %s', (_kind, make) => {
    expect(validateTektonManifest(make())).toEqual([]);
  });

  test('accepts a ParamSpec with `properties` (object param)', () => {
    const t = task();
    t.spec.params.push({
      name: 'repo',
      type: 'object',
      properties: { url: { type: 'string' }, revision: { type: 'string' } },
      default: { url: 'https://example.com/repo.git', revision: 'main' },
    });
    t.spec.steps[0].script = 'echo "$(params.repo.url)"\n';
    expect(validateTektonManifest(t)).toEqual([]);
  });

  test('ignores non-Tekton documents', () => {
    expect(validateTektonManifest({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'Not_Checked' }, bogus: 1 })).toEqual([]);
    expect(validateTektonManifest({ apiVersion: 'kustomize.config.k8s.io/v1beta1', kind: 'Kustomization', resources: [] })).toEqual([]);
    expect(validateTektonManifest({ apiVersion: 'triggers.tekton.dev/v1beta1', kind: 'EventListener' })).toEqual([]);
    expect(validateTektonManifest(null)).toEqual([]);
  });

  test('errors name the kind, the name and the JSON pointer', () => {
    const t = task();
    t.spec.steps[0].bogus = true;
    expect(validateTektonManifest(t)).toEqual(['Task/build /spec/steps/0: unknown field "bogus"']);
  });

  test('fails when apiVersion is tekton.dev/v1beta1', () => {
    const t = task();
    t.apiVersion = 'tekton.dev/v1beta1';
    expect(validateTektonManifest(t)).toEqual(['Task/build: apiVersion tekton.dev/v1beta1 is not allowed; emit tekton.dev/v1 only']);
  });

  test('fails when a tekton.dev/v1 kind has no CRD here', () => {
    expectRejected({ apiVersion: 'tekton.dev/v1', kind: 'ClusterTask', metadata: { name: 'x' }, spec: {} }, /kind "ClusterTask" is not one of/);
  });

  test('fails when a step has an unknown field', () => {
    const t = task();
    t.spec.steps[0].scripts = 'echo hi';
    expectRejected(t, /^Task\/build \/spec\/steps\/0: unknown field "scripts"$/);
  });

  test('fails when the spec has an unknown top-level field', () => {
    const t = task();
    t.spec.timeout = '1h'; // v1 Task specs have no timeout: it belongs on the pipeline task
    expectRejected(t, /\/spec: unknown field "timeout"/);
  });

  test('fails when a field has the wrong type (retries: "x")', () => {
    const p = pipeline();
    p.spec.tasks[0].retries = 'x';
    expectRejected(p, /\/spec\/tasks\/0\/retries: must be integer/);
  });

  test('fails when an int-or-string quantity is neither', () => {
    const t = task();
    t.spec.steps[0].computeResources.requests.cpu = true;
    expectRejected(t, /\/spec\/steps\/0\/computeResources\/requests\/cpu: must match one of: must be integer \| must be string/);
  });

  test('fails when a required field is missing', () => {
    const t = task();
    delete t.spec.params[0].name;
    expectRejected(t, /\/spec\/params\/0: must have required property 'name'/);
    const noSteps = task();
    delete noSteps.spec.steps;
    expectRejected(noSteps, /\/spec: must have required property 'steps'/);
    const unnamedStep = task();
    delete unnamedStep.spec.steps[0].name;
    expectRejected(unnamedStep, /\/spec\/steps\/0: must have required property 'name'/);
    const unnamedObject = task();
    unnamedObject.metadata = {};
    expectRejected(unnamedObject, /\/metadata: must match one of: must have required property 'name' \| must have required property 'generateName'/);
  });

  test('fails when a pipeline task has neither a ref nor a spec', () => {
    const p = pipeline();
    delete p.spec.tasks[0].taskRef;
    expectRejected(p, /\/spec\/tasks\/0: must match one of: must have required property 'taskRef'/);
  });

  test.each([
    ['uppercase', 'Build'],
    ['underscore', 'my_task'],
    ['a dot', 'demo.pipeline'],
    ['64 characters', 'a'.repeat(64)],
    ['a trailing dash', 'build-'],
  ])('fails when metadata.name has %s', (_what, name) => {
    const t = task();
    t.metadata.name = name;
    expectRejected(t, /\/metadata\/name: must (match pattern|NOT have more than 63 characters)/);
  });

  test('accepts a 63-character name and a generateName prefix', () => {
    const t = task();
    t.metadata.name = 'a'.repeat(63);
    expect(validateTektonManifest(t)).toEqual([]);
    const r = pipelineRun();
    r.metadata = { generateName: 'modelcar-build-' };
    expect(validateTektonManifest(r)).toEqual([]);
  });

  test('fails when labels or annotations are not string maps', () => {
    const t = task();
    t.metadata.labels.replicas = 3;
    t.metadata.annotations.enabled = true;
    t.metadata.labels['not a key'] = 'x';
    const errors = validateTektonManifest(t);
    expect(errors).toEqual(expect.arrayContaining([
      expect.stringMatching(/\/metadata\/labels\/replicas: must be string/),
      expect.stringMatching(/\/metadata\/annotations\/enabled: must be string/),
      expect.stringMatching(/\/metadata\/labels: property name must be valid/),
    ]));
  });

  test('fails when a step inside an embedded taskSpec has an unknown field', () => {
    const p = pipeline();
    p.spec.tasks[1].taskSpec.steps[0].imagePullPolicyy = 'Always';
    expectRejected(p, /^Pipeline\/modelcar \/spec\/tasks\/1\/taskSpec\/steps\/0: unknown field "imagePullPolicyy"$/);
    const f = pipeline();
    f.spec.finally[0].taskSpec.steps[0].mountpath = '/x';
    expectRejected(f, /\/spec\/finally\/0\/taskSpec\/steps\/0: unknown field "mountpath"/);
  });

  test('fails when a step inside PipelineRun.pipelineSpec.tasks[].taskSpec has an unknown field', () => {
    const r = pipelineRun();
    r.spec.pipelineSpec.tasks[1].taskSpec.steps[0].bogus = 1;
    expectRejected(r, /\/spec\/pipelineSpec\/tasks\/1\/taskSpec\/steps\/0: unknown field "bogus"/);
  });

  test('fails when an embedded taskSpec has an unknown field or bad metadata', () => {
    const p = pipeline();
    p.spec.tasks[1].taskSpec.timeout = '1h';
    p.spec.tasks[1].taskSpec.metadata.name = 'not-allowed-here';
    const errors = expectRejected(p, /\/spec\/tasks\/1\/taskSpec: unknown field "timeout"/);
    expect(errors).toEqual(expect.arrayContaining([expect.stringMatching(/\/spec\/tasks\/1\/taskSpec\/metadata: unknown field "name"/)]));
  });

  test('accepts an embedded custom task (apiVersion/kind/spec, no steps)', () => {
    const p = pipeline();
    p.spec.tasks[1].taskSpec = { apiVersion: 'example.dev/v0', kind: 'Example', spec: { anything: ['goes'] } };
    expect(validateTektonManifest(p)).toEqual([]);
  });

  test('fails when TaskRun.spec.taskSpec has an unknown step field', () => {
    const r = taskRun();
    r.spec.taskSpec.steps[0].bogus = 1;
    expectRejected(r, /^TaskRun\/build-run \/spec\/taskSpec\/steps\/0: unknown field "bogus"$/);
  });

  test('fails when PipelineRun uses the v1beta1 layout (serviceAccountName at spec)', () => {
    const r = pipelineRun();
    r.spec.serviceAccountName = 'pipeline';
    expectRejected(r, /^PipelineRun\/modelcar-\* \/spec: unknown field "serviceAccountName"$/);
  });

  test('fails when a ParamSpec `properties` entry has an unknown field', () => {
    const t = task();
    t.spec.params.push({ name: 'repo', type: 'object', properties: { url: { type: 'string', format: 'uri' } } });
    expectRejected(t, /\/spec\/params\/1\/properties\/url: unknown field "format"/);
  });

  test('fails when a param default does not match the declared type', () => {
    const t = task();
    t.spec.params[0] = { name: 'flags', type: 'array', default: '--verbose' };
    expectRejected(t, /\/spec\/params\/0\/default: must be array/);
  });

  test('fails when a param value is not a string, string array or string map', () => {
    const r = pipelineRun();
    r.spec.params[0].value = 3;
    expectRejected(r, /\/spec\/params\/0\/value: must match one of: must be string/);
  });

  test('fails when podTemplate.securityContext or a volumeClaimTemplate has an unknown field', () => {
    const r = pipelineRun();
    r.spec.taskRunTemplate.podTemplate.securityContext.runAsNonroot = true;
    r.spec.workspaces[0].volumeClaimTemplate.spec.storageClass = 'fast';
    const errors = expectRejected(r, /\/spec\/taskRunTemplate\/podTemplate\/securityContext: unknown field "runAsNonroot"/);
    expect(errors).toEqual(expect.arrayContaining([
      expect.stringMatching(/\/spec\/workspaces\/0\/volumeClaimTemplate\/spec: unknown field "storageClass"/),
    ]));
  });

  test('fails when a Task volume has an unknown field or two sources', () => {
    const t = task();
    t.spec.volumes[0].emptyDir = { medium: 'Memory', size: '1Gi' };
    expectRejected(t, /\/spec\/volumes\/0\/emptyDir: unknown field "size"/);
    const two = task();
    two.spec.volumes[0].configMap = { name: 'cfg' };
    expectRejected(two, /\/spec\/volumes\/0: must NOT have more than 2 properties/);
  });

  test('fails when a list-type=map list repeats a key', () => {
    const t = task();
    t.spec.steps[0].computeResources.claims = [{ name: 'gpu' }, { name: 'gpu' }];
    expectRejected(t, /\/spec\/steps\/0\/computeResources\/claims: must not contain two items with the same name/);
  });
});

describe('expectValidTektonManifests', () => {
  test('passes for valid documents and ignores the rest', () => {
    expect(() => expectValidTektonManifests([task(), pipeline(), { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'x' } }])).not.toThrow();
  });

  test('throws one error listing every problem with its document index', () => {
    const t = task();
    t.spec.steps[0].bogus = 1;
    const p = pipeline();
    p.spec.tasks[0].retries = 'x';
    expect(() => expectValidTektonManifests([t, p])).toThrow(
      /2 Tekton schema error\(s\):\n {2}\[doc 0\] Task\/build \/spec\/steps\/0: unknown field "bogus"\n {2}\[doc 1\] Pipeline\/modelcar \/spec\/tasks\/0\/retries: must be integer/,
    );
  });
});

describe('tektonReferenceDir', () => {
  const saved = process.env.TEKTON_REFERENCE_DIR;
  afterEach(() => {
    if (saved === undefined) delete process.env.TEKTON_REFERENCE_DIR;
    else process.env.TEKTON_REFERENCE_DIR = saved;
  });

  test('throws a clear error naming the missing path', () => {
    process.env.TEKTON_REFERENCE_DIR = '/nonexistent/tekton-reference';
    expect(() => tektonReferenceDir()).toThrow(/Tekton reference data not found at \/nonexistent\/tekton-reference/);
  });
});
