import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as yaml from 'js-yaml';
import { RunPipelineOptions, RunPipelineResult, runPipeline, sandboxSupport } from './tekton-runner';

const support = sandboxSupport();
// The runner needs root (mount namespaces, setpriv). It never skips: without them the
// suite fails, with the reason (end-to-end tests fail, not skip, when a part is missing).
test('the sandbox the runner needs is available', () => {
  expect(support.reason ?? 'ok').toBe('ok');
});
const describeSandbox = describe;

let workDir: string;
beforeAll(() => {
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tekton-runner-test-'));
});
afterAll(() => {
  if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
});

/** A PipelineRun with an embedded pipelineSpec (YAML fragments are easier to read than objects). */
function pipelineRun(pipelineSpec: string, spec: string = '', name = 'test-run'): any {
  const pr: any = yaml.load(`
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata:
  name: ${name}
spec:
  ${spec.trim().split('\n').join('\n  ')}
`) ?? {};
  pr.spec = pr.spec ?? {};
  pr.spec.pipelineSpec = yaml.load(pipelineSpec);
  return pr;
}

async function run(manifests: any[], opts: Partial<RunPipelineOptions> = {}): Promise<RunPipelineResult> {
  return runPipeline({ manifests, workDir, ...opts });
}

function stepLog(r: RunPipelineResult, task: string, step = 0): string {
  return r.tasks[task]?.steps[step]?.log ?? '';
}

const FS_GROUP = `
taskRunTemplate:
  podTemplate:
    securityContext:
      fsGroup: 65532
`;

