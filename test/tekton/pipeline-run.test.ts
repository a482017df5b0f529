import { Duration, Size, Testing } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import { ParamType, ParamValue, Pipeline, PipelineRun, Task, TolerationOperator, WorkspaceBinding, WorkspaceBindingKind } from '../../src';
import { doc, synth, validationErrors } from '../support/synth';

const IMAGE = 'registry.access.redhat.com/ubi9/ubi-minimal@sha256:0000000000000000000000000000000000000000000000000000000000000000';

function setup() {
  const chart = Testing.chart();
  const task = new Task(chart, 'task', { name: 'work' });
  const input = task.addParam('input');
  task.addWorkspace('source');
  task.addStep({ name: 's', image: IMAGE, env: { INPUT: input.envValue() }, script: 'echo "$INPUT"' });
  const pipeline = new Pipeline(chart, 'pipeline', { name: 'demo' });
  const message = pipeline.addParam('message');
  pipeline.addParam('tags', { type: ParamType.ARRAY, default: ParamValue.array(['latest']) });
  const shared = pipeline.addWorkspace('shared');
  pipeline.addWorkspace('cache', { optional: true });
  const work = pipeline.addTask('work', { task, params: { input: message.toParamValue() }, workspaces: { source: shared } });
  return { chart, pipeline, work };
}

