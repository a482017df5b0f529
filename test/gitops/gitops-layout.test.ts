/**
 * GitOpsLayout: the folders, the kustomizations (rendered by a real kustomize: `kubectl kustomize`), the Argo CD
 * annotations and Application, and the page beside each Pipeline.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App, Chart } from 'cdk8s';
import * as yaml from 'js-yaml';
import {
  ArgoCdApplicationOptions, ArgoCdSync, GitOpsLayout, GitOpsLayoutOptions, ModelcarInferenceService, ModelcarPipeline, ParamValue, Pipeline,
  PipelineGraph, PipelineRun, PushTarget, Task,
} from '../../src';
import { requireTools } from '../e2e/support/tools';

const IMAGE = 'registry.access.redhat.com/ubi9/ubi-minimal@sha256:0000000000000000000000000000000000000000000000000000000000000000';

function buildApp(): { app: App; pipeline: Pipeline } {
  const app = new App();
  const chart = new Chart(app, 'demo', { namespace: 'demo', disableResourceNameHashes: true });
  const task = new Task(chart, 'greet', { name: 'greet' });
  const who = task.addParam('who');
  task.addStep({ name: 'hello', image: IMAGE, env: { WHO: who.envValue() }, script: 'echo "hello, $WHO"' });
  const pipeline = new Pipeline(chart, 'pipeline', { name: 'hello', description: 'Says hello.' });
  const name = pipeline.addParam('name');
  pipeline.addTask('greet', { task, params: { who: name.toParamValue() } });
  for (const who2 of ['tekton', 'argo']) {
    new PipelineRun(chart, who2, { pipeline, nameFromInputs: { prefix: `hello-${who2}` }, params: { name: ParamValue.string(who2) } });
  }
  return { app, pipeline };
}

const dirs: string[] = [];
function write(options: Omit<GitOpsLayoutOptions, 'outdir'> = {}, app: App = buildApp().app): { outdir: string; files: string[]; read: (f: string) => string } {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'gitops-layout-'));
  dirs.push(outdir);
  const files = GitOpsLayout.write(app, { outdir, namespace: 'demo', ...options });
  return { outdir, files, read: (f) => fs.readFileSync(path.join(outdir, f), 'utf8') };
}
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

const APPLICATION: ArgoCdApplicationOptions = { repoUrl: 'https://git.example.com/acme/gitops.git', path: 'modelcars/dist/' };

describe('GitOpsLayout', () => {
  test('writes the folders, a kustomization over them, the Application and the pipeline page, which match the snapshot', () => {
    // WHEN
    const { files, read } = write({ argoCdApplication: APPLICATION });

    // THEN
    expect(files).toEqual([
      '01-tasks/kustomization.yaml',
      '01-tasks/task-greet.yaml',
      '02-pipeline/kustomization.yaml',
      '02-pipeline/pipeline-hello.md',
      '02-pipeline/pipeline-hello.yaml',
      '03-runs/kustomization.yaml',
      expect.stringMatching(/^03-runs\/pipelinerun-hello-argo-[0-9a-f]{10}\.yaml$/),
      expect.stringMatching(/^03-runs\/pipelinerun-hello-tekton-[0-9a-f]{10}\.yaml$/),
      'argocd-application.yaml',
      'kustomization.yaml',
    ]);
    expect(Object.fromEntries(files.map((f) => [f, read(f)]))).toMatchSnapshot();
    expect(yaml.load(read('kustomization.yaml'))).toEqual({
      apiVersion: 'kustomize.config.k8s.io/v1beta1', kind: 'Kustomization', resources: ['01-tasks', '02-pipeline', '03-runs'],
    });
  });

  test('Tasks and Pipelines sync in wave 1, runs in wave 2; runs are kept when they leave git, and stay out of the sync status', () => {
    const { files, read } = write();
    const docs = files.filter((f) => /\/(task|pipeline|pipelinerun)-.*\.yaml$/.test(f)).map((f) => yaml.load(read(f)) as any);
    const annotations = (kind: string) => docs.filter((d) => d.kind === kind).map((d) => d.metadata.annotations);
    expect(annotations('Task')).toEqual([{ 'argocd.argoproj.io/sync-wave': '1' }]);
    expect(annotations('Pipeline')).toEqual([{ 'argocd.argoproj.io/sync-wave': '1' }]);
    expect(annotations('PipelineRun')).toEqual([1, 2].map(() => ({
      'argocd.argoproj.io/sync-wave': '2',
      'argocd.argoproj.io/sync-options': 'Prune=false',
      'argocd.argoproj.io/compare-options': 'IgnoreExtraneous',
    })));
  });

  test('InferenceServices go to 04-serving/, synced in wave 3 after the runs (Argo CD waits for a run to succeed), pruned when they leave git', () => {
    // GIVEN a modelcar run pinned to a commit and the InferenceService that serves its image
    const app = new App();
    const chart = new Chart(app, 'demo', { namespace: 'demo', disableResourceNameHashes: true });
    const modelcar = new ModelcarPipeline(chart, 'modelcar', { pushTargets: [PushTarget.openshiftInternal({ namespace: 'demo', repository: 'm' })] });
    const run = modelcar.addRun('pinned', { model: { repo: 'org/m', revision: '0123456789abcdef0123456789abcdef01234567' }, tags: ['v1'] });
    new ModelcarInferenceService(chart, 'served', { run, runtime: 'vllm-runtime' });

    // WHEN
    const { files, read } = write({}, app);

    // THEN
    expect(files.filter((f) => f.startsWith('04-serving/'))).toEqual(['04-serving/inferenceservice-served.yaml', '04-serving/kustomization.yaml']);
    expect(yaml.load(read('04-serving/kustomization.yaml'))).toEqual({
      apiVersion: 'kustomize.config.k8s.io/v1beta1', kind: 'Kustomization', namespace: 'demo', resources: ['inferenceservice-served.yaml'],
    });
    expect((yaml.load(read('kustomization.yaml')) as any).resources).toEqual(['01-tasks', '02-pipeline', '03-runs', '04-serving']);
    const served = yaml.load(read('04-serving/inferenceservice-served.yaml')) as any;
    expect(served.metadata.annotations).toEqual({ 'argocd.argoproj.io/sync-wave': '3' });
    expect(served.spec.predictor.model.storageUri).toBe(run.servingReference());
    const runFile = files.find((f) => f.startsWith('03-runs/pipelinerun-'))!;
    expect((yaml.load(read(runFile)) as any).metadata.annotations['argocd.argoproj.io/sync-wave']).toBe('2');
  });

  test('argoCdSync with pruneFinishedRuns lets Argo CD prune runs that left git; none() writes no annotation', () => {
    const { files, read } = write({ argoCdSync: ArgoCdSync.annotations({ pruneFinishedRuns: true }) });
    const runs = files.filter((x) => x.startsWith('03-runs/pipelinerun-'));
    expect(runs).toHaveLength(2);
    for (const f of runs) expect((yaml.load(read(f)) as any).metadata.annotations).toEqual({ 'argocd.argoproj.io/sync-wave': '2' });
    const none = write({ argoCdSync: ArgoCdSync.none() });
    const objects = none.files.filter((f) => /\/(task|pipeline|pipelinerun)-.*\.yaml$/.test(f));
    expect(objects).toHaveLength(4);
    for (const f of objects) expect((yaml.load(none.read(f)) as any).metadata.annotations).toBeUndefined();
  });

  test('fails when given pruneFinishedRuns, which moved to the objects\' ArgoCdSync', () => {
    expect(() => write({ pruneFinishedRuns: true }))
      .toThrow('gitops layout: pruneFinishedRuns moved to the objects: pass argoCdSync: ArgoCdSync.annotations({ pruneFinishedRuns: true }) to ModelcarPipeline');
  });

  test('kubectl kustomize renders every object of the folder, from the top-level kustomization', () => {
    // GIVEN a real kustomize (the one in kubectl; a missing kubectl fails the test)
    requireTools(['kubectl']);
    const version = execFileSync('kubectl', ['version', '--client'], { encoding: 'utf8' });
    const major = Number(/Kustomize Version: v(\d+)/.exec(version)?.[1] ?? 0);
    if (major < 4) throw new Error(`kubectl's kustomize is too old to take folders in resources (need v4+): ${version}`);
    const { outdir, files, read } = write({ argoCdApplication: APPLICATION });

    // WHEN
    const rendered = yaml.loadAll(execFileSync('kubectl', ['kustomize', outdir], { encoding: 'utf8' })) as any[];

    // THEN every object file, and nothing else (not the Application, not the page), byte for byte as data
    const objects = files.filter((f) => /^0\d-[a-z]+\/(?!kustomization)[^/]+\.yaml$/.test(f)).map((f) => yaml.load(read(f)) as any);
    const key = (d: any) => `${d.kind}/${d.metadata.namespace}/${d.metadata.name}`;
    expect(rendered.map(key).sort()).toEqual(objects.map(key).sort());
    expect(rendered.map(key)).toHaveLength(4);
    for (const d of rendered) expect(d).toEqual(objects.find((o) => key(o) === key(d)));
  });

  test('the page beside each Pipeline shows its generated graph and its runs', () => {
    const { app, pipeline } = buildApp();
    const { read } = write({}, app);
    const page = read('02-pipeline/pipeline-hello.md');
    expect(page).toContain('# Pipeline `hello`\n\nSays hello.\n');
    expect(page).toContain('```mermaid\n' + PipelineGraph.mermaid(pipeline) + '```');
    expect(page).toContain('| run name | name |');
    expect(page).toMatch(/\| `hello-argo-[0-9a-f]{10}` \| argo \|\n\| `hello-tekton-[0-9a-f]{10}` \| tekton \|/);
  });

  test('the Application delivers the folder: repo, path, revision, namespace; tolerates Tekton\'s own changes to runs', () => {
    const { read } = write({ argoCdApplication: { ...APPLICATION, targetRevision: 'main', namespace: 'models', name: 'llm-images', selfHeal: false } });
    const application = yaml.load(read('argocd-application.yaml')) as any;
    expect(application).toEqual({
      apiVersion: 'argoproj.io/v1alpha1',
      kind: 'Application',
      metadata: { name: 'llm-images', namespace: 'openshift-gitops' },
      spec: {
        project: 'default',
        source: { repoURL: 'https://git.example.com/acme/gitops.git', path: 'modelcars/dist', targetRevision: 'main' },
        destination: { server: 'https://kubernetes.default.svc', namespace: 'models' },
        ignoreDifferences: [{ group: 'tekton.dev', kind: 'PipelineRun', jsonPointers: ['/spec'] }],
        syncPolicy: { automated: { prune: true, selfHeal: false }, syncOptions: ['RespectIgnoreDifferences=true'] },
      },
    });
    const manual = yaml.load(write({ argoCdApplication: { ...APPLICATION, automatedSync: false } }).read('argocd-application.yaml')) as any;
    expect(manual.spec.syncPolicy).toEqual({ syncOptions: ['RespectIgnoreDifferences=true'] });
    expect(manual.spec.destination.namespace).toBe('demo');
  });

  test('fails when the Application has no git URL, a path outside the repository, or no namespace', () => {
    expect(() => write({ argoCdApplication: { ...APPLICATION, repoUrl: 'gitops' } }))
      .toThrow('gitops layout: argoCdApplication.repoUrl "gitops" is not a git URL Argo CD can clone');
    expect(() => write({ argoCdApplication: { ...APPLICATION, path: '../dist' } }))
      .toThrow('gitops layout: argoCdApplication.path "../dist" must be a folder relative to the repository root');
    const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'gitops-layout-'));
    dirs.push(outdir);
    expect(() => GitOpsLayout.write(buildApp().app, { outdir, argoCdApplication: APPLICATION }))
      .toThrow('gitops layout: argoCdApplication has no namespace: pass namespace to argoCdApplication or to GitOpsLayout.write()');
  });

  test('the same app gives byte-identical files', () => {
    const a = write({ argoCdApplication: APPLICATION });
    const b = write({ argoCdApplication: APPLICATION });
    expect(b.files).toEqual(a.files);
    for (const f of a.files) expect(b.read(f)).toBe(a.read(f));
  });
});
