import { Chart, Duration, Testing } from 'cdk8s';
import { ParamValue, Pipeline, PipelineRun, PipelineRunProps, Task } from '../../src';
import { readableNamePart } from '../../src/tekton/run-name';
import { synth, validationErrors } from '../support/synth';

const IMAGE = 'registry.access.redhat.com/ubi9/ubi-minimal@sha256:0000000000000000000000000000000000000000000000000000000000000000';

function setup() {
  const chart = Testing.chart();
  const task = new Task(chart, 'task', { name: 'work' });
  const input = task.addParam('input');
  task.addStep({ name: 's', image: IMAGE, env: { INPUT: input.envValue() }, script: 'echo "$INPUT"' });
  const pipeline = new Pipeline(chart, 'pipeline', { name: 'demo' });
  const message = pipeline.addParam('message');
  pipeline.addTask('work', { task, params: { input: message.toParamValue() } });
  return { chart, task, pipeline };
}

type RunOptions = Omit<PipelineRunProps, 'pipeline'>;

/** The name of one run named from its inputs, in a fresh chart. */
function nameOf(options: RunOptions, change?: (s: ReturnType<typeof setup>) => void): string {
  const s = setup();
  change?.(s);
  return new PipelineRun(s.chart, 'run', { pipeline: s.pipeline, ...options }).name;
}

const BASE: RunOptions = { nameFromInputs: { prefix: 'hello' }, params: { message: ParamValue.string('hi') } };