describeSandbox('tekton-runner', () => {
  test('orders tasks by runAfter and by result references (Task, Pipeline and PipelineRun documents)', async () => {
    const docs = yaml.loadAll(`
apiVersion: tekton.dev/v1
kind: Task
metadata: { name: append }
spec:
  params: [{ name: word }]
  results: [{ name: next }]
  workspaces: [{ name: ws }]
  steps:
    - name: append
      image: registry.access.redhat.com/ubi9/ubi-minimal
      script: |
        echo "$(params.word)" >> $(workspaces.ws.path)/order
        printf second > $(results.next.path)
---
apiVersion: tekton.dev/v1
kind: Pipeline
metadata: { name: ordering }
spec:
  workspaces: [{ name: shared }]
  tasks:
    - name: third
      runAfter: [second]
      taskRef: { name: append }
      params: [{ name: word, value: third }]
      workspaces: [{ name: ws, workspace: shared }]
    - name: second
      taskRef: { name: append }
      params: [{ name: word, value: $(tasks.first.results.next) }]
      workspaces: [{ name: ws, workspace: shared }]
    - name: first
      taskRef: { name: append }
      params: [{ name: word, value: first }]
      workspaces: [{ name: ws, workspace: shared }]
  finally:
    - name: report
      workspaces: [{ name: ws, workspace: shared }]
      taskSpec:
        workspaces: [{ name: ws }]
        steps:
          - name: cat
            image: busybox
            script: cat $(workspaces.ws.path)/order
---
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: { generateName: ordering-run- }
spec:
  pipelineRef: { name: ordering }
  ${FS_GROUP.trim().split('\n').join('\n  ')}
  workspaces:
    - name: shared
      volumeClaimTemplate: { spec: { accessModes: [ReadWriteOnce], resources: { requests: { storage: 1Gi } } } }
---
apiVersion: v1
kind: ConfigMap
metadata: { name: ignored }
`);
    const r = await run(docs);
    expect(r.status).toBe('Succeeded');
    expect(r.pipelineRun.name).toMatch(/^ordering-run-[a-z0-9]{5}$/);
    expect(r.tasks.second.taskRun).toBe(`${r.pipelineRun.name}-second`);
    const { first, second, third, report } = r.tasks;
    expect(first.finishedAt!.getTime()).toBeLessThanOrEqual(second.startedAt!.getTime());
    expect(second.finishedAt!.getTime()).toBeLessThanOrEqual(third.startedAt!.getTime());
    expect(third.finishedAt!.getTime()).toBeLessThanOrEqual(report.startedAt!.getTime());
    expect(stepLog(r, 'report')).toBe('first\nsecond\nthird');
    expect(r.log).toContain('[first/append] image=registry.access.redhat.com/ubi9/ubi-minimal');
  });

  test('params: PipelineRun values over pipeline defaults, pipeline task values over task defaults', async () => {
    const r = await run([pipelineRun(`
params:
  - { name: greeting, default: hello }
  - { name: who, default: nobody }
tasks:
  - name: greet
    params:
      - { name: text, value: "$(params.greeting), $(params['who'])!" }
    taskSpec:
      params:
        - { name: text }
        - { name: suffix, default: "(default suffix)" }
      steps:
        - name: echo
          image: busybox
          script: echo "$(params.text) $(params["suffix"])"
`, `
params:
  - { name: who, value: world }
`)]);
    expect(r.status).toBe('Succeeded');
    expect(stepLog(r, 'greet')).toBe('hello, world! (default suffix)');
  });

  test('a missing required param is an error (pipeline level and task level)', async () => {
    const spec = `
params: [{ name: required }]
tasks:
  - name: t
    taskSpec:
      params: [{ name: needed }]
      steps: [{ name: s, image: busybox, script: "echo $(params.needed)" }]
`;
    const r1 = await run([pipelineRun(spec)]);
    expect(r1.status).toBe('Failed');
    expect(r1.reason).toBe('ParameterMissing');
    expect(r1.message).toContain('required');
    expect(r1.tasks).toEqual({});

    const r2 = await run([pipelineRun(spec, 'params: [{ name: required, value: x }]')]);
    expect(r2.status).toBe('Failed');
    expect(r2.reason).toBe('ParameterMissing');
    expect(r2.message).toContain('t: needed');
    expect(r2.tasks).toEqual({});
  });

  test('array params expand into several args; object params by key', async () => {
    const r = await run([pipelineRun(`
params:
  - { name: flags, type: array, default: [a, "b c"] }
  - name: repo
    type: object
    properties: { url: { type: string }, rev: { type: string } }
    default: { url: "https://example.invalid", rev: main }
tasks:
  - name: t
    params:
      - { name: flags, value: ["$(params.flags[*])", d] }
      - { name: url, value: $(params.repo.url) }
      - { name: repo, value: "$(params.repo[*])" }
    taskSpec:
      params:
        - { name: flags, type: array }
        - { name: url }
        - { name: repo, type: object, properties: { url: { type: string }, rev: { type: string } } }
      steps:
        - name: printf
          image: busybox
          command: [printf, "<%s>\\\\n"]
          args: ["$(params.flags[*])", "$(params.url)", "$(params.repo.rev)"]
`, `
params:
  - { name: repo, value: { url: "https://git.example/x" } }
`)]);
    expect(r.status).toBe('Succeeded');
    expect(stepLog(r, 't')).toBe('<a>\n<b c>\n<d>\n<https://git.example/x>\n<main>');
  });

  test('results pass between tasks verbatim (string and array) and become pipeline results', async () => {
    const r = await run([pipelineRun(`
results:
  - { name: text, value: $(tasks.produce.results.text) }
  - { name: list, type: array, value: "$(tasks.produce.results.list[*])" }
  - { name: length, value: $(tasks.consume.results.length) }
tasks:
  - name: produce
    taskSpec:
      results:
        - { name: text }
        - { name: list, type: array }
      steps:
        - name: write
          image: busybox
          script: |
            printf 'line1\\nline2\\n' > $(results.text.path)
            printf '["x", "y z"]' > $(results.list.path)
  - name: consume
    params:
      - { name: v, value: $(tasks.produce.results.text) }
      - { name: items, value: ["$(tasks.produce.results.list[*])"] }
      - { name: second, value: "$(tasks.produce.results.list[1])" }
    taskSpec:
      params: [{ name: v }, { name: items, type: array }, { name: second }]
      results: [{ name: length }]
      steps:
        - name: count
          image: busybox
          command: [sh, -c, 'printf "%s" "$0" | wc -c | tr -d " \\\\n" > $(results.length.path); echo "items=$*"', "$(params.v)", "$(params.items[*])"]
        - name: second
          image: busybox
          script: echo "second=$(params.second)"
`)]);
    expect(r.status).toBe('Succeeded');
    expect(r.tasks.produce.results.text).toBe('line1\nline2\n');
    expect(r.tasks.consume.results.length).toBe('12');
    expect(stepLog(r, 'consume', 0)).toBe('items=x y z');
    expect(stepLog(r, 'consume', 1)).toBe('second=y z');
    expect(r.results).toEqual({ text: 'line1\nline2\n', list: '["x","y z"]', length: '12' });
  });

  test('when: a false when skips the task and its result consumers, ordering-only dependents still run', async () => {
    const echo = (msg: string) => `{ steps: [{ name: s, image: busybox, script: "echo ${msg}" }] }`;
    const r = await run([pipelineRun(`
params: [{ name: mode, default: fast }]
tasks:
  - name: guarded
    when: [{ input: $(params.mode), operator: in, values: [slow] }]
    taskSpec:
      results: [{ name: r }]
      steps: [{ name: s, image: busybox, script: "printf x > $(results.r.path)" }]
  - name: uses-result
    params: [{ name: v, value: $(tasks.guarded.results.r) }]
    taskSpec: { params: [{ name: v }], steps: [{ name: s, image: busybox, script: "echo $(params.v)" }] }
  - name: after-guarded
    runAfter: [guarded]
    taskSpec: ${echo('ran after a skipped task')}
  - name: after-consumer
    runAfter: [uses-result]
    taskSpec: ${echo('never')}
  - name: notin
    when: [{ input: $(params.mode), operator: notin, values: [slow, medium] }]
    taskSpec: ${echo('notin ran')}
`)]);
    expect(r.status).toBe('Succeeded');
    expect(r.reason).toBe('Completed');
    expect(r.tasks.guarded).toMatchObject({ status: 'Skipped', reason: 'When Expressions evaluated to false', attempts: 0 });
    expect(r.tasks['uses-result']).toMatchObject({ status: 'Skipped', reason: 'Results were missing' });
    expect(r.tasks['after-guarded'].status).toBe('Succeeded');
    expect(r.tasks['after-consumer']).toMatchObject({ status: 'Skipped', reason: 'Parent Tasks were skipped' });
    expect(r.tasks.notin.status).toBe('Succeeded');
  });

  test('skipped by when: pipeline results that refer to the skipped task are not emitted, a finally task that does is skipped, a report after it runs', async () => {
    // Tekton: ApplyTaskResultsToPipelineResults drops a pipeline result that refers to a task that did not succeed;
    // a finally task with a missing result reference is skipped (MissingResultsSkip); runAfter on a task skipped by
    // its own when does not skip (when expressions are scoped to their task).
    const r = await run([pipelineRun(`
results:
  - { name: from-skipped, value: $(tasks.guarded.results.r) }
  - { name: from-report, value: $(tasks.report.results.r) }
  - { name: from-finally, value: $(finally.uses-skipped.results.r) }
tasks:
  - name: guarded
    when: [{ input: "no", operator: in, values: ["yes"] }]
    taskSpec: { results: [{ name: r }], steps: [{ name: s, image: busybox, script: "printf built > $(results.r.path)" }] }
  - name: report
    runAfter: [guarded]
    taskSpec: { results: [{ name: r }], steps: [{ name: s, image: busybox, script: "printf reported > $(results.r.path)" }] }
finally:
  - name: uses-skipped
    params: [{ name: v, value: $(tasks.guarded.results.r) }]
    taskSpec: { params: [{ name: v }], results: [{ name: r }], steps: [{ name: s, image: busybox, script: "printf x > $(results.r.path)" }] }
`)]);
    expect(r.status).toBe('Succeeded');
    expect(r.tasks.guarded).toMatchObject({ status: 'Skipped', reason: 'When Expressions evaluated to false' });
    expect(r.tasks.report.status).toBe('Succeeded');
    expect(r.tasks['uses-skipped']).toMatchObject({ status: 'Skipped', reason: 'Results were missing' });
    expect(r.results).toEqual({ 'from-report': 'reported' });
  });

  test('a pipeline result that refers to a result a succeeded task did not write fails the PipelineRun (CouldntGetPipelineResult)', async () => {
    const r = await run([pipelineRun(`
results:
  - { name: good, value: $(tasks.producer.results.written) }
  - { name: bad, value: $(tasks.producer.results.forgotten) }
tasks:
  - name: producer
    taskSpec:
      results: [{ name: written }, { name: forgotten }]
      steps: [{ name: s, image: busybox, script: "printf ok > $(results.written.path)" }]
`)]);
    expect(r.tasks.producer.status).toBe('Succeeded');
    expect(r.status).toBe('Failed');
    expect(r.reason).toBe('CouldntGetPipelineResult');
    expect(r.message).toContain('invalid pipelineresults [bad], the referenced results don\'t exist');
    expect(r.results).toEqual({ good: 'ok' });
  });

  test('a failure stops scheduling; finally runs and sees $(tasks.status) and $(tasks.<t>.status)', async () => {
    const r = await run([pipelineRun(`
tasks:
  - name: ok
    taskSpec: { results: [{ name: v }], steps: [{ name: s, image: busybox, script: "printf fine > $(results.v.path)" }] }
  - name: boom
    runAfter: [ok]
    taskSpec: { steps: [{ name: s, image: busybox, script: "echo failing; exit 3" }] }
  - name: never
    runAfter: [boom]
    taskSpec: { steps: [{ name: s, image: busybox, script: "echo never" }] }
finally:
  - name: report
    params:
      - { name: agg, value: $(tasks.status) }
      - { name: boom, value: $(tasks.boom.status) }
      - { name: never, value: $(tasks.never.status) }
      - { name: ok-result, value: $(tasks.ok.results.v) }
    taskSpec:
      params: [{ name: agg }, { name: boom }, { name: never }, { name: ok-result }]
      steps:
        - name: s
          image: busybox
          script: echo "agg=$(params.agg) boom=$(params.boom) never=$(params.never) ok=$(params.ok-result)"
  - name: on-failure
    when: [{ input: $(tasks.boom.status), operator: in, values: [Failed] }]
    taskSpec: { steps: [{ name: s, image: busybox, script: "echo notify" }] }
  - name: on-success
    when: [{ input: $(tasks.status), operator: in, values: [Succeeded] }]
    taskSpec: { steps: [{ name: s, image: busybox, script: "echo unreachable" }] }
`)]);
    expect(r.status).toBe('Failed');
    expect(r.reason).toBe('Failed');
    expect(r.tasks.boom).toMatchObject({ status: 'Failed', reason: 'Failed' });
    expect(r.tasks.boom.steps[0]).toMatchObject({ exitCode: 3, reason: 'Error', log: 'failing' });
    expect(r.tasks.never).toMatchObject({ status: 'Skipped', reason: 'PipelineRun was stopping' });
    expect(r.tasks.report.isFinally).toBe(true);
    expect(stepLog(r, 'report')).toBe('agg=Failed boom=Failed never=None ok=fine');
    expect(r.tasks['on-failure'].status).toBe('Succeeded');
    expect(r.tasks['on-success'].status).toBe('Skipped');
    expect(r.tasks.boom.finishedAt!.getTime()).toBeLessThanOrEqual(r.tasks.report.startedAt!.getTime());
  });

  test('retries re-run the whole task; $(context.task.retry-count) counts', async () => {
    const r = await run([pipelineRun(`
tasks:
  - name: flaky
    retries: 2
    taskSpec:
      steps:
        - { name: first, image: busybox, script: "echo attempt $(context.task.retry-count)" }
        - { name: check, image: busybox, script: '[ "$(context.task.retry-count)" -ge 1 ]' }
  - name: broken
    runAfter: [flaky]
    retries: 1
    taskSpec: { steps: [{ name: s, image: busybox, script: "exit 1" }] }
`)]);
    expect(r.tasks.flaky).toMatchObject({ status: 'Succeeded', attempts: 2 });
    expect(stepLog(r, 'flaky')).toBe('attempt 1');
    expect(r.log).toContain('[flaky/first] attempt 0');
    expect(r.tasks.broken).toMatchObject({ status: 'Failed', attempts: 2 });
    expect(r.status).toBe('Failed');
  });

  test('step timeout and task timeout kill the whole process tree', async () => {
    const claimDir = path.join(workDir, 'timeout-claim');
    fs.mkdirSync(claimDir, { recursive: true });
    fs.chmodSync(claimDir, 0o777);
    const ws = 'workspaces: [{ name: ws, persistentVolumeClaim: { claimName: timeouts } }]';
    const slow = (marker: string) => `"(sleep 2; echo late > $(workspaces.ws.path)/${marker}) & sleep 30"`;
    const started = Date.now();
    const [stepTimeout, taskTimeout] = await Promise.all([
      run([pipelineRun(`
workspaces: [{ name: ws }]
tasks:
  - name: t
    workspaces: [{ name: ws }]
    taskSpec:
      workspaces: [{ name: ws }]
      steps:
        - name: slow
          image: busybox
          timeout: 1s
          script: ${slow('step-late')}
        - { name: after, image: busybox, script: echo after }
`, ws, 'step-timeout')], { claims: { timeouts: claimDir } }),
      run([pipelineRun(`
workspaces: [{ name: ws }]
tasks:
  - name: t
    timeout: 1s
    workspaces: [{ name: ws }]
    taskSpec:
      workspaces: [{ name: ws }]
      steps:
        - name: slow
          image: busybox
          script: ${slow('task-late')}
`, ws, 'task-timeout')], { claims: { timeouts: claimDir } }),
    ]);
    expect(Date.now() - started).toBeLessThan(8000);
    expect(stepTimeout.tasks.t).toMatchObject({ status: 'Failed', reason: 'Failed' });
    expect(stepTimeout.tasks.t.steps.map((s) => s.reason)).toEqual(['TimeoutExceeded', 'Skipped']);
    expect(taskTimeout.tasks.t).toMatchObject({ status: 'TimedOut', reason: 'TaskRunTimeout' });
    // the background subshells died with their steps
    await new Promise((resolve) => setTimeout(resolve, 2500));
    expect(fs.readdirSync(claimDir)).toEqual([]);
  });

  test('timeouts.tasks cancels running tasks, then finally runs; the PipelineRun fails with PipelineRunTimeout', async () => {
    const r = await run([pipelineRun(`
tasks:
  - name: slow
    taskSpec: { steps: [{ name: s, image: busybox, script: "sleep 30" }] }
  - name: next
    runAfter: [slow]
    taskSpec: { steps: [{ name: s, image: busybox, script: "echo next" }] }
finally:
  - name: fin
    params: [{ name: slow, value: $(tasks.slow.status) }]
    taskSpec: { params: [{ name: slow }], steps: [{ name: s, image: busybox, script: "echo slow=$(params.slow)" }] }
`, 'timeouts: { pipeline: 20s, tasks: 1s, finally: 10s }')]);
    expect(r.status).toBe('Failed');
    expect(r.reason).toBe('PipelineRunTimeout');
    expect(r.tasks.slow).toMatchObject({ status: 'TimedOut', reason: 'TaskRunCancelled' });
    expect(r.tasks.next.status).toBe('Skipped');
    expect(stepLog(r, 'fin')).toBe('slow=Failed');
    expect(r.finishedAt.getTime() - r.startedAt.getTime()).toBeLessThan(5000);
  });

  test('maxParallel runs independent tasks concurrently', async () => {
    const sleepy = '{ steps: [{ name: s, image: busybox, script: "sleep 0.5" }] }';
    const r = await run([pipelineRun(`
tasks:
  - { name: a, taskSpec: ${sleepy} }
  - { name: b, taskSpec: ${sleepy} }
  - { name: c, runAfter: [a, b], taskSpec: ${sleepy} }
`)], { maxParallel: 2 });
    const { a, b, c } = r.tasks;
    expect(r.status).toBe('Succeeded');
    expect(a.startedAt!.getTime()).toBeLessThan(b.finishedAt!.getTime());
    expect(b.startedAt!.getTime()).toBeLessThan(a.finishedAt!.getTime());
    expect(c.startedAt!.getTime()).toBeGreaterThanOrEqual(Math.max(a.finishedAt!.getTime(), b.finishedAt!.getTime()));
  });

  test('results above the 4096-byte termination message limit fail the task', async () => {
    const r = await run([pipelineRun(`
tasks:
  - name: t
    taskSpec:
      results: [{ name: big }]
      steps: [{ name: s, image: busybox, script: "yes x | head -c 5000 > $(results.big.path)" }]
`)]);
    expect(r.tasks.t.status).toBe('Failed');
    expect(r.tasks.t.message).toMatch(/Termination message is above max allowed size 4096/);
  });

  test('step onError: continue records the exit code and goes on; pipeline task onError: continue ignores the failure', async () => {
    const r = await run([pipelineRun(`
tasks:
  - name: t
    taskSpec:
      steps:
        - { name: first, image: busybox, onError: continue, script: "echo trying; exit 3" }
        - { name: second, image: busybox, script: 'echo "code=$(cat $(steps.step-first.exitCode.path))"' }
  - name: allowed-to-fail
    onError: continue
    taskSpec: { steps: [{ name: s, image: busybox, script: "exit 5" }] }
  - name: after
    runAfter: [allowed-to-fail]
    taskSpec: { steps: [{ name: s, image: busybox, script: "echo still running" }] }
`)]);
    expect(r.status).toBe('Succeeded');
    expect(r.tasks.t.status).toBe('Succeeded');
    expect(r.tasks.t.steps[0]).toMatchObject({ exitCode: 3, reason: 'Continued' });
    expect(stepLog(r, 't', 1)).toBe('code=3');
    expect(r.tasks['allowed-to-fail']).toMatchObject({ status: 'Failed', reason: 'FailureIgnored' });
    expect(r.tasks.after.status).toBe('Succeeded');
    expect(r.message).toContain('Ignored: 1');
  });

  test('stepTemplate is merged into steps (step fields win, env merged by name)', async () => {
    const r = await run([pipelineRun(`
tasks:
  - name: t
    taskSpec:
      stepTemplate:
        env: [{ name: A, value: from-template }, { name: B, value: from-template }]
        securityContext: { runAsUser: 4242 }
      steps:
        - name: s
          image: busybox
          env: [{ name: B, value: from-step }, { name: C, value: "$(B)-expanded" }]
          script: echo "A=$A B=$B C=$C uid=$(id -u)"
        - name: t
          image: busybox
          securityContext: { runAsUser: 4343 }
          script: echo "A=$A uid=$(id -u)"
`)]);
    expect(r.status).toBe('Succeeded');
    expect(stepLog(r, 't', 0)).toBe('A=from-template B=from-step C=from-step-expanded uid=4242');
    expect(stepLog(r, 't', 1)).toBe('A=from-template uid=4343');
  });

  test('a script without shebang runs with /bin/sh and set -e; with a shebang, its interpreter', async () => {
    const r = await run([pipelineRun(`
tasks:
  - name: t
    taskSpec:
      steps:
        - name: bash
          image: busybox
          script: |
            #!/bin/bash
            false
            echo "still running in $BASH_VERSION" | cut -c1-16
        - name: sh
          image: busybox
          script: |
            echo before
            false
            echo not-reached
        - { name: skipped, image: busybox, script: echo skipped }
`)]);
    expect(r.tasks.t.status).toBe('Failed');
    expect(stepLog(r, 't', 0)).toBe('still running in');
    expect(r.tasks.t.steps[1]).toMatchObject({ exitCode: 1, reason: 'Error', log: 'before' });
    expect(r.tasks.t.steps[2]).toMatchObject({ exitCode: null, reason: 'Skipped' });
  });

  test('identity: runAsUser/runAsGroup/fsGroup/supplementalGroups from pod template, taskRunSpecs and steps', async () => {
    const id = '{ name: id, image: busybox, script: \'echo "uid=$(id -u) gid=$(id -g) groups=$(id -G) home=$HOME umask=$(umask)"\' }';
    const r = await run([pipelineRun(`
tasks:
  - name: pod-level
    taskSpec: { steps: [${id}] }
  - name: step-level
    taskSpec:
      steps:
        - name: id
          image: busybox
          securityContext: { runAsUser: 1234, runAsGroup: 5678, allowPrivilegeEscalation: false, capabilities: { drop: [ALL] } }
          script: 'echo "uid=$(id -u) gid=$(id -g) groups=$(id -G)"; grep -E "^(CapEff|NoNewPrivs)" /proc/self/status | tr -s "\\t" " "'
  - name: override
    taskSpec: { steps: [${id}] }
`, `
taskRunTemplate:
  podTemplate:
    securityContext: { runAsUser: 1001, runAsGroup: 2002, fsGroup: 3003, supplementalGroups: [4004] }
taskRunSpecs:
  - pipelineTaskName: override
    podTemplate:
      securityContext: { runAsUser: 5005 }
`)]);
    expect(r.status).toBe('Succeeded');
    expect(stepLog(r, 'pod-level')).toBe('uid=1001 gid=2002 groups=2002 3003 4004 home=/ umask=0022');
    expect(r.tasks['pod-level'].steps[0]).toMatchObject({ uid: 1001, gid: 2002, groups: [3003, 4004] });
    expect(stepLog(r, 'step-level')).toBe('uid=1234 gid=5678 groups=5678 3003 4004\nCapEff: 0000000000000000\nNoNewPrivs: 1');
    expect(stepLog(r, 'override')).toBe('uid=5005 gid=0 groups=0 home=/ umask=0022');

    // nothing set anywhere: OpenShift-like arbitrary uid with gid 0
    const d = await run([pipelineRun(`tasks: [{ name: t, taskSpec: { steps: [${id}] } }]`)]);
    expect(stepLog(d, 't')).toBe('uid=1000970000 gid=0 groups=0 home=/ umask=0022');
    const custom = await run([pipelineRun(`tasks: [{ name: t, taskSpec: { steps: [${id}] } }]`)], { defaultUid: 1000650000, defaultFsGroup: 1000650000 });
    expect(stepLog(custom, 't')).toBe('uid=1000650000 gid=0 groups=0 1000650000 home=/ umask=0022');
  });

  describe('strict modes: as a cluster is', () => {
    const SCC = { uidRange: '1000650000/10000' };
    const idStep = '{ name: id, image: busybox, script: \'echo "uid=$(id -u) gid=$(id -g) groups=$(id -G) home=$HOME"; grep -E "^(CapEff|NoNewPrivs)" /proc/self/status | tr -s "\\t" " "\' }';

    test('SCC restricted-v2: unset uid and fsGroup get the range\'s first value; capabilities dropped, no privilege escalation', async () => {
      const r = await run([pipelineRun(`tasks: [{ name: t, taskSpec: { steps: [${idStep}] } }]`, 'taskRunTemplate: { podTemplate: { securityContext: { fsGroupChangePolicy: OnRootMismatch } } }')], { scc: SCC });
      expect(r.status).toBe('Succeeded');
      expect(stepLog(r, 't')).toBe('uid=1000650000 gid=0 groups=0 1000650000 home=/\nCapEff: 0000000000000000\nNoNewPrivs: 1');
    });

    test('SCC restricted-v2: an fsGroup or uid outside the range, an added capability or a privileged step is refused at pod creation', async () => {
      const outside = await run([pipelineRun(`tasks: [{ name: t, taskSpec: { steps: [${idStep}] } }]`, 'taskRunTemplate: { podTemplate: { securityContext: { fsGroup: 1000970000 } } }')], { scc: SCC });
      expect(outside.status).toBe('Failed');
      expect(outside.tasks.t).toMatchObject({ status: 'Failed', reason: 'PodCreationFailed', steps: [] });
      expect(outside.tasks.t.message).toContain('unable to validate against any security context constraint');
      expect(outside.tasks.t.message).toContain('.spec.securityContext.fsGroup: Invalid value: []int64{1000970000}: 1000970000 is not an allowed group');
      const step = await run([pipelineRun(`
tasks:
  - name: t
    taskSpec:
      steps:
        - { name: a, image: busybox, script: 'true', securityContext: { runAsUser: 1000, capabilities: { add: [SETFCAP] } } }
        - { name: b, image: busybox, script: 'true', securityContext: { privileged: true } }
`)], { scc: SCC });
      expect(step.tasks.t.reason).toBe('PodCreationFailed');
      expect(step.tasks.t.message).toContain('.containers[0].runAsUser: Invalid value: 1000: must be in the ranges: [1000650000, 1000659999]');
      expect(step.tasks.t.message).toContain('.containers[0].capabilities.add: Invalid value: "SETFCAP": capability may not be added');
      expect(step.tasks.t.message).toContain('.containers[1].privileged: Invalid value: true: Privileged containers are not allowed');
      // Without the SCC mode the same run is accepted (vanilla Kubernetes has no ranges).
      const plain = await run([pipelineRun(`tasks: [{ name: t, taskSpec: { steps: [${idStep}] } }]`, 'taskRunTemplate: { podTemplate: { securityContext: { fsGroup: 1000970000 } } }')]);
      expect(plain.status).toBe('Succeeded');
    });

    test('Tekton credentials: the account\'s docker secrets (not its imagePullSecrets) in $(credentials.path); copied into $HOME only where it is writable; the token mounted', async () => {
      const cfg = (host: string) => ({ '.dockerconfigjson': JSON.stringify({ auths: { [host]: { auth: Buffer.from('u:p').toString('base64') } } }) });
      const script = [
        'echo "path=$(credentials.path)"',
        'echo "creds=$(cat $(credentials.path)/.docker/config.json)"',
        'echo "mode=$(stat -c %a $(credentials.path)/.docker/config.json) owner=$(stat -c %u $(credentials.path)/.docker/config.json)"',
        'echo "home=$HOME"; ls "$HOME/.docker/config.json" 2>/dev/null || echo "no copy in home"',
        'echo "token=$(cat /var/run/secrets/kubernetes.io/serviceaccount/token) ns=$(cat /var/run/secrets/kubernetes.io/serviceaccount/namespace)"',
      ].join('\n');
      const steps = `
        - name: as-cluster
          image: busybox
          script: |
${script.split('\n').map((l) => `            ${l}`).join('\n')}
        - name: writable-home
          image: busybox
          env: [{ name: HOME, value: /tmp/home }]
          script: 'cat "$HOME/.docker/config.json"'
`;
      const r = await run([pipelineRun(`
tasks:
  - name: t
    taskSpec:
      steps:${steps}
`, 'taskRunTemplate: { serviceAccountName: pipeline }')], {
        scc: SCC,
        secrets: { 'linked': cfg('linked.example'), 'pull-only': cfg('pull.example') },
        serviceAccounts: { pipeline: { secrets: ['linked'], imagePullSecrets: ['pull-only'], token: 'sa-token-value' } },
      });
      expect(r.status).toBe('Succeeded');
      const log = stepLog(r, 't', 0);
      expect(log).toContain('path=/tekton/creds');
      expect(log).toContain('creds={"auths":{"linked.example":');
      expect(log).not.toContain('pull.example');
      expect(log).toContain('mode=600 owner=1000650000');
      expect(log).toContain('home=/');
      expect(log).toContain('warning: unsuccessful cred copy: ".docker" from "/tekton/creds" to "/"');
      expect(log).toContain('no copy in home');
      expect(log).toContain('token=sa-token-value ns=default');
      expect(stepLog(r, 't', 1)).toContain('linked.example');
      // A service account the runner does not know has no credentials and no token.
      const none = await run([pipelineRun('tasks: [{ name: t, taskSpec: { steps: [{ name: s, image: busybox, script: \'ls /tekton/creds /var/run/secrets/kubernetes.io/serviceaccount 2>&1 || true\' }] } }]')], { scc: SCC });
      expect(stepLog(none, 't')).toContain('No such file or directory');
    });
  });

  test('runAsNonRoot with uid 0 fails like kubelet (CreateContainerConfigError); root steps keep container caps only', async () => {
    const r = await run([pipelineRun(`
tasks:
  - name: root-ok
    taskSpec:
      steps:
        - name: s
          image: busybox
          securityContext: { runAsUser: 0 }
          script: 'id -u; grep CapEff /proc/self/status | tr -s "\\t" " "'
  - name: nonroot
    runAfter: [root-ok]
    taskSpec:
      steps:
        - { name: s, image: busybox, securityContext: { runAsUser: 0, runAsNonRoot: true }, script: echo never }
`)]);
    expect(stepLog(r, 'root-ok')).toBe('0\nCapEff: 00000000000005fb');
    expect(r.tasks.nonroot).toMatchObject({ status: 'Failed', reason: 'CreateContainerConfigError' });
    expect(r.tasks.nonroot.message).toContain('runAsNonRoot');
    expect(r.tasks.nonroot.steps).toEqual([]);
  });

  test('fsGroup: a file written by one uid is group-owned by fsGroup and readable by another uid; without fsGroup: Permission denied', async () => {
    const pipeline = `
workspaces: [{ name: data }]
tasks:
  - name: writer
    workspaces: [{ name: data }]
    taskSpec:
      workspaces: [{ name: data }]
      steps:
        - name: write
          image: busybox
          securityContext: { runAsUser: 1001 }
          script: |
            umask 077
            mkdir -p $(workspaces.data.path)/model
            echo weights > $(workspaces.data.path)/model/file.bin
            stat -c '%u %g %A' $(workspaces.data.path)/model $(workspaces.data.path)/model/file.bin
  - name: reader
    runAfter: [writer]
    workspaces: [{ name: data }]
    taskSpec:
      workspaces: [{ name: data }]
      steps:
        - name: read
          image: busybox
          securityContext: { runAsUser: 2002 }
          script: |
            stat -c '%u %g %A' $(workspaces.data.path)/model/file.bin
            cat $(workspaces.data.path)/model/file.bin
`;
    const vct = 'workspaces: [{ name: data, volumeClaimTemplate: { spec: { accessModes: [ReadWriteOnce] } } }]';
    const ok = await run([pipelineRun(pipeline, `
${vct}
taskRunTemplate:
  podTemplate:
    securityContext: { fsGroup: 3003 }
`)]);
    expect(ok.status).toBe('Succeeded');
    // setgid directory makes new files inherit the fsGroup; the writer's umask 077 hides them from "other"
    expect(stepLog(ok, 'writer')).toBe('1001 3003 drwx--S---\n1001 3003 -rw-------');
    // at the reader's pod start kubelet re-applies fsGroup (policy Always): g+rw on files, g+rwx and setgid on dirs
    expect(stepLog(ok, 'reader')).toBe('1001 3003 -rw-rw----\nweights');

    const denied = await run([pipelineRun(pipeline, vct)]);
    expect(denied.status).toBe('Failed');
    expect(denied.tasks.writer.status).toBe('Failed');
    expect(stepLog(denied, 'writer')).toMatch(/Permission denied/);
    expect(denied.tasks.reader.reason).toBe('PipelineRun was stopping');

    // fsGroupChangePolicy OnRootMismatch: the root already has the group, nothing is changed, the reader is locked out
    const mismatch = await run([pipelineRun(pipeline, `
${vct}
taskRunTemplate:
  podTemplate:
    securityContext: { fsGroup: 3003, fsGroupChangePolicy: OnRootMismatch }
`)]);
    expect(mismatch.tasks.writer.status).toBe('Succeeded');
    expect(mismatch.tasks.reader.status).toBe('Failed');
    expect(stepLog(mismatch, 'reader')).toMatch(/Permission denied/);
  });

  test('a PVC claim dir persists between runs while a volumeClaimTemplate is fresh each run', async () => {
    const claimDir = path.join(workDir, 'claims', 'model-cache');
    fs.mkdirSync(claimDir, { recursive: true });
    fs.writeFileSync(path.join(claimDir, 'stale.txt'), 'from a previous run');
    const mk = () => pipelineRun(`
workspaces: [{ name: cache }, { name: scratch }]
tasks:
  - name: t
    workspaces: [{ name: cache }, { name: scratch }]
    taskSpec:
      workspaces: [{ name: cache }, { name: scratch }]
      steps:
        - name: s
          image: busybox
          script: |
            echo "claim=$(workspaces.cache.claim) cache=$(ls -A $(workspaces.cache.path) | wc -l) scratch=$(ls -A $(workspaces.scratch.path) | wc -l)"
            touch $(workspaces.cache.path)/marker-$(context.pipelineRun.uid) $(workspaces.scratch.path)/marker
`, `
${FS_GROUP}
workspaces:
  - { name: cache, persistentVolumeClaim: { claimName: model-cache } }
  - { name: scratch, volumeClaimTemplate: { spec: { accessModes: [ReadWriteOnce] } } }
`);
    const claims = { 'model-cache': claimDir };
    const r1 = await run([mk()], { claims });
    const r2 = await run([mk()], { claims });
    expect(stepLog(r1, 't')).toBe('claim=model-cache cache=1 scratch=0');
    expect(stepLog(r2, 't')).toBe('claim=model-cache cache=2 scratch=0');
    expect(fs.readdirSync(claimDir).sort()).toEqual([`marker-${r1.pipelineRun.uid}`, `marker-${r2.pipelineRun.uid}`, 'stale.txt'].sort());
    await expect(run([mk()])).rejects.toThrow(/model-cache.*not in options.claims/);
  });

  test('secret and configMap: workspace files, env valueFrom, volumes at absolute mount paths; the host is untouched', async () => {
    const hostCert = '/etc/containers/certs.d/registry.example/ca.crt';
    const hostPathsBefore = ['/workspace', '/tekton', hostCert].map((p) => fs.existsSync(p));
    const r = await run([pipelineRun(`
workspaces: [{ name: creds }]
tasks:
  - name: t
    workspaces: [{ name: creds }]
    taskSpec:
      workspaces: [{ name: creds, readOnly: true }]
      volumes:
        - { name: certs, configMap: { name: registry-certs, items: [{ key: ca, path: registry.example/ca.crt }] } }
        - { name: tmp, emptyDir: {} }
      steps:
        - name: s
          image: busybox
          env:
            - { name: TOKEN, valueFrom: { secretKeyRef: { name: hub-token, key: token } } }
            - { name: LEVEL, valueFrom: { configMapKeyRef: { name: settings, key: level } } }
            - { name: POD, valueFrom: { fieldRef: { fieldPath: metadata.name } } }
            - { name: PR, valueFrom: { fieldRef: { fieldPath: "metadata.labels['tekton.dev/pipelineRun']" } } }
          volumeMounts:
            - { name: certs, mountPath: /etc/containers/certs.d }
            - { name: tmp, mountPath: /var/tmp }
          script: |
            ls $(workspaces.creds.path)
            echo "file=$(cat $(workspaces.creds.path)/token) mode=$(stat -c %a $(workspaces.creds.path)/token)"
            echo "env=$TOKEN level=$LEVEL pod=$POD pr=$PR"
            cat ${hostCert}
            touch /var/tmp/ok && echo var-tmp-writable
            touch $(workspaces.creds.path)/x 2>/dev/null || echo creds-read-only
`, `
${FS_GROUP}
workspaces: [{ name: creds, secret: { secretName: hub-token, defaultMode: 256 } }]
`)], {
      secrets: { 'hub-token': { token: 's3cr3t', user: 'me' } },
      configMaps: { 'registry-certs': { ca: '-----CERT-----\n' }, 'settings': { level: 'debug' } },
    });
    expect(r.status).toBe('Succeeded');
    expect(stepLog(r, 't')).toBe([
      'token', 'user',
      'file=s3cr3t mode=440',
      'env=s3cr3t level=debug pod=test-run-t-pod pr=test-run',
      '-----CERT-----',
      'var-tmp-writable',
      'creds-read-only',
    ].join('\n'));
    // mount points were created inside the step's own root, not on the host
    expect(['/workspace', '/tekton', hostCert].map((p) => fs.existsSync(p))).toEqual(hostPathsBefore);
  });

  test('unresolved references are an error before anything runs; shell $(...) is left alone', async () => {
    const bad = await run([pipelineRun(`
tasks:
  - name: t
    taskSpec:
      params: [{ name: known, default: x }]
      steps:
        - { name: s, image: busybox, script: "echo $(params.known) $(params.nope) $(results.missing.path) $(date +%s)" }
  - name: u
    params: [{ name: p, value: $(tasks.ghost.results.x) }]
    taskSpec: { params: [{ name: p }], steps: [{ name: s, image: busybox, script: "echo $(params.p)" }] }
`)]);
    expect(bad.status).toBe('Failed');
    expect(bad.reason).toBe('PipelineValidationFailed');
    expect(bad.message).toContain('$(params.nope)');
    expect(bad.message).toContain('$(results.missing.path)');
    expect(bad.message).toContain('$(tasks.ghost.results.x)');
    expect(bad.message).not.toContain('date');
    expect(bad.tasks).toEqual({});

    const good = await run([pipelineRun(`
tasks:
  - name: t
    taskSpec:
      steps: [{ name: s, image: busybox, script: 'echo "$(echo shell) $(context.pipelineRun.name) $(context.taskRun.name) $(context.pipeline.name)"' }]
`)]);
    expect(stepLog(good, 't')).toBe('shell test-run test-run-t test-run');
  });

  test('a declared result that was not produced fails its consumer with InvalidTaskResultReference', async () => {
    const r = await run([pipelineRun(`
tasks:
  - name: producer
    taskSpec: { results: [{ name: r }], steps: [{ name: s, image: busybox, script: "echo forgot the result" }] }
  - name: consumer
    params: [{ name: v, value: $(tasks.producer.results.r) }]
    taskSpec: { params: [{ name: v }], steps: [{ name: s, image: busybox, script: "echo $(params.v)" }] }
finally:
  - name: cleanup
    taskSpec: { steps: [{ name: s, image: busybox, script: "echo cleanup" }] }
`)]);
    expect(r.tasks.producer.status).toBe('Succeeded');
    expect(r.tasks.consumer).toMatchObject({ status: 'Failed', reason: 'InvalidTaskResultReference', attempts: 0 });
    expect(r.status).toBe('Failed');
    expect(r.reason).toBe('InvalidTaskResultReference');
    expect(r.tasks.cleanup.status).toBe('Succeeded');
  });

  test('stepOverrides replace a step before substitution', async () => {
    const r = await run([pipelineRun(`
params: [{ name: model, default: org/model }]
tasks:
  - name: fetch
    params: [{ name: model, value: $(params.model) }]
    taskSpec:
      params: [{ name: model }]
      steps: [{ name: download, image: hub, script: "exit 1" }]
`)], {
      stepOverrides: (task, step, spec) => (task === 'fetch' && step === 'download'
        ? { ...spec, script: 'echo "fixture for $(params.model)"' } : undefined),
    });
    expect(r.status).toBe('Succeeded');
    expect(stepLog(r, 'fetch')).toBe('fixture for org/model');
  });

  test('measures each step\'s storage writes: files on a volume count, tmpfs /tmp does not', async () => {
    const r = await run([pipelineRun(`
workspaces: [{ name: ws }]
tasks:
  - name: io
    workspaces: [{ name: ws, workspace: ws }]
    taskSpec:
      workspaces: [{ name: ws }]
      steps:
        - { name: disk, image: busybox, script: "dd if=/dev/zero of=$(workspaces.ws.path)/f bs=1M count=8 2>/dev/null; sync" }
        - { name: tmpfs, image: busybox, script: "dd if=/dev/zero of=/tmp/f bs=1M count=8 2>/dev/null" }
`, `${FS_GROUP}
workspaces:
  - name: ws
    volumeClaimTemplate: { spec: { accessModes: [ReadWriteOnce], resources: { requests: { storage: 1Gi } } } }
`)]);
    expect(r.status).toBe('Succeeded');
    const [disk, tmpfs] = r.tasks.io.steps;
    const MiB = 1024 * 1024;
    expect(disk.io!.writeBytes).toBeGreaterThanOrEqual(8 * MiB);
    expect(disk.io!.writeBytes).toBeLessThan(9 * MiB);
    expect(tmpfs.io!.writeBytes).toBeLessThan(MiB);
  });
});
