import { Testing } from 'cdk8s';
import { ParamValue, Pipeline, PipelineGraph, Task } from '../../src';

const IMAGE = 'registry.access.redhat.com/ubi9/ubi-minimal@sha256:0000000000000000000000000000000000000000000000000000000000000000';

function task(chart: any, name: string, steps: string[], results: string[] = []): Task {
  const t = new Task(chart, name, { name });
  for (const r of results) t.addResult(r);
  t.addParam('in', { default: ParamValue.string('') });
  for (const s of steps) t.addStep({ name: s, image: IMAGE, script: 'true' });
  return t;
}

describe('PipelineGraph', () => {
  test('draws tasks with their steps, runAfter and result edges, and finally tasks, from the construct', () => {
    // GIVEN a fan-out with a result passed along, and a finally task
    const chart = Testing.chart();
    const pipeline = new Pipeline(chart, 'p', { name: 'p' });
    const fetch = pipeline.addTask('fetch', { task: task(chart, 'fetch', ['debug', 'get'], ['DIGEST', 'SIZE']) });
    const check = pipeline.addTask('check', { task: task(chart, 'check', ['verify']), params: { in: ParamValue.string(`${fetch.result('SIZE')} ${fetch.result('DIGEST')}`) } });
    pipeline.addTask('end', { task: task(chart, 'other', ['x']), runAfter: [check] });
    pipeline.addFinally('report', { task: task(chart, 'report', ['send']) });

    // WHEN
    const graph = PipelineGraph.mermaid(pipeline);

    // THEN
    expect(graph).toBe([
      'flowchart LR',
      '  fetch["fetch<br/>debug, get"]',
      '  check["check<br/>verify"]',
      '  end_task["end<br/>x"]',
      '  subgraph finally',
      '    report["report<br/>send"]',
      '  end',
      '  fetch -->|DIGEST, SIZE| check',
      '  check --> end_task',
      '',
    ].join('\n'));
    // The same construct gives the same text.
    expect(PipelineGraph.mermaid(pipeline)).toBe(graph);
  });
});
