import * as crypto from 'crypto';
import { Testing } from 'cdk8s';
import { Pipeline, PodLimits, Task } from '../../src';
import { validationErrors } from '../support/synth';

const IMAGE = 'registry.access.redhat.com/ubi9/ubi-minimal@sha256:0000000000000000000000000000000000000000000000000000000000000000';

/** A shell script of about `bytes` bytes that base64 cannot shrink (random hex in a comment). */
function bulkyScript(bytes: number): string {
  return `#!/bin/sh\n# ${crypto.randomBytes(Math.ceil(bytes / 2)).toString('hex').slice(0, bytes)}\necho done\n`;
}

describe('PodLimits.placeScriptsArgumentBytes', () => {
  test('counts what Tekton writes for each script: the wrapper lines, base64 of the script, the preamble when there is no shebang', () => {
    // GIVEN: a script without a shebang, one with, and a step without a script
    const noShebang = 'echo "$WHO"\n';
    const withShebang = '#!/usr/bin/env python3\nprint(1)\n';

    // WHEN
    const bytes = PodLimits.placeScriptsArgumentBytes([noShebang, '', withShebang]);

    // THEN: the argument as pkg/pod/script.go builds it, written out by hand here (the random suffix is 5 characters)
    const entry = (i: number, script: string) => `scriptfile="/tekton/scripts/script-${i}-abcde"\n`
      + 'touch ${scriptfile} && chmod +x ${scriptfile}\n'
      + "cat > ${scriptfile} << '_EOF_'\n"
      + `${Buffer.from(script).toString('base64')}\n_EOF_\n`
      + '/tekton/bin/entrypoint decode-script "${scriptfile}"\n';
    const expected = entry(0, `#!/bin/sh\nset -e\n${noShebang}`) + entry(2, withShebang);
    expect(bytes).toBe(Buffer.byteLength(expected));
  });

  test('a script with blanks before its shebang gets no preamble (Tekton trims before it looks)', () => {
    const script = '\n  #!/bin/sh\necho\n';
    const withPreamble = `#!/bin/sh\nset -e\n${script}`;
    const base64 = (s: string) => Buffer.from(s).toString('base64').length;
    expect(PodLimits.placeScriptsArgumentBytes([withPreamble]) - PodLimits.placeScriptsArgumentBytes([script]))
      .toBe(base64(withPreamble) - base64(script));
  });

  test('the budget stays below the kernel limit', () => {
    expect(PodLimits.PLACE_SCRIPTS_BUDGET).toBeLessThan(PodLimits.KERNEL_ARG_LIMIT);
  });
});

describe('Task place-scripts budget', () => {
  test('fails when a task\'s scripts exceed the place-scripts budget, with the task, its size, the budget and what to do', () => {
    // GIVEN: two steps whose scripts together make about 125 KB of base64
    const chart = Testing.chart();
    const task = new Task(chart, 'big', { name: 'big' });
    task.addStep({ name: 'one', image: IMAGE, script: bulkyScript(47_000) });
    task.addStep({ name: 'two', image: IMAGE, script: bulkyScript(47_000) });

    // WHEN
    const errors = validationErrors(chart);

    // THEN
    const size = PodLimits.placeScriptsArgumentBytes(task.steps.map((s) => s._toSpec().script ?? ''));
    expect(size).toBeGreaterThan(PodLimits.PLACE_SCRIPTS_BUDGET);
    expect(errors).toEqual([expect.stringMatching(new RegExp(
      `^task test/big: its step scripts make a place-scripts argument of ${size} bytes .* over the budget of 122880 bytes .*131072.*: move steps into another Task, or make the scripts smaller$`))]);
  });

  test('a task just under the budget synthesizes', () => {
    // GIVEN: one script whose argument is within 200 bytes of the budget
    const chart = Testing.chart();
    const task = new Task(chart, 'fits', { name: 'fits' });
    let n = 91_000;
    while (PodLimits.placeScriptsArgumentBytes([bulkyScript(n + 100)]) <= PodLimits.PLACE_SCRIPTS_BUDGET) n += 100;
    task.addStep({ name: 'one', image: IMAGE, script: bulkyScript(n) });

    // THEN
    const size = PodLimits.placeScriptsArgumentBytes([bulkyScript(n)]);
    expect(size).toBeLessThanOrEqual(PodLimits.PLACE_SCRIPTS_BUDGET);
    expect(size).toBeGreaterThan(PodLimits.PLACE_SCRIPTS_BUDGET - 200);
    expect(validationErrors(chart)).toEqual([]);
  });

  test('fails when an embedded task is over the budget too (it is a pod as well)', () => {
    const chart = Testing.chart();
    const task = new Task(chart, 'inline', { embedded: true });
    task.addStep({ name: 'one', image: IMAGE, script: bulkyScript(100_000) });
    const pipeline = new Pipeline(chart, 'p', { name: 'p' });
    pipeline.addTask('inline', { task });
    expect(validationErrors(chart)).toContainEqual(expect.stringMatching(/^task test\/inline: its step scripts make a place-scripts argument of \d+ bytes/));
  });
});

describe('objects kubectl apply can store', () => {
  test('fails when a pipeline\'s JSON (embedded tasks included) is over the annotations limit', () => {
    // GIVEN: three embedded tasks, each within the place-scripts budget, 270 KB together
    const chart = Testing.chart();
    const pipeline = new Pipeline(chart, 'p', { name: 'p' });
    for (const id of ['a', 'b', 'c']) {
      const task = new Task(chart, id, { embedded: true });
      task.addStep({ name: 'one', image: IMAGE, script: bulkyScript(90_000) });
      pipeline.addTask(id, { task });
    }

    // WHEN
    const errors = validationErrors(chart);

    // THEN: only the pipeline is refused, with its size and the way out
    const size = PodLimits.lastAppliedBytes(pipeline.apiObject.toJson());
    expect(size).toBeGreaterThan(PodLimits.ANNOTATIONS_LIMIT);
    expect(errors).toEqual([expect.stringMatching(new RegExp(
      `^pipeline test/p is ${size} bytes as kubectl apply stores it .*last-applied-configuration.* 262144 bytes .*server-side apply`))]);
  });

  test('fails when a task\'s JSON is over it (a long description, not scripts)', () => {
    const chart = Testing.chart();
    const task = new Task(chart, 'wordy', { name: 'wordy', description: 'x'.repeat(270_000) });
    task.addStep({ name: 'one', image: IMAGE, script: 'echo\n' });
    expect(validationErrors(chart)).toEqual([expect.stringMatching(/^task test\/wordy is \d+ bytes as kubectl apply stores it/)]);
  });

  test('counts the annotations an object already has', () => {
    const manifest = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x', annotations: { a: 'bcd' } } };
    expect(PodLimits.lastAppliedBytes(manifest)).toBe(4 + Buffer.byteLength(PodLimits.LAST_APPLIED_ANNOTATION) + JSON.stringify(manifest).length);
  });
});
