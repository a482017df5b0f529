/**
 * The runner builds each TaskRun's pod as Tekton and the kubelet do: place-scripts' argument through the kernel,
 * termination messages within both limits, containers' limits in real cgroups, pipelines-scc identities.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { kubeletMessageShare, placeScriptsArgument, stepTerminationMessage, tektonInitContainers } from './tekton-pod';
import { RunPipelineOptions, RunPipelineResult, runPipeline, sandboxSupport } from './tekton-runner';
import { IMAGE_USERS } from '../../../src/modelcar/image-inventory';

// The sandbox needs root; without it these tests fail with the reason, they never skip.
test('the sandbox the runner needs is available', () => {
  expect(sandboxSupport().reason ?? 'ok').toBe('ok');
});

let workDir: string;
beforeAll(() => {
  workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tekton-pod-test-'));
});
afterAll(() => {
  if (workDir) fs.rmSync(workDir, { recursive: true, force: true });
});

function pipelineRun(tasks: any[], spec: any = {}): any {
  return { apiVersion: 'tekton.dev/v1', kind: 'PipelineRun', metadata: { name: 'pod-test' }, spec: { ...spec, pipelineSpec: { tasks } } };
}

function task(steps: any[], extra: any = {}): any {
  return { name: 't', taskSpec: { ...extra, steps } };
}

async function run(manifests: any[], opts: Partial<RunPipelineOptions> = {}): Promise<RunPipelineResult> {
  return runPipeline({ manifests, workDir, ...opts });
}

/** This process's cgroups the runner made (named tekton-runner-<pid>-...), in every hierarchy. */
function runnerCgroups(): string[] {
  const found: string[] = [];
  for (const line of fs.readFileSync('/proc/self/cgroup', 'utf8').split('\n').filter(Boolean)) {
    const [, controllers, p] = /^\d+:([^:]*):(.*)$/.exec(line) ?? [];
    for (const c of (controllers ?? '').split(',')) {
      const dir = path.join('/sys/fs/cgroup', c || '', p ?? '');
      try {
        found.push(...fs.readdirSync(dir).filter((n) => n.startsWith(`tekton-runner-${process.pid}-`)).map((n) => path.join(dir, n)));
      } catch {
        // not a mounted hierarchy
      }
    }
  }
  return found;
}

