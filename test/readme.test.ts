/**
 * The README's examples, run as written: only the package import is pointed at src/ and the App is given an
 * output folder (the modelcar example shows a body only: its imports, App and Chart are added around it).
 * Their manifests must validate against the Tekton schemas and pass shellcheck.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as yaml from 'js-yaml';
import { expectValidKserveManifests } from './support/kserve-schema';
import { argoCdSyncOrder, readmeBlock, runsBeforeTheirDefinitions } from './support/readme';
import { expectShellcheckClean } from './support/shellcheck';
import { expectValidTektonManifests } from './support/tekton-schema';
import { argoCdApplication } from '../src/gitops/argocd-render';

const root = path.resolve(__dirname, '..');
const src = JSON.stringify(path.join(root, 'src'));

const exampleAfter = (heading: string) => readmeBlock(heading);

/** Writes `source(outdir)` to a file, runs it, and returns the documents it synthesized, validated. */
function runExample(name: string, source: (outdir: string) => string): any[] {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `readme-${name}-`));
  const outdir = path.join(dir, 'dist');
  // Outside the checkout, the example's own imports (cdk8s) resolve through this link to ours.
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'));
  const file = path.join(dir, `${name}.ts`);
  fs.writeFileSync(file, source(JSON.stringify(outdir)));
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    jest.isolateModules(() => require(file));
    const docs = fs.readdirSync(outdir).flatMap((f) => yaml.loadAll(fs.readFileSync(path.join(outdir, f), 'utf8')) as any[]);
    expectValidTektonManifests(docs);
    expectShellcheckClean(docs);
    return docs;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('the shortest working example synthesizes valid Tekton v1 manifests', () => {
  const example = exampleAfter('## The shortest working example');
  expect(example).toContain("from 'cdk8s-modelcar-tekton'");
  expect(example).toContain('new App()');
  const docs = runExample('example', (outdir) => example
    .replace("from 'cdk8s-modelcar-tekton'", `from ${src}`)
    .replace('new App()', `new App({ outdir: ${outdir} })`));
  expect(docs.map((d) => `${d.kind}/${d.metadata.name}`)).toEqual(['Task/greet', 'Pipeline/hello', 'PipelineRun/hello-run']);
  expect(docs.find((d) => d.kind === 'Pipeline').spec.tasks[0].params).toEqual([{ name: 'who', value: '$(params.name)' }]);
});

test('the modelcar pipeline example synthesizes valid manifests', () => {
  const body = exampleAfter('## The modelcar pipeline');
  const docs = runExample('modelcar', (outdir) => [
    "import { App, Chart, Duration, Size } from 'cdk8s';",
    `import { ModelcarPipeline, PushTarget, RegistryCredentials } from ${src};`,
    `const app = new App({ outdir: ${outdir} });`,
    "const chart = new Chart(app, 'demo');",
    body,
    'app.synth();',
  ].join('\n'));
  expect(docs.filter((d) => d.kind === 'PipelineRun').map((d) => d.spec.timeouts.pipeline)).toEqual(['2h40m0s']);
});

test('the streaming example synthesizes a pipeline with no volume: check, stream, a registry-to-registry push, report', () => {
  const body = exampleAfter('### Publishing without a volume (the streaming mode)');
  const docs = runExample('streaming', (outdir) => [
    "import { App, Chart } from 'cdk8s';",
    `import { ModelcarPipeline, PublishMode, PushTarget, RegistryCredentials } from ${src};`,
    `const app = new App({ outdir: ${outdir} });`,
    "const chart = new Chart(app, 'demo');",
    body,
    'app.synth();',
  ].join('\n'));
  expect(docs.find((d) => d.kind === 'Pipeline').spec.tasks.map((t: any) => t.name)).toEqual(['check-published', 'stream-internal', 'push-quay', 'report-published']);
  expect(docs.find((d) => d.kind === 'PipelineRun').spec.workspaces).toEqual([{ name: 'shared', emptyDir: {} }]);
  const stream = docs.find((d) => d.kind === 'Task' && d.metadata.name === 'modelcar-stream-publish').spec.steps.find((s: any) => s.name === 'stream');
  expect(stream.computeResources.limits.memory).toBe('448Mi');
});

