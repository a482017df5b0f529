/**
 * ArgoCdSync: the Argo CD annotations are the objects' own, so `cdk8s synth` writes them as
 * `GitOpsLayout.write()` does; the modelcar constructs apply them by default, with an opt-out.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App, Chart, Testing } from 'cdk8s';
import * as yaml from 'js-yaml';
import { ArgoCdSync, GitOpsLayout, ModelcarPipeline, ModelcarPipelineRun, ModelcarPipelineProps, Pipeline, PipelineRun, PushTarget, Task, VolumeCleanup } from '../../src';
import { synth } from '../support/synth';

const IMAGE = 'registry.access.redhat.com/ubi9/ubi-minimal@sha256:0000000000000000000000000000000000000000000000000000000000000000';
const WAVE = 'argocd.argoproj.io/sync-wave';
const KEPT_RUN = { [WAVE]: '2', 'argocd.argoproj.io/sync-options': 'Prune=false', 'argocd.argoproj.io/compare-options': 'IgnoreExtraneous' };

/**
 * A modelcar pipeline and run whose only annotations are Argo CD's: without the clean-up, whose
 * annotation for Tekton (modelcar-pipeline.test.ts) is not this file's subject.
 */
function modelcar(chart: Chart, props: Partial<ModelcarPipelineProps> = {}): ModelcarPipeline {
  const m = new ModelcarPipeline(chart, 'm', { pushTargets: [PushTarget.openshiftInternal({ namespace: 'ai' })], volumeCleanup: VolumeCleanup.never(), ...props });
  m.addRun('granite', { model: { repo: 'ibm-granite/granite-3.1-2b-instruct' }, tags: ['v1'] });
  return m;
}

/** kind/name -> annotations, for every object. */
function annotations(docs: any[]): Record<string, any> {
  return Object.fromEntries(docs.map((d) => [`${d.kind}/${d.metadata.name}`, d.metadata.annotations]));
}

function plainTekton(chart: Chart): void {
  const task = new Task(chart, 'greet', { name: 'greet' });
  task.addStep({ name: 'hello', image: IMAGE, script: 'echo hello' });
  const pipeline = new Pipeline(chart, 'pipeline', { name: 'hello' });
  pipeline.addTask('greet', { task });
  new PipelineRun(chart, 'run', { pipeline, name: 'hello-run' });
}

describe('ArgoCdSync', () => {
  test('a modelcar pipeline synthesized as cdk8s synth does: Tasks and Pipeline in wave 1, runs in wave 2 and kept', () => {
    // GIVEN
    const chart = Testing.chart();

    // WHEN
    modelcar(chart);

    // THEN
    const docs = synth(chart);
    expect(docs.map((d) => d.kind).sort()).toEqual(['Pipeline', 'PipelineRun', ...Array(5).fill('Task')]);
    for (const d of docs) {
      expect(d.metadata.annotations).toEqual(d.kind === 'PipelineRun' ? KEPT_RUN : { [WAVE]: '1' });
    }
  });

  test('none() writes no Argo CD annotation; pruneFinishedRuns leaves runs only their wave', () => {
    const none = Testing.chart();
    modelcar(none, { argoCdSync: ArgoCdSync.none() });
    expect(synth(none).filter((d) => d.metadata.annotations !== undefined)).toEqual([]);

    const prune = Testing.chart();
    modelcar(prune, { argoCdSync: ArgoCdSync.annotations({ pruneFinishedRuns: true }) });
    expect(synth(prune).find((d) => d.kind === 'PipelineRun').metadata.annotations).toEqual({ [WAVE]: '2' });
  });

  test('a run made in another scope takes its pipeline\'s choice', () => {
    const runIn = (sync: ArgoCdSync) => {
      const m = new ModelcarPipeline(Testing.chart(), 'm', { pushTargets: [PushTarget.openshiftInternal({ namespace: 'ai' })], argoCdSync: sync, volumeCleanup: VolumeCleanup.never() });
      const elsewhere = new Chart(Testing.app(), 'elsewhere');
      new ModelcarPipelineRun(elsewhere, 'run', { pipeline: m, model: { repo: 'org/model' }, tags: ['v1'] });
      return Testing.synth(elsewhere)[0].metadata.annotations;
    };
    expect(runIn(ArgoCdSync.annotations())).toEqual(KEPT_RUN);
    expect(runIn(ArgoCdSync.none())).toBeUndefined();
  });

  test('the annotations do not rename a run, even when the pipeline spec joins its name', () => {
    const names = (sync: ArgoCdSync) => {
      const chart = Testing.chart();
      modelcar(chart, { argoCdSync: sync, rebuildOnPipelineChange: true });
      return synth(chart).filter((d) => d.kind === 'PipelineRun').map((d) => d.metadata.name);
    };
    expect(names(ArgoCdSync.annotations())).toEqual(names(ArgoCdSync.none()));
    expect(names(ArgoCdSync.none())).toEqual([expect.stringMatching(/^granite-[0-9a-f]{10}$/)]);
  });

  test('plain Tekton objects carry none until applyTo(); it keeps their own annotations and the first choice made', () => {
    // GIVEN plain Tekton objects, one with an annotation of its own
    const chart = Testing.chart();
    plainTekton(chart);
    expect(synth(chart).filter((d) => d.metadata.annotations !== undefined)).toEqual([]);
    (chart.node.findChild('run').node.findChild('Resource') as any).metadata.addAnnotation('team', 'ml');

    // WHEN
    ArgoCdSync.annotations().applyTo(chart);
    ArgoCdSync.none().applyTo(chart);

    // THEN
    expect(annotations(synth(chart))).toEqual({
      'Task/greet': { [WAVE]: '1' },
      'Pipeline/hello': { [WAVE]: '1' },
      'PipelineRun/hello-run': { ...KEPT_RUN, team: 'ml' },
    });
  });

  test('GitOpsLayout.write() gives its default to objects without a choice and keeps a modelcar pipeline\'s none()', () => {
    // GIVEN
    const app = new App();
    const chart = new Chart(app, 'demo', { namespace: 'demo', disableResourceNameHashes: true });
    plainTekton(chart);
    modelcar(chart, { argoCdSync: ArgoCdSync.none(), name: 'models' });
    const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'argocd-sync-'));

    try {
      // WHEN
      const files = GitOpsLayout.write(app, { outdir });

      // THEN
      const docs = files.filter((f) => /\/(task|pipeline|pipelinerun)-.*\.yaml$/.test(f)).map((f) => yaml.load(fs.readFileSync(path.join(outdir, f), 'utf8')) as any);
      const byName = annotations(docs);
      expect(byName['Task/greet']).toEqual({ [WAVE]: '1' });
      expect(byName['Pipeline/hello']).toEqual({ [WAVE]: '1' });
      expect(byName['PipelineRun/hello-run']).toEqual(KEPT_RUN);
      const modelcarObjects = Object.entries(byName).filter(([k]) => /^(Task|Pipeline)\/models/.test(k) || /^PipelineRun\/granite-/.test(k));
      expect(modelcarObjects).toHaveLength(7);
      for (const [, a] of modelcarObjects) expect(a).toBeUndefined();
    } finally {
      fs.rmSync(outdir, { recursive: true, force: true });
    }
  });
});