describe('place-scripts', () => {
  test('the argument is Tekton\'s, byte for byte (pkg/pod/script.go), but for the random suffix', () => {
    const { argument, stepFiles } = placeScriptsArgument(
      [{ script: 'echo hi' }, {}, { script: '  #!/usr/bin/env python3\nprint(1)' }],
      [],
      () => 'abcde',
    );
    // base64 of "#!/bin/sh\nset -e\necho hi" and of "  #!/usr/bin/env python3\nprint(1)" (no preamble: TrimSpace
    // starts with #!), both from coreutils' base64
    expect(argument).toBe([
      'scriptfile="/tekton/scripts/script-0-abcde"',
      'touch ${scriptfile} && chmod +x ${scriptfile}',
      'cat > ${scriptfile} << \'_EOF_\'',
      'IyEvYmluL3NoCnNldCAtZQplY2hvIGhp',
      '_EOF_',
      '/tekton/bin/entrypoint decode-script "${scriptfile}"',
      'scriptfile="/tekton/scripts/script-2-abcde"',
      'touch ${scriptfile} && chmod +x ${scriptfile}',
      'cat > ${scriptfile} << \'_EOF_\'',
      'ICAjIS91c3IvYmluL2VudiBweXRob24zCnByaW50KDEp',
      '_EOF_',
      '/tekton/bin/entrypoint decode-script "${scriptfile}"',
      '',
    ].join('\n'));
    expect(stepFiles).toEqual(['/tekton/scripts/script-0-abcde', undefined, '/tekton/scripts/script-2-abcde']);
    // the real suffix: 5 chars of k8s' rand alphabet (pkg/names RestrictLengthWithRandomSuffix)
    expect(placeScriptsArgument([{ script: 'true' }]).stepFiles[0]).toMatch(/^\/tekton\/scripts\/script-0-[bcdfghjklmnpqrstvwxz2456789]{5}$/);
    expect(placeScriptsArgument([{}]).argument).toBe('');
  });

  /**
   * Steps whose place-scripts argument is exactly `bytes` long: one script padded with a comment, plus up to three
   * small ones (each block changes the length modulo 4, base64 only in steps of 4).
   */
  function stepsWithArgument(bytes: number): any[] {
    const suffix = () => 'xxxxx';
    for (let extra = 0; extra < 4; extra++) {
      const small = Array.from({ length: extra }, (_, i) => ({ name: `small-${i}`, image: 'busybox', script: 'true' }));
      const main = (pad: number) => ({ name: 'main', image: 'busybox', script: `echo placed ${pad}\n#${'p'.repeat(pad)}` });
      // a raw script length that is a multiple of 3 keeps base64 free of padding, so each 3 more bytes add 4
      let pad = 0;
      while (Buffer.byteLength(`#!/bin/sh\nset -e\n${main(pad).script}`) % 3 !== 0) pad++;
      const len = (p: number) => placeScriptsArgument([...small, main(p)], [], suffix).argument.length;
      const missing = bytes - len(pad);
      if (missing < 0 || missing % 4 !== 0) continue;
      // the digits of `pad` inside the script change its length too: settle by searching near the estimate
      for (let p = pad + (missing / 4) * 3 - 30; p <= pad + (missing / 4) * 3 + 30; p++) {
        if (p >= 0 && len(p) === bytes) return [...small, main(p)];
      }
    }
    throw new Error(`no steps give a place-scripts argument of ${bytes} bytes`);
  }

  test('an argument over the kernel\'s limit fails the TaskRun with place-scripts\' words; one byte less runs', async () => {
    // MAX_ARG_STRLEN is 131072 bytes with the NUL: a 131071-byte argument is the longest execve takes
    const under = stepsWithArgument(131071);
    const over = stepsWithArgument(131072);
    expect(placeScriptsArgument(under, [], () => 'xxxxx').argument.length).toBe(131071);

    const ok = await run([pipelineRun([task(under)])]);
    expect(ok.tasks.t.pod?.placeScriptsBytes).toBe(131071);
    expect(ok.status).toBe('Succeeded');
    // the step ran the file place-scripts wrote (decoded by the entrypoint stand-in)
    expect(ok.tasks.t.steps.find((s) => s.name === 'main')?.log).toMatch(/^placed \d+$/);

    const refused = await run([pipelineRun([task(over)])]);
    expect(refused.tasks.t.pod?.placeScriptsBytes).toBe(131072);
    expect(refused.tasks.t).toMatchObject({ status: 'Failed', reason: 'Failed', steps: [] });
    expect(refused.tasks.t.message).toMatch(/^init container failed, "place-scripts" exited with code 1/);
    const status = refused.tasks.t.pod?.initContainerStatuses?.[0];
    expect(status).toMatchObject({ name: 'place-scripts', exitCode: 1, reason: 'Error' });
    // the kernel's E2BIG at the container's execve, in runc's words (the shell resolved in the container's PATH)
    expect(status?.log).toMatch(/^exec (\/usr)?\/bin\/sh: argument list too long$/);
  });

  test('place-scripts runs with the pod\'s identity and writes the scripts the steps run, read-only for them', async () => {
    const r = await run([pipelineRun([task([
      { name: 'a', image: 'busybox', script: 'stat -c "%u %a" "$0"; touch "$0" 2>/dev/null || echo read-only' },
    ])], { taskRunTemplate: { podTemplate: { securityContext: { runAsUser: 4321 } } } })]);
    expect(r.status).toBe('Succeeded');
    expect(r.tasks.t.steps[0].log).toBe('4321 755\nread-only');
  });
});