describe('PipelineRun named from its inputs', () => {
  test('the name is the prefix and 10 hex digits of the inputs\' sha256, the same on every synth', () => {
    // GIVEN two separate apps with the same inputs
    const a = setup();
    new PipelineRun(a.chart, 'run', { pipeline: a.pipeline, ...BASE });
    const b = setup();
    new PipelineRun(b.chart, 'run', { pipeline: b.pipeline, ...BASE, timeouts: { pipeline: Duration.hours(2) } });

    // WHEN
    const runA = synth(a.chart).find((d) => d.kind === 'PipelineRun');
    const runB = synth(b.chart).find((d) => d.kind === 'PipelineRun');

    // THEN the scheme is pinned: a refactor that changed it would rename (rerun) every user's runs.
    // printf '%s' '{"params":{"message":"hi"},"pipeline":"demo"}' | sha256sum  ->  173d87b20b...
    expect(runA.metadata.name).toBe('hello-173d87b20b');
    // a timeout is not an input: it does not rename
    expect(runB.metadata.name).toBe(runA.metadata.name);
  });

  test('a param, the pipeline\'s name, an extra input or the nonce renames; the pipeline\'s spec only when asked', () => {
    const base = nameOf(BASE);
    expect(nameOf({ ...BASE, params: { message: ParamValue.string('hi!') } })).not.toBe(base);
    expect(nameOf({ ...BASE, nameFromInputs: { prefix: 'hello', inputs: { target: 'quay.io/a/b' } } })).not.toBe(base);
    expect(nameOf({ ...BASE, nameFromInputs: { prefix: 'hello', nonce: '2026-12-01' } })).not.toBe(base);
    expect(nameOf({ ...BASE, nameFromInputs: { prefix: 'hello', nonce: '2026-12-02' } }))
      .not.toBe(nameOf({ ...BASE, nameFromInputs: { prefix: 'hello', nonce: '2026-12-01' } }));
    // With params listed, another param (say, one a library upgrade adds) does not rename.
    const listed = (params: RunOptions['params']) => {
      const s = setup();
      s.pipeline.addParam('extra', { default: ParamValue.string('') });
      return new PipelineRun(s.chart, 'run', { pipeline: s.pipeline, nameFromInputs: { prefix: 'hello', params: ['message'] }, params }).name;
    };
    expect(listed({ message: ParamValue.string('hi'), extra: ParamValue.string('x') })).toBe(base);
    expect(listed({ message: ParamValue.string('hi!'), extra: ParamValue.string('x') })).not.toBe(base);
    expect(() => listed({ extra: ParamValue.string('x') })).toThrow('pipelinerun test/run: nameFromInputs.params lists "message", which the run does not give (it gives ["extra"])');
    // The hash is the same whatever the prefix: only the readable part changes.
    expect(nameOf({ ...BASE, nameFromInputs: { prefix: 'other' } }).slice(-10)).toBe(base.slice(-10));

    // A change of a Task's spec: no rename by default, a rename with includePipelineSpec.
    const addStep = (s: ReturnType<typeof setup>) => s.task.addStep({ name: 'more', image: IMAGE, script: 'true' });
    expect(nameOf(BASE, addStep)).toBe(base);
    const withSpec: RunOptions = { ...BASE, nameFromInputs: { prefix: 'hello', includePipelineSpec: true } };
    expect(nameOf(withSpec, addStep)).not.toBe(nameOf(withSpec));
    expect(nameOf(withSpec)).toBe(nameOf(withSpec));
  });

  test('readable parts are made from any text and shortened, never longer than 52', () => {
    expect(readableNamePart('Mistral_Small 24B!')).toBe('mistral-small-24b');
    expect(readableNamePart('x'.repeat(80))).toHaveLength(52);
    expect(readableNamePart('a'.repeat(51) + '-b')).toBe('a'.repeat(51));
    expect(readableNamePart('---')).toBe('run');
    const s = setup();
    const run = new PipelineRun(s.chart, 'run', { pipeline: s.pipeline, ...BASE, nameFromInputs: { prefix: readableNamePart('y'.repeat(99)) } });
    expect(run.name).toHaveLength(63);
    expect(synth(s.chart).find((d) => d.kind === 'PipelineRun').metadata.name).toMatch(/^y{52}-[0-9a-f]{10}$/);
  });

  test('fails when two runs have the same inputs, naming both', () => {
    const s = setup();
    new PipelineRun(s.chart, 'first', { pipeline: s.pipeline, ...BASE, nameFromInputs: { prefix: 'one' } });
    new PipelineRun(s.chart, 'second', { pipeline: s.pipeline, ...BASE, nameFromInputs: { prefix: 'two' } });
    const errors = validationErrors(s.chart);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^pipelinerun test\/second and pipelinerun test\/first have the same inputs .*hash [0-9a-f]{10}\): they would build the same thing twice/);
  });

  test('the same inputs in two namespaces are two deployments, not a collision', () => {
    const app = Testing.app();
    for (const ns of ['team-a', 'team-b']) {
      const chart = new Chart(app, ns, { namespace: ns });
      const task = new Task(chart, 'task', { name: 'work' });
      task.addStep({ name: 's', image: IMAGE, script: 'true' });
      const pipeline = new Pipeline(chart, 'pipeline', { name: 'demo' });
      pipeline.addTask('work', { task });
      new PipelineRun(chart, 'run', { pipeline, nameFromInputs: { prefix: 'hello' } });
    }
    expect(app.node.findAll().flatMap((c) => c.node.validate())).toEqual([]);
  });

  test('fails when two runs of one namespace have the same name', () => {
    const s = setup();
    new PipelineRun(s.chart, 'first', { pipeline: s.pipeline, name: 'same', params: { message: ParamValue.string('a') } });
    new PipelineRun(s.chart, 'second', { pipeline: s.pipeline, name: 'same', params: { message: ParamValue.string('b') } });
    expect(validationErrors(s.chart)).toEqual(['pipelinerun test/second and pipelinerun test/first are both named "same": give each its own name']);
  });

  test('fails when the readable part is too long or not a DNS name', () => {
    const s = setup();
    expect(() => new PipelineRun(s.chart, 'long', { pipeline: s.pipeline, ...BASE, nameFromInputs: { prefix: 'a'.repeat(53) } }))
      .toThrow('pipelinerun test/long: name "' + 'a'.repeat(53) + '" is 53 characters long: with a dash and the 10-character hash of the inputs it must be at most 52; shorten it');
    expect(() => new PipelineRun(s.chart, 'upper', { pipeline: s.pipeline, ...BASE, nameFromInputs: { prefix: 'Hello' } }))
      .toThrow('pipelinerun test/upper: name "Hello" is not the start of a DNS-1123 name');
  });

  test('fails when the nonce is not a string, or blank', () => {
    const s = setup();
    expect(() => new PipelineRun(s.chart, 'n', { pipeline: s.pipeline, ...BASE, nameFromInputs: { prefix: 'hello', nonce: 20261201 as any } }))
      .toThrow("pipelinerun test/n: rebuild nonce 20261201 is a number: give a string, for example the date of the rebuild ('2026-12-01')");
    expect(() => new PipelineRun(s.chart, 'b', { pipeline: s.pipeline, ...BASE, nameFromInputs: { prefix: 'hello', nonce: ' ' } }))
      .toThrow('pipelinerun test/b: rebuild nonce " " must be 1 to 128 characters, not blank');
  });

  test('fails when nameFromInputs comes with a name', () => {
    const s = setup();
    expect(() => new PipelineRun(s.chart, 'r', { pipeline: s.pipeline, ...BASE, name: 'fixed' }))
      .toThrow('pipelinerun test/r has nameFromInputs and name "fixed": give one');
  });

  test('fails when the pipeline changes after a run named from its spec', () => {
    const s = setup();
    new PipelineRun(s.chart, 'run', { pipeline: s.pipeline, ...BASE, nameFromInputs: { prefix: 'hello', includePipelineSpec: true } });
    s.task.addStep({ name: 'late', image: IMAGE, script: 'true' });
    expect(validationErrors(s.chart)).toEqual([
      'pipelinerun test/run was named from pipeline test/pipeline before the pipeline (or one of its tasks) changed: '
      + 'create the run after the pipeline is complete, so that its name covers the final spec',
    ]);
  });
});