test('the registration example synthesizes valid manifests: a register-model task after the report, the run\'s registered model name', () => {
  const body = exampleAfter('### Registering each version in the model registry');
  const docs = runExample('register', (outdir) => [
    "import { App, Chart } from 'cdk8s';",
    `import { ModelcarPipeline, ModelRegistry, PushTarget } from ${src};`,
    `const app = new App({ outdir: ${outdir} });`,
    "const chart = new Chart(app, 'demo');",
    body,
    'app.synth();',
  ].join('\n'));
  const pipeline = docs.find((d) => d.kind === 'Pipeline');
  expect(pipeline.spec.tasks.find((t: any) => t.name === 'register-model')).toMatchObject({ runAfter: ['report-published'] });
  const task = docs.find((d) => d.kind === 'Task' && d.metadata.name === 'modelcar-register-model');
  expect(task.spec.steps.find((s: any) => s.name === 'register').env).toContainEqual({
    name: 'REGISTRY_URL', value: 'https://private-ai-model-registry.rhoai-model-registries.svc:8443',
  });
  expect(docs.find((d) => d.kind === 'PipelineRun').spec.params).toContainEqual({ name: 'REGISTERED_MODEL_NAME', value: 'Mistral Small 24B quantized' });
});

test('the serving example synthesizes an InferenceService valid against KServe\'s CRD, by the serving tag of the run\'s commit, after the run', () => {
  const body = exampleAfter('### Serving from git by a reference that cannot drift');
  let reference = '';
  const docs = runExample('serving', (outdir) => [
    "import { App, Chart, Size } from 'cdk8s';",
    `import { ModelcarInferenceService, ModelcarPipeline, PushTarget } from ${src};`,
    `const app = new App({ outdir: ${outdir} });`,
    "const chart = new Chart(app, 'demo');",
    body,
    '(globalThis as any).readmeServingReference = quantized.servingReference();',
    'app.synth();',
  ].join('\n'));
  reference = (globalThis as any).readmeServingReference;
  delete (globalThis as any).readmeServingReference;
  expectValidKserveManifests(docs);
  const served = docs.find((d) => d.kind === 'InferenceService');
  expect(reference).toMatch(/^oci:\/\/image-registry\.openshift-image-registry\.svc:5000\/private-ai-demo\/mistral-small-24b:0123456789abcdef0123456789abcdef01234567-[0-9a-f]{16}$/);
  expect(served.spec.predictor.model).toMatchObject({ storageUri: reference, runtime: 'vllm-runtime', modelFormat: { name: 'vLLM' } });
  expect(served.metadata.annotations['argocd.argoproj.io/sync-wave']).toBe('3');
  expect(docs.find((d) => d.kind === 'PipelineRun').metadata.annotations['argocd.argoproj.io/sync-wave']).toBe('2');
});

test('the GitOps walk-through\'s cdk8s app writes every object with its Argo CD annotations; its Application is the one GitOpsLayout writes', () => {
  // GIVEN the app of the cdk8s.yaml project (the release tarball test runs it with cdk8s synth)
  expect(readmeBlock('### From an empty GitOps repository', 'yaml')).toBe('language: typescript\napp: npx ts-node main.ts\n');
  const example = exampleAfter('### From an empty GitOps repository');
  expect(example).toContain('app.synth();');
  expect(example).not.toContain('fsGroup');

  // WHEN
  const docs = runExample('gitops', (outdir) => example
    .replace("from 'cdk8s-modelcar-tekton'", `from ${src}`)
    .replace('new App()', `new App({ outdir: ${outdir} })`));

  // THEN the waves and options, and every run after its Pipeline and Tasks in Argo CD's order
  const annotations = (kind: string) => docs.filter((d) => d.kind === kind).map((d) => d.metadata.annotations);
  expect(annotations('Task')).toEqual(Array(7).fill({ 'argocd.argoproj.io/sync-wave': '1' }));
  expect(annotations('Pipeline')).toEqual([{ 'argocd.argoproj.io/sync-wave': '1' }]);
  expect(annotations('PipelineRun')).toEqual([{
    'argocd.argoproj.io/sync-wave': '2',
    'argocd.argoproj.io/sync-options': 'Prune=false',
    'argocd.argoproj.io/compare-options': 'IgnoreExtraneous',
    // Not Argo CD's: Tekton 1.11+ deletes the run's volume when it ends (the default VolumeCleanup).
    'tekton.dev/auto-cleanup-pvc': 'true',
  }]);
  expect(runsBeforeTheirDefinitions(argoCdSyncOrder(docs))).toEqual([]);
  expect(docs.find((d) => d.kind === 'PipelineRun').spec.taskRunTemplate.podTemplate.securityContext).toEqual({ fsGroupChangePolicy: 'OnRootMismatch' });
  // The README's Application, field for field, is what GitOpsLayout writes for the same repository.
  const application = yaml.load(readmeBlock('3. Configure Argo CD once', 'yaml'));
  expect(application).toEqual(argoCdApplication({ repoUrl: 'https://github.com/acme/gitops.git', path: 'dist', targetRevision: 'main' }, 'private-ai-demo'));
});