describe('termination messages', () => {
  test('a step\'s message is Tekton\'s JSON: results so far, then StartedAt, escaped like Go', () => {
    const t = new Date('2025-01-02T03:04:05.678Z');
    const m = stepTerminationMessage([{ key: 'a', value: '<x&y>\u2028', type: 1 }], t, 3);
    expect(m.message).toBe('[{"key":"a","value":"\\u003cx\\u0026y\\u003e\\u2028","type":1},'
      + '{"key":"StartedAt","value":"2025-01-02T03:04:05.678Z","type":3},{"key":"ExitCode","value":"3","type":3}]');
    expect(m.bytes).toBe(Buffer.byteLength(m.message));
    expect(m.error).toBeUndefined();
    // results whose JSON is over 4096 bytes are refused; StartedAt is still written
    const big = stepTerminationMessage([{ key: 'a', value: 'x'.repeat(4100), type: 1 }], t);
    expect(big.error).toBe('Termination message is above max allowed size 4096, caused by large task result.');
    expect(big.message).toBe('[{"key":"StartedAt","value":"2025-01-02T03:04:05.678Z","type":3}]');
    // results that fit but leave no room for StartedAt: the deferred write fails
    const edge = stepTerminationMessage([{ key: 'a', value: 'x'.repeat(4060), type: 1 }], t);
    expect(edge.error).toMatch(/^Error while writing message: Termination message is above max allowed size 4096/);
  });

  test('the kubelet\'s share counts steps, sidecars and Tekton\'s init containers', () => {
    expect(tektonInitContainers([{ script: 'x' }, { workingDir: '/workspace/src' }])).toEqual(['prepare', 'place-scripts', 'working-dir-initializer']);
    expect(tektonInitContainers([{ workingDir: '/workspace' }, { workingDir: '/tmp' }])).toEqual(['prepare']);
    expect(tektonInitContainers([{ workingDir: 'src' }])).toEqual(['prepare', 'working-dir-initializer']);
    expect(kubeletMessageShare(12)).toBe(1024);
    expect(kubeletMessageShare(7)).toBe(1755);
  });

  test('results over 4096 bytes fail the step with Tekton\'s words', async () => {
    const r = await run([pipelineRun([task([
      { name: 's', image: 'busybox', script: 'head -c 4100 /dev/zero | tr "\\0" x > $(results.big.path)' },
    ], { results: [{ name: 'big' }] })])]);
    expect(r.tasks.t).toMatchObject({ status: 'Failed', reason: 'Failed' });
    expect(r.tasks.t.message).toMatch(/^"step-s" exited with code 1 \(entrypoint: Termination message is above max allowed size 4096, caused by large task result\. 4\d{3} bytes\)$/);
    expect(r.tasks.t.steps[0]).toMatchObject({ exitCode: 1, reason: 'Error' });
    expect(r.tasks.t.steps[0].log).toBe('Termination message is above max allowed size 4096, caused by large task result.');
  });

  test('results under 4096 but over the kubelet\'s share fail with the kubelet\'s and Tekton\'s words; within it they pass', async () => {
    // 1500 bytes of results: with 10 steps, prepare and place-scripts the share is 12288 / 12 = 1024
    const write = { name: 'w', image: 'busybox', script: 'head -c 1500 /dev/zero | tr "\\0" r > $(results.r.path)' };
    const others = Array.from({ length: 9 }, (_, i) => ({ name: `n${i}`, image: 'busybox', script: 'true' }));
    const cut = await run([pipelineRun([task([write, ...others], { results: [{ name: 'r' }] })])]);
    expect(cut.tasks.t.pod).toMatchObject({ containerCount: 12, terminationMessageShare: 1024, initContainers: ['prepare', 'place-scripts'] });
    expect(cut.tasks.t.status).toBe('Failed');
    expect(cut.tasks.t.steps[0].terminationMessageBytes).toBeGreaterThan(1500);
    expect(cut.tasks.t.message).toContain(`the kubelet cut the termination message of "step-w" (${cut.tasks.t.steps[0].terminationMessageBytes} bytes) to its share of 1024 bytes (12288 / 12 containers`);
    expect(cut.tasks.t.message).toContain('termination message could not be parsed sas JSON: parsing message json: unexpected end of JSON input');
    // the same results in a pod of 3 containers (share 4096) pass and are read back
    const fits = await run([pipelineRun([task([write], { results: [{ name: 'r' }] })])]);
    expect(fits.tasks.t.pod?.terminationMessageShare).toBe(4096);
    expect(fits.status).toBe('Succeeded');
    expect(fits.tasks.t.results.r).toBe('r'.repeat(1500));
  });
});

