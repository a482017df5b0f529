import { Testing } from 'cdk8s';
import { ParamValue, Pipeline, PipelineRun, Task } from '../../src';

test('objects without a name get the name cdk8s generates', () => {
  const chart = Testing.chart();
  const task = new Task(chart, 'task');
  task.addStep({ name: 's', image: 'example.com/i@sha256:' + 'a'.repeat(64), script: 'true' });
  const pipeline = new Pipeline(chart, 'pipeline');
  pipeline.addTask('t', { task });
  new PipelineRun(chart, 'run', { pipeline, params: {} as { [k: string]: ParamValue } });
  const docs = Testing.synth(chart);
  expect(docs.map((d) => d.metadata.name)).toEqual([task.name, pipeline.name, expect.stringMatching(/^test-run-[0-9a-f]{8}$/)]);
  expect(docs[1].spec.tasks[0].taskRef.name).toBe(task.name);
  expect(docs[2].spec.pipelineRef.name).toBe(pipeline.name);
});