test('the next step, GitOpsLayout in place of app.synth(), writes the folders, the page and the Application', () => {
  const example = exampleAfter('### From an empty GitOps repository');
  const layout = exampleAfter('### The next step: a folder per kind');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'readme-gitops-'));
  const outdir = path.join(dir, 'dist');
  // Outside the checkout, the example's own imports (cdk8s) resolve through this link to ours.
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'));
  const file = path.join(dir, 'gitops.ts');
  fs.writeFileSync(file, example
    .replace('import { ModelcarPipeline,', 'import { GitOpsLayout, ModelcarPipeline,')
    .replace("from 'cdk8s-modelcar-tekton'", `from ${src}`)
    .replace('new App()', `new App({ outdir: ${JSON.stringify(outdir)} })`)
    .replace('app.synth();', layout));
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    jest.isolateModules(() => require(file));
    const written = fs.readdirSync(outdir, { recursive: true }) as string[];
    expect(written).toEqual(expect.arrayContaining(['kustomization.yaml', 'argocd-application.yaml', '02-pipeline/pipeline-modelcar.md']));
    const runs = fs.readdirSync(path.join(outdir, '03-runs')).filter((f) => f.startsWith('pipelinerun-'));
    expect(runs).toEqual([expect.stringMatching(/^pipelinerun-granite-2b-[0-9a-f]{10}\.yaml$/)]);
    const docs = ['01-tasks', '02-pipeline', '03-runs'].flatMap((d) => fs.readdirSync(path.join(outdir, d))
      .filter((f) => f !== 'kustomization.yaml' && f.endsWith('.yaml'))
      .flatMap((f) => yaml.loadAll(fs.readFileSync(path.join(outdir, d, f), 'utf8')) as any[]));
    expectValidTektonManifests(docs);
    expect(runsBeforeTheirDefinitions(argoCdSyncOrder(docs))).toEqual([]);
    const application = yaml.load(fs.readFileSync(path.join(outdir, 'argocd-application.yaml'), 'utf8')) as any;
    expect(application).toEqual(yaml.load(readmeBlock('3. Configure Argo CD once', 'yaml')));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the ordering check finds a run that Argo CD would create before its Tasks', () => {
  // Without waves, Argo CD orders Tekton objects by name: granite-2b-... before modelcar-...
  const docs = runExample('gitops-unordered', (outdir) => exampleAfter('### From an empty GitOps repository')
    .replace('import { ModelcarPipeline,', 'import { ArgoCdSync, ModelcarPipeline,')
    .replace("from 'cdk8s-modelcar-tekton'", `from ${src}`)
    .replace('new App()', `new App({ outdir: ${outdir} })`)
    .replace("new ModelcarPipeline(chart, 'modelcar', {", "new ModelcarPipeline(chart, 'modelcar', { argoCdSync: ArgoCdSync.none(),"));
  // No Argo CD annotation left (the run keeps only Tekton's clean-up annotation).
  expect(docs.flatMap((d) => Object.keys(d.metadata.annotations ?? {}))).toEqual(['tekton.dev/auto-cleanup-pvc']);
  expect(runsBeforeTheirDefinitions(argoCdSyncOrder(docs))).toEqual(expect.arrayContaining([
    expect.stringMatching(/^granite-2b-[0-9a-f]{10} -> Pipeline\/modelcar$/), expect.stringMatching(/^granite-2b-[0-9a-f]{10} -> Task\/modelcar-push-quay$/),
  ]));
});
