import { Duration, Testing } from 'cdk8s';
import { Construct } from 'constructs';
import { Pipeline, ParamType, ParamValue, Task, WhenExpression, WhenOperator } from '../../src';
import { doc, synth, validationErrors } from '../support/synth';

const IMAGE = 'registry.access.redhat.com/ubi9/ubi-minimal@sha256:0000000000000000000000000000000000000000000000000000000000000000';

function buildTask(scope: Construct, name: string, opts: { embedded?: boolean } = {}) {
  const task = new Task(scope, name, { name, embedded: opts.embedded });
  const input = task.addParam('input');
  const out = task.addResult('out');
  const ws = task.addWorkspace('source');
  task.addStep({
    name: 'run',
    image: IMAGE,
    env: { INPUT: input.envValue(), OUT: out.pathEnvValue(), SRC: ws.pathEnvValue() },
    script: 'printf "%s" "$INPUT" > "$OUT"\nls "$SRC"\n',
  });
  return task;
}

describe('Pipeline', () => {
  test('renders tasks, finally, params, workspaces, when, retries, timeouts and results', () => {
    // GIVEN
    const chart = Testing.chart();
    const task = buildTask(chart, 'work');
    const inline = buildTask(chart, 'inline', { embedded: true });
    const pipeline = new Pipeline(chart, 'pipeline', { name: 'demo', description: 'a demo' });
    const message = pipeline.addParam('message', { default: ParamValue.string('hi') });
    const mode = pipeline.addParam('mode', { enum: ['fast', 'slow'], default: ParamValue.string('fast') });
    const shared = pipeline.addWorkspace('shared');

    // WHEN
    const first = pipeline.addTask('first', {
      task, params: { input: message.toParamValue() }, workspaces: { source: shared }, retries: 2, timeout: Duration.minutes(30),
    });
    const second = pipeline.addTask('second', {
      task: inline,
      params: { input: ParamValue.string(first.result('out')) },
      workspaces: { source: shared },
      when: [WhenExpression.isIn(mode.reference, ['fast'])],
    });
    const third = pipeline.addTask('third', { task, params: { input: ParamValue.string('x') }, workspaces: { source: shared }, runAfter: [second] });
    pipeline.addFinally('report', { task, params: { input: ParamValue.string(third.status) }, workspaces: { source: shared } });
    pipeline.addResult('first-out', { value: first.result('out'), description: 'what first said' });

    // THEN
    const docs = synth(chart);
    expect(docs).toMatchSnapshot();
    const spec = doc(docs, 'Pipeline', 'demo').spec;
    expect(spec.tasks[0]).toEqual({
      name: 'first',
      taskRef: { kind: 'Task', name: 'work' },
      params: [{ name: 'input', value: '$(params.message)' }],
      workspaces: [{ name: 'source', workspace: 'shared' }],
      retries: 2,
      timeout: '30m0s',
    });
    expect(spec.tasks[1].taskRef).toBeUndefined();
    expect(spec.tasks[1].taskSpec.steps[0].name).toBe('run');
    expect(spec.tasks[1].params).toEqual([{ name: 'input', value: '$(tasks.first.results.out)' }]);
    expect(spec.tasks[1].when).toEqual([{ input: '$(params.mode)', operator: 'in', values: ['fast'] }]);
    expect([WhenExpression.isIn('$(params.mode)', ['a']).operator, WhenExpression.isNotIn('$(params.mode)', ['a']).operator]).toEqual([WhenOperator.IN, WhenOperator.NOT_IN]);
    expect(WhenExpression.isNotIn('$(params.mode)', ['a'])._toSpec().operator).toBe('notin');
    expect(spec.tasks[2].runAfter).toEqual(['second']);
    expect(spec.finally[0].params).toEqual([{ name: 'input', value: '$(tasks.third.status)' }]);
    expect(spec.results).toEqual([{ name: 'first-out', description: 'what first said', value: '$(tasks.first.results.out)' }]);
    // the embedded task is not emitted on its own
    expect(docs.filter((d) => d.kind === 'Task').map((d) => d.metadata.name)).toEqual(['work']);
  });

  describe('fails when', () => {
    function setup() {
      const chart = Testing.chart();
      const task = buildTask(chart, 'work');
      const pipeline = new Pipeline(chart, 'p');
      const ws = pipeline.addWorkspace('shared');
      const ok = { task, params: { input: ParamValue.string('x') }, workspaces: { source: ws } };
      return { chart, task, pipeline, ws, ok };
    }

    test('fails when a task name is invalid or used twice', () => {
      const { pipeline, ok } = setup();
      expect(() => pipeline.addTask('Build', ok)).toThrow(/task name "Build" is not a DNS-1123 label/);
      pipeline.addTask('a', ok);
      expect(() => pipeline.addFinally('a', ok)).toThrow(/pipeline test\/p already has a task named "a"/);
    });
    test('fails when a task passes an unknown param, omits a required one, or passes the wrong type', () => {
      const { chart, pipeline, task, ws } = setup();
      pipeline.addTask('a', { task, params: { nope: ParamValue.string('x') }, workspaces: { source: ws } });
      pipeline.addTask('b', { task, params: { input: ParamValue.array(['x']) }, workspaces: { source: ws } });
      expect(validationErrors(chart)).toEqual([
        'pipeline test/p: task "a" passes param "nope" that task test/work does not declare (it declares ["input"])',
        'pipeline test/p: task "a" does not pass required param "input" of task test/work: add it to params',
        'pipeline test/p: task "b" passes a value of type array to param "input" of type string',
      ]);
    });
    test('fails when a value is not one of the enum values', () => {
      const { chart, pipeline, ws } = setup();
      const t = new Task(chart, 'e');
      t.addParam('mode', { enum: ['a', 'b'] });
      t.addWorkspace('source');
      t.addStep({ name: 's', image: IMAGE, script: 'true' });
      pipeline.addTask('a', { task: t, params: { mode: ParamValue.string('c') }, workspaces: { source: ws } });
      expect(validationErrors(chart)).toEqual(['pipeline test/p: task "a" passes "c" to param "mode", which allows only ["a","b"]']);
    });
    test('fails when a workspace is not bound, unknown, or not the pipeline\'s', () => {
      const { chart, pipeline, task } = setup();
      const other = new Pipeline(chart, 'other').addWorkspace('elsewhere');
      pipeline.addTask('a', { task, params: { input: ParamValue.string('x') } });
      pipeline.addTask('b', { task, params: { input: ParamValue.string('x') }, workspaces: { source: other, extra: other } });
      expect(validationErrors(chart)).toEqual(expect.arrayContaining([
        'pipeline test/p: task "a" does not bind workspace "source" of task test/work: add it to workspaces',
        'pipeline test/p: task "b" binds workspace "source" to "elsewhere", which is not a workspace of this pipeline: use pipeline.addWorkspace()',
        'pipeline test/p: task "b" binds workspace "extra" that task test/work does not declare (it declares ["source"])',
      ]));
    });
    test('fails when runAfter names a task of another pipeline, a finally task, or itself', () => {
      const { chart, pipeline, ok } = setup();
      const other = new Pipeline(chart, 'other');
      other.addWorkspace('shared');
      const foreign = other.addTask('x', ok);
      const a = pipeline.addTask('a', ok);
      const fin = pipeline.addFinally('f', ok);
      expect(() => pipeline.addTask('b', { ...ok, runAfter: [foreign] })).toThrow(/runs after "x" of another pipeline/);
      expect(() => a.addRunAfter(fin)).toThrow(/regular tasks cannot wait for finally tasks/);
      expect(() => a.addRunAfter(a)).toThrow(/runs after itself/);
    });
    test('fails when a finally task has runAfter', () => {
      const { pipeline, ok } = setup();
      const a = pipeline.addTask('a', ok);
      expect(() => pipeline.addFinally('f', { ...ok, runAfter: [a] } as any)).toThrow(/finally task "f" has runAfter: finally tasks run after all tasks/);
    });
    test('fails when runAfter makes a cycle', () => {
      const { chart, pipeline, ok } = setup();
      const a = pipeline.addTask('a', ok);
      const b = pipeline.addTask('b', { ...ok, runAfter: [a] });
      a.addRunAfter(b);
      expect(validationErrors(chart)).toEqual(['pipeline test/p has a cycle: a -> b -> a: break it by removing a runAfter or a result reference']);
    });
    test('fails when result references make a cycle', () => {
      const { chart, pipeline, ok } = setup();
      const a = pipeline.addTask('a', ok);
      const b = pipeline.addTask('b', { ...ok, params: { input: ParamValue.string(a.result('out')) } });
      a.setParam('input', ParamValue.string(b.result('out')));
      expect(validationErrors(chart)).toEqual(['pipeline test/p has a cycle: a -> b -> a: break it by removing a runAfter or a result reference']);
    });
    test('fails when a variable names an undeclared param, a missing task or an undeclared result', () => {
      const { chart, pipeline, ok } = setup();
      pipeline.addTask('a', { ...ok, params: { input: ParamValue.string('$(params.nope)') } });
      pipeline.addTask('b', { ...ok, params: { input: ParamValue.string('$(tasks.ghost.results.out)') } });
      pipeline.addTask('c', { ...ok, params: { input: ParamValue.string('$(tasks.a.results.digest)') } });
      pipeline.addTask('d', { ...ok, when: [WhenExpression.isIn('$(tasks.a.status)', ['Succeeded'])] });
      pipeline.addTask('e', { ...ok, when: [WhenExpression.isIn(pipeline.tasksStatus, ['Succeeded'])] });
      // The aggregate status is a finally task's to read.
      pipeline.addFinally('f', { ...ok, when: [WhenExpression.isIn(pipeline.tasksStatus, ['Succeeded', 'Completed'])] });
      expect(validationErrors(chart)).toEqual([
        'pipeline test/p: task "a" uses "$(params.nope)" but the pipeline declares no param "nope": call pipeline.addParam("nope")',
        'pipeline test/p: task "b" uses "$(tasks.ghost.results.out)" but the pipeline has no task "ghost"',
        'pipeline test/p: task "c" uses "$(tasks.a.results.digest)" but task "a" declares no result "digest" (it declares ["out"])',
        'pipeline test/p: task "d" uses "$(tasks.a.status)": task status is only available to finally tasks',
        'pipeline test/p: task "e" uses "$(tasks.status)": the tasks\' aggregate status is only available to finally tasks',
      ]);
    });
    test('fails when a pipeline result names a result a task does not declare', () => {
      const { chart, pipeline, ok } = setup();
      pipeline.addTask('a', ok);
      pipeline.addResult('r', { value: '$(tasks.a.results.nope)' });
      expect(validationErrors(chart)).toEqual(['pipeline test/p: result "r" uses "$(tasks.a.results.nope)" but task "a" declares no result "nope" (it declares ["out"])']);
    });
    test('fails when a result is asked of a task that does not declare it', () => {
      const { pipeline, ok } = setup();
      expect(() => pipeline.addTask('a', ok).result('digest')).toThrow(/task test\/work has no result "digest"/);
    });
    test('fails when the pipeline has no tasks', () => {
      const chart = Testing.chart();
      new Pipeline(chart, 'p');
      expect(validationErrors(chart)).toEqual(['pipeline test/p has no tasks: add one with addTask()']);
    });
    test('fails when retries is negative', () => {
      const { pipeline, ok } = setup();
      expect(() => pipeline.addTask('a', { ...ok, retries: -1 })).toThrow(/retries -1 must be a whole number, 0 or more/);
    });
    test('fails when a when expression has no values', () => {
      expect(() => WhenExpression.isIn('$(params.x)', [])).toThrow(/has no values/);
    });
    test('fails when an object param is handed to a string param', () => {
      const { chart, pipeline, ws, task } = setup();
      const obj = pipeline.addParam('o', { type: ParamType.OBJECT, properties: ['a'] });
      pipeline.addTask('a', { task, params: { input: obj.toParamValue() }, workspaces: { source: ws } });
      expect(validationErrors(chart)).toEqual(['pipeline test/p: task "a" passes a value of type object to param "input" of type string']);
    });
  });
});
