import { Duration, JsonPatch, Size, Testing } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import { OnError, ParamType, ParamValue, Task, TaskVolume } from '../../src';
import { doc, synth, validationErrors } from '../support/synth';

const IMAGE = 'registry.access.redhat.com/ubi9/ubi-minimal@sha256:0000000000000000000000000000000000000000000000000000000000000000';

describe('Task', () => {
  test('renders params, results, workspaces, volumes, stepTemplate and steps', () => {
    // GIVEN
    const chart = Testing.chart();
    const task = new Task(chart, 'greet', {
      name: 'greet',
      description: 'says hello',
      stepTemplate: { image: IMAGE, env: { LANG: kplus.EnvValue.fromValue('C.UTF-8') } },
    });
    const who = task.addParam('who', { default: ParamValue.string('world'), description: 'whom to greet' });
    const tags = task.addParam('tags', { type: ParamType.ARRAY, default: ParamValue.array([]) });
    const target = task.addParam('target', { type: ParamType.OBJECT, properties: ['url', 'path'] });
    const out = task.addResult('greeting', { description: 'what was said' });
    const src = task.addWorkspace('source', { description: 'files' });
    const scratch = task.addVolume(TaskVolume.emptyDir('scratch', { sizeLimit: Size.gibibytes(2) }));
    const certs = task.addVolume(TaskVolume.secret('certs', 'registry-ca', { defaultMode: 0o440 }));

    // WHEN
    task.addStep({
      name: 'greet',
      env: {
        WHO: who.envValue(),
        URL: kplus.EnvValue.fromValue(target.key('url')),
        SOURCE: src.pathEnvValue(),
        OUT: out.pathEnvValue(),
      },
      script: '#!/bin/sh\nset -eu\nprintf "hello %s from %s" "$WHO" "$URL" > "$OUT"\nls "$SOURCE"\n',
      workingDir: '/tmp',
      timeout: Duration.minutes(5),
      onError: OnError.CONTINUE,
      volumeMounts: [{ volume: scratch, mountPath: '/var/tmp' }, { volume: certs, mountPath: '/etc/certs', readOnly: true }],
      computeResources: { memory: { request: Size.mebibytes(256), limit: Size.gibibytes(1) }, cpu: { request: kplus.Cpu.millis(250) } },
      securityContext: { runAsNonRoot: true, allowPrivilegeEscalation: false },
    });
    task.addStep({ name: 'list', command: ['echo'], args: [tags.reference] });

    // THEN
    const docs = synth(chart);
    expect(docs).toMatchSnapshot();
    const spec = doc(docs, 'Task', 'greet').spec;
    expect(spec.steps.map((s: any) => s.name)).toEqual(['greet', 'list']);
    expect(spec.steps[0].env).toContainEqual({ name: 'WHO', value: '$(params.who)' });
    expect(spec.steps[0].env).toContainEqual({ name: 'URL', value: '$(params.target.url)' });
    expect(spec.steps[0].timeout).toBe('5m0s');
    expect(spec.steps[0].computeResources).toEqual({ requests: { memory: '256Mi', cpu: '250m' }, limits: { memory: '1Gi' } });
    expect(spec.steps[1].args).toEqual(['$(params.tags[*])']);
    expect(spec.params.find((p: any) => p.name === 'target').properties).toEqual({ url: { type: 'string' }, path: { type: 'string' } });
    expect(spec.volumes).toEqual([
      { name: 'scratch', emptyDir: { sizeLimit: '2Gi' } },
      { name: 'certs', secret: { secretName: 'registry-ca', defaultMode: 0o440 } },
    ]);
  });

  test('an embedded task emits no Task object', () => {
    const chart = Testing.chart();
    new Task(chart, 'inline', { embedded: true }).addStep({ name: 's', image: IMAGE, script: 'true' });
    expect(Testing.synth(chart)).toEqual([]);
  });

  test('addJsonPatch works on the Task object', () => {
    const chart = Testing.chart();
    const task = new Task(chart, 't', { name: 't' });
    task.addStep({ name: 's', image: IMAGE, script: 'true' });
    task.apiObject!.addJsonPatch(JsonPatch.add('/spec/displayName', 'patched'));
    task.apiObject!.metadata.addLabel('team', 'ai');
    const t = doc(synth(chart), 'Task');
    expect(t.spec.displayName).toBe('patched');
    expect(t.metadata.labels).toEqual({ team: 'ai' });
  });

  describe('fails when', () => {
    const task = () => new Task(Testing.chart(), 't', { name: 't' });

    test('fails when the name is not a DNS-1123 name', () => {
      expect(() => new Task(Testing.chart(), 't', { name: 'Build_Image' })).toThrow(/task test\/t: name "Build_Image" is not a DNS-1123 name/);
      expect(() => new Task(Testing.chart(), 't', { name: 'a'.repeat(64) })).toThrow(/is 64 characters long: it must be at most 63/);
    });
    test('fails when a step name is invalid', () => {
      expect(() => task().addStep({ name: 'Build', image: IMAGE, script: 'true' })).toThrow(/step name "Build" is not a DNS-1123 label/);
    });
    test('fails when a step, param, result or workspace name is used twice', () => {
      const t = task();
      t.addStep({ name: 's', image: IMAGE, script: 'true' });
      expect(() => t.addStep({ name: 's', image: IMAGE, script: 'true' })).toThrow(/already has a step named "s"/);
      t.addParam('p');
      expect(() => t.addParam('p')).toThrow(/already has a param named "p"/);
      t.addResult('r');
      expect(() => t.addResult('r')).toThrow(/already has a result named "r"/);
      t.addWorkspace('w');
      expect(() => t.addWorkspace('w')).toThrow(/already has a workspace named "w"/);
      t.addVolume(TaskVolume.emptyDir('v'));
      expect(() => t.addVolume(TaskVolume.emptyDir('v'))).toThrow(/already has a volume named "v"/);
    });
    test('fails when a param name is invalid', () => {
      expect(() => task().addParam('1st')).toThrow(/param name "1st" is invalid/);
    });
    test('fails when a result name is invalid', () => {
      expect(() => task().addResult('digest-')).toThrow(/result name "digest-" is invalid/);
    });
    test('fails when a param default has the wrong type', () => {
      expect(() => task().addParam('p', { type: ParamType.ARRAY, default: ParamValue.string('x') }))
        .toThrow(/param "p" is of type array but its default is of type string/);
    });
    test('fails when an object param has no properties', () => {
      expect(() => task().addParam('o', { type: ParamType.OBJECT })).toThrow(/object param "o" has no properties/);
    });
    test('fails when a default is not one of the enum values', () => {
      expect(() => task().addParam('mode', { enum: ['a', 'b'], default: ParamValue.string('c') })).toThrow(/default "c" is not one of its enum values/);
    });
    test('fails when a step has both script and command', () => {
      expect(() => task().addStep({ name: 's', image: IMAGE, script: 'true', command: ['true'] })).toThrow(/has both script and command: give one/);
    });
    test.each(['$(params.model)', '$(tasks.build.results.digest)', '$(context.pipelineRun.uid)'])('fails when a script contains %s', (variable) => {
      expect(() => task().addStep({ name: 's', image: IMAGE, script: `echo ${variable}` }))
        .toThrow(/script contains "\$\(.*\)": Tekton would paste the value into the script.*Pass it through env/);
    });
    test('fails when the task has no steps', () => {
      const chart = Testing.chart();
      new Task(chart, 't');
      expect(validationErrors(chart)).toEqual(['task test/t has no steps: add one with addStep()']);
    });
    test('fails when a step has no image and no stepTemplate image', () => {
      const chart = Testing.chart();
      new Task(chart, 't').addStep({ name: 's', script: 'true' });
      expect(validationErrors(chart)).toEqual(['task test/t: step "s" has no image: set image on the step or on the stepTemplate']);
    });
    test('fails when a step uses an undeclared param, workspace or result', () => {
      const chart = Testing.chart();
      new Task(chart, 't').addStep({
        name: 's',
        image: IMAGE,
        script: 'cat "$(results.out.path)"',
        env: { A: kplus.EnvValue.fromValue('$(params.nope)'), B: kplus.EnvValue.fromValue('$(workspaces.gone.path)') },
      });
      expect(validationErrors(chart)).toEqual([
        'task test/t: step "s" uses "$(results.out.path)" but the task declares no result "out": call addResult("out")',
        'task test/t: step "s" uses "$(params.nope)" but the task declares no param "nope": call addParam("nope")',
        'task test/t: step "s" uses "$(workspaces.gone.path)" but the task declares no workspace "gone": call addWorkspace("gone")',
      ]);
    });
    test('fails when a step uses pipeline context, which Tekton leaves literal in a Task', () => {
      const chart = Testing.chart();
      const t = new Task(chart, 't');
      t.addStep({
        name: 's',
        image: IMAGE,
        script: 'echo "$RUN"',
        env: { RUN: kplus.EnvValue.fromValue('/data/$(context.pipelineRun.uid)'), TR: kplus.EnvValue.fromValue('$(context.taskRun.uid)') },
      });
      expect(validationErrors(chart)).toEqual([
        'task test/t: step "s" uses "$(context.pipelineRun.uid)", which Tekton does not substitute in a Task (only context.taskRun.name, '
        + 'context.taskRun.namespace, context.taskRun.uid, context.task.name, context.task.retry-count): declare a param and let the '
        + 'pipeline pass the value (e.g. RUN_ID: "$(context.pipelineRun.uid)")',
      ]);
    });
    test('fails when a step mounts a volume the task does not have', () => {
      const chart = Testing.chart();
      new Task(chart, 't').addStep({ name: 's', image: IMAGE, script: 'true', volumeMounts: [{ volume: TaskVolume.emptyDir('tmp'), mountPath: '/tmp' }] });
      expect(validationErrors(chart)).toEqual(['task test/t: step "s" mounts volume "tmp" that the task does not have: call task.addVolume() with it']);
    });
    test('fails when a uid is out of range', () => {
      expect(() => task().addStep({ name: 's', image: IMAGE, script: 'true', securityContext: { runAsUser: -1 } }))
        .toThrow(/securityContext.runAsUser -1 is out of range/);
    });
    test('fails when an env var name is invalid', () => {
      expect(() => task().addStep({ name: 's', image: IMAGE, script: 'true', env: { 'MY-VAR': kplus.EnvValue.fromValue('x') } }))
        .toThrow(/env var name "MY-VAR" is invalid/);
    });
    test('fails when a step timeout is not whole seconds', () => {
      expect(() => task().addStep({ name: 's', image: IMAGE, script: 'true', timeout: Duration.millis(1500) }))
        .toThrow(/not a whole number of seconds/);
    });
    test('fails when an array param is handed to env', () => {
      expect(() => task().addParam('a', { type: ParamType.ARRAY }).envValue()).toThrow(/is an array: an env var holds one string/);
    });
    test('fails when a result that does not exist is looked up', () => {
      expect(() => task().result('digest')).toThrow(/task test\/t has no result "digest": its results are \[\]/);
    });
  });
});