describe('LimitRange: limits in real cgroups', () => {
  test('a step over its memory limit is OOMKilled by the kernel and reported as the kubelet does', async () => {
    const r = await run([pipelineRun([task([
      { name: 'hog', image: 'busybox', script: 'python3 -c "b = b\'x\' * (256 * 1024 * 1024); print(len(b))"' },
    ])])], { limitRange: { memory: '64Mi', cpu: '1' } });
    expect(r.tasks.t).toMatchObject({ status: 'Failed', reason: 'Failed' });
    expect(r.tasks.t.steps[0]).toMatchObject({ exitCode: 137, reason: 'OOMKilled', limits: { memory: '64Mi', cpu: '1' } });
    expect(r.tasks.t.message).toMatch(/^"step-hog" exited with code 137: OOMKilled/);
    expect(r.tasks.t.steps[0].peakMemoryBytes).toBeLessThanOrEqual(64 * 2 ** 20);
    expect(runnerCgroups()).toEqual([]);
  });

  test('a step within its limit passes with its peak memory recorded; the cpu quota and memory limit are set (read from the step\'s cgroup)', async () => {
    const readBack = [
      'mem=$(sed -n "s/^[0-9]*:\\([^:]*,\\)*memory\\(,[^:]*\\)*://p" /proc/self/cgroup)',
      'cpu=$(sed -n "s/^[0-9]*:\\([^:]*,\\)*cpu\\(,[^:]*\\)*://p" /proc/self/cgroup)',
      'echo "limit=$(cat /sys/fs/cgroup/memory$mem/memory.limit_in_bytes) quota=$(cat /sys/fs/cgroup/cpu$cpu/cpu.cfs_quota_us) period=$(cat /sys/fs/cgroup/cpu$cpu/cpu.cfs_period_us)"',
      'python3 -c "b = b\'x\' * (32 * 1024 * 1024); print(len(b))"',
    ].join('\n');
    const r = await run([pipelineRun([task([
      { name: 'fits', image: 'busybox', script: readBack },
      // a step's own limit wins over the LimitRange default (per resource)
      { name: 'own', image: 'busybox', script: 'true', computeResources: { limits: { memory: '128Mi' } } },
    ])])], { limitRange: { memory: '256Mi', cpu: '500m' } });
    expect(r.status).toBe('Succeeded');
    const fits = r.tasks.t.steps[0];
    expect(fits.log).toBe(`limit=${256 * 2 ** 20} quota=50000 period=100000\n${32 * 2 ** 20}`);
    expect(fits.cgroup).toMatchObject({ memoryLimitBytes: 256 * 2 ** 20, cpuQuotaUs: 50000, cpuPeriodUs: 100000 });
    expect(fits.peakMemoryBytes).toBeGreaterThan(32 * 2 ** 20);
    expect(fits.peakMemoryBytes).toBeLessThan(256 * 2 ** 20);
    expect(r.tasks.t.steps[1]).toMatchObject({ limits: { memory: '128Mi', cpu: '500m' }, cgroup: { memoryLimitBytes: 128 * 2 ** 20 } });
    expect(runnerCgroups()).toEqual([]);
  });

  test('without a LimitRange or limits of its own a step runs in no cgroup of the runner\'s', async () => {
    const r = await run([pipelineRun([task([{ name: 's', image: 'busybox', script: 'true' }])])]);
    expect(r.status).toBe('Succeeded');
    expect(r.tasks.t.steps[0].cgroup).toBeUndefined();
    expect(r.tasks.t.steps[0].peakMemoryBytes).toBeUndefined();
  });
});