describe('PipelineRun', () => {
  test('renders params, workspace bindings, taskRunTemplate, taskRunSpecs and timeouts', () => {
    // GIVEN
    const { chart, pipeline, work } = setup();

    // WHEN
    new PipelineRun(chart, 'run', {
      pipeline,
      name: 'demo-run',
      params: { message: ParamValue.string('hello'), tags: ParamValue.array(['v1', 'latest']) },
      workspaces: {
        shared: WorkspaceBinding.volumeClaimTemplate({ storage: Size.gibibytes(150), storageClassName: 'gp3-csi' }),
        cache: WorkspaceBinding.persistentVolumeClaim('model-cache', { subPath: 'hf' }),
      },
      taskRunTemplate: {
        serviceAccountName: 'pipeline',
        podTemplate: {
          securityContext: { fsGroup: 1000970000, fsGroupChangePolicy: kplus.FsGroupChangePolicy.ON_ROOT_MISMATCH, supplementalGroups: [1000970001] },
          nodeSelector: { 'node-role.kubernetes.io/worker': '' },
          tolerations: [{ key: 'nvidia.com/gpu', operator: TolerationOperator.EXISTS, effect: kplus.TaintEffect.NO_SCHEDULE }],
        },
      },
      taskRunSpecs: [{ pipelineTask: work, computeResources: { memory: { limit: Size.gibibytes(4) } } }],
      timeouts: { pipeline: Duration.hours(2.5), tasks: Duration.hours(2), finally: Duration.minutes(30) },
    });

    // THEN
    const docs = synth(chart);
    expect(docs).toMatchSnapshot();
    const spec = doc(docs, 'PipelineRun', 'demo-run').spec;
    expect(spec.pipelineRef).toEqual({ name: 'demo' });
    expect(spec.timeouts).toEqual({ pipeline: '2h30m0s', tasks: '2h0m0s', finally: '30m0s' });
    expect(spec.workspaces[0]).toEqual({
      name: 'shared',
      volumeClaimTemplate: { spec: { accessModes: ['ReadWriteOnce'], storageClassName: 'gp3-csi', resources: { requests: { storage: '150Gi' } } } },
    });
    expect(spec.taskRunTemplate.podTemplate.securityContext).toEqual({
      fsGroup: 1000970000, fsGroupChangePolicy: 'OnRootMismatch', supplementalGroups: [1000970001],
    });
    expect(spec.taskRunSpecs).toEqual([{ pipelineTaskName: 'work', computeResources: { limits: { memory: '4Gi' } } }]);
  });

  test('generateName leaves metadata.name out', () => {
    const { chart, pipeline } = setup();
    new PipelineRun(chart, 'run', {
      pipeline, generateName: 'demo-', params: { message: ParamValue.string('x') }, workspaces: { shared: WorkspaceBinding.emptyDir() },
    });
    const run = doc(synth(chart), 'PipelineRun');
    expect(run.metadata).toEqual({ generateName: 'demo-' });
  });

  test('each binding says its kind, the field it writes', () => {
    const kinds = [WorkspaceBinding.volumeClaimTemplate({ storage: Size.gibibytes(1) }), WorkspaceBinding.persistentVolumeClaim('c'),
      WorkspaceBinding.emptyDir(), WorkspaceBinding.secret('s'), WorkspaceBinding.configMap('m')];
    expect(kinds.map((b) => b.kind)).toEqual([WorkspaceBindingKind.VOLUME_CLAIM_TEMPLATE, WorkspaceBindingKind.PERSISTENT_VOLUME_CLAIM,
      WorkspaceBindingKind.EMPTY_DIR, WorkspaceBindingKind.SECRET, WorkspaceBindingKind.CONFIG_MAP]);
    for (const b of kinds) expect(Object.keys(b._toSpec('w'))).toContain(b.kind);
  });

  describe('fails when', () => {
    const ws = { shared: WorkspaceBinding.emptyDir() };

    test('fails when both name and generateName are given', () => {
      const { chart, pipeline } = setup();
      expect(() => new PipelineRun(chart, 'r', { pipeline, name: 'a', generateName: 'a-' })).toThrow(/has both name "a" and generateName "a-": give one/);
    });
    test('fails when a param is unknown, missing, or of the wrong type', () => {
      const { chart, pipeline } = setup();
      new PipelineRun(chart, 'r', { pipeline, params: { tags: ParamValue.string('v1'), nope: ParamValue.string('x') }, workspaces: ws });
      expect(validationErrors(chart)).toEqual([
        'pipelinerun test/r gives param "tags" a value of type string, but it is of type array',
        'pipelinerun test/r gives param "nope" that pipeline test/pipeline does not declare (it declares ["message","tags"])',
        'pipelinerun test/r does not give required param "message" of pipeline test/pipeline: add it to params',
      ]);
    });
    test('fails when a required workspace is unbound or an unknown one is bound', () => {
      const { chart, pipeline } = setup();
      new PipelineRun(chart, 'r', { pipeline, params: { message: ParamValue.string('x') }, workspaces: { other: WorkspaceBinding.emptyDir() } });
      expect(validationErrors(chart)).toEqual([
        'pipelinerun test/r binds workspace "other" that pipeline test/pipeline does not declare (it declares ["shared","cache"])',
        'pipelinerun test/r does not bind required workspace "shared" of pipeline test/pipeline: add it to workspaces',
      ]);
    });
    test('fails when tasks + finally timeouts exceed the pipeline timeout', () => {
      const { chart, pipeline } = setup();
      expect(() => new PipelineRun(chart, 'r', { pipeline, timeouts: { pipeline: Duration.hours(1), tasks: Duration.minutes(50), finally: Duration.minutes(20) } }))
        .toThrow(/timeouts.tasks \+ timeouts.finally \(4200s\) exceed timeouts.pipeline \(3600s\)/);
      expect(() => new PipelineRun(chart, 'r2', { pipeline, timeouts: { pipeline: Duration.hours(1), tasks: Duration.hours(2) } }))
        .toThrow(/timeouts.tasks \(2h0m0s\) exceeds timeouts.pipeline \(1h0m0s\)/);
    });
    test('fails when fsGroup is out of range', () => {
      const { chart, pipeline } = setup();
      expect(() => new PipelineRun(chart, 'r', { pipeline, taskRunTemplate: { podTemplate: { securityContext: { fsGroup: 2 ** 31 } } } }))
        .toThrow(/securityContext.fsGroup 2147483648 is out of range/);
    });
    test('keeps fsGroupChangePolicy without fsGroup (an SCC fills fsGroup in at pod creation)', () => {
      const { chart, pipeline } = setup();
      const run = new PipelineRun(chart, 'r', {
        pipeline, taskRunTemplate: { podTemplate: { securityContext: { fsGroupChangePolicy: kplus.FsGroupChangePolicy.ON_ROOT_MISMATCH } } },
      });
      expect(run.apiObject.toJson().spec.taskRunTemplate.podTemplate.securityContext).toEqual({ fsGroupChangePolicy: 'OnRootMismatch' });
    });
    test('fails when a taskRunSpec names a task of another pipeline or one task twice', () => {
      const { chart, pipeline, work } = setup();
      const other = setup();
      expect(() => new PipelineRun(chart, 'r', { pipeline, taskRunSpecs: [{ pipelineTask: other.work }] })).toThrow(/taskRunSpecs names task "work" of another pipeline/);
      expect(() => new PipelineRun(chart, 'r2', { pipeline, taskRunSpecs: [{ pipelineTask: work }, { pipelineTask: work }] })).toThrow(/has task "work" twice/);
    });
    test('fails when a volume size is not positive', () => {
      expect(() => WorkspaceBinding.volumeClaimTemplate({ storage: Size.mebibytes(0) })).toThrow(/storage 0Mi must be positive/);
    });
    test('fails when the name is too long', () => {
      const { chart, pipeline } = setup();
      expect(() => new PipelineRun(chart, 'r', { pipeline, name: 'x'.repeat(70) })).toThrow(/is 70 characters long/);
    });
    test('fails when a toleration operator is invalid', () => {
      const { chart, pipeline } = setup();
      expect(() => new PipelineRun(chart, 'r', { pipeline, taskRunTemplate: { podTemplate: { tolerations: [{ key: 'a', operator: 'Maybe' as TolerationOperator }] } } }))
        .toThrow('pipelinerun test/r: taskRunTemplate.podTemplate: toleration operator "Maybe" is invalid: use TolerationOperator.EQUAL or TolerationOperator.EXISTS');
      expect(() => new PipelineRun(chart, 's', { pipeline, taskRunTemplate: { podTemplate: { tolerations: [{ key: 'a', effect: 'NoSchedul' as kplus.TaintEffect }] } } }))
        .toThrow(/toleration effect "NoSchedul" is invalid: use TaintEffect.NO_SCHEDULE, PREFER_NO_SCHEDULE or NO_EXECUTE/);
    });
  });
});