describe('pipelines-scc', () => {
  const SCC = { uidRange: '1000650000/10000', supplementalGroups: '1000650000/10000', policy: 'pipelines-scc' as const };
  const SKOPEO = 'registry.access.redhat.com/ubi9/skopeo@sha256:577a988b42ae430f0f9d99bae5232b517ceaea6a7b884ec443fe8e636528e291';
  const PYTHON = 'registry.access.redhat.com/ubi9/python-312@sha256:83b01cf47b22e6ce98a0a4802772fb3d4b7e32280e3a1b7ffcd785e01956e1cb';
  const id = 'echo "$(id -u) $(id -g) $(id -G)"; grep -E "^(CapBnd|NoNewPrivs)" /proc/self/status | tr -s "\\t" " "';

  test('each step runs as its image\'s USER, with the range\'s first value as fsGroup, SETFCAP added and MKNOD dropped', async () => {
    const r = await run([pipelineRun([task([
      { name: 'skopeo', image: SKOPEO, script: id },
      { name: 'python', image: PYTHON, script: id },
    ])])], { scc: SCC, imageUsers: IMAGE_USERS });
    expect(r.status).toBe('Succeeded');
    expect(r.tasks.t.pod?.scc).toBe('pipelines-scc');
    const [skopeo, python] = r.tasks.t.steps;
    // the bounding set's bits, lowest first
    const capBnd = (log: string) => BigInt(`0x${/CapBnd: ([0-9a-f]+)/.exec(log)![1]}`).toString(2).split('').reverse();
    expect(skopeo.log.split('\n')[0]).toBe('0 0 0 1000650000');
    expect(python.log.split('\n')[0]).toBe('1001 0 0 1000650000');
    // bits: CAP_MKNOD 27, CAP_SETFCAP 31, CAP_CHOWN 0; privilege escalation is allowed (no no_new_privs)
    expect(capBnd(skopeo.log)[31]).toBe('1');
    expect(capBnd(skopeo.log)[27] ?? '0').toBe('0');
    expect(capBnd(skopeo.log)[0]).toBe('1');
    expect(skopeo.log).toContain('NoNewPrivs: 0');
  });

  test('a privileged step is refused in the SCCs\' words; an image with no known user fails loudly', async () => {
    const privileged = await run([pipelineRun([task([{ name: 'p', image: SKOPEO, script: 'true', securityContext: { privileged: true } }])])], { scc: SCC, imageUsers: IMAGE_USERS });
    expect(privileged.tasks.t).toMatchObject({ status: 'Failed', reason: 'PodCreationFailed', steps: [] });
    expect(privileged.tasks.t.message).toContain('provider "pipelines-scc": .containers[0].privileged: Invalid value: true: Privileged containers are not allowed');
    expect(privileged.tasks.t.message).toContain('provider restricted-v2: .containers[0].privileged: Invalid value: true: Privileged containers are not allowed');
    const unknown = await run([pipelineRun([task([{ name: 'u', image: 'quay.io/example/unknown:1', script: 'true' }])])], { scc: SCC, imageUsers: IMAGE_USERS });
    expect(unknown.tasks.t).toMatchObject({ status: 'Failed', reason: 'ImageUserUnknown' });
    expect(unknown.tasks.t.message).toContain('the user of image "quay.io/example/unknown:1" is not known');
    const noTable = await run([pipelineRun([task([{ name: 'u', image: SKOPEO, script: 'true' }])])], { scc: SCC });
    expect(noTable.tasks.t.reason).toBe('ImageUserUnknown');
  });

  test('a pod pipelines-scc refuses but restricted-v2 admits gets restricted-v2 (a range uid), like OpenShift\'s SCC ordering', async () => {
    const r = await run([pipelineRun([task([
      { name: 'n', image: PYTHON, script: 'id -u', securityContext: { capabilities: { add: ['NET_BIND_SERVICE'] } } },
    ])])], { scc: SCC, imageUsers: IMAGE_USERS });
    expect(r.status).toBe('Succeeded');
    expect(r.tasks.t.pod?.scc).toBe('restricted-v2');
    expect(r.tasks.t.steps[0].log).toBe('1000650000');
  });
});

