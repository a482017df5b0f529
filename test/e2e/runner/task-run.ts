/**
 * Runs one TaskRun (all its attempts): substitution, identity, volumes, steps, results.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { CgroupError, cgroupOutcome, CgroupSettings, ContainerCgroup, createCgroup, removeCgroup } from './cgroup';
import { DEFAULT_CAPABILITIES, runInSandbox, runtimeExecInput, RUNTIME_EXEC, SandboxMount, SandboxResult } from './sandbox';
import {
  collectTektonRefs, evaluateWhen, mapResolver, ParamValue, paramResolver, parseDuration,
  Resolver, resultPathKeys, substArray, substString, SubstitutionError,
} from './substitution';
import {
  ENTRYPOINT_STAND_IN, kubeletMessageShare, placeScriptsArgument, ResourceAmounts, resourceAmounts, RunResult, SCRIPTS_DIR,
  StepTerminationMessage, stepTerminationMessage, TEKTON_BIN_DIR, tektonInitContainers,
} from './tekton-pod';
import { HostMount, ImageUser, LimitRangeOptions, PodRecord, SccOptions, ServiceAccountOptions, StepRecord, TaskRunRecord, TaskStatus } from './types';
import { applyFsGroup, ensureSubPath, makeEmptyDir, makeKeyFilesDir, VolumeError, VolumeSource, volumeSourceFrom } from './volumes';

/** Options shared by all TaskRuns of a run. */
export interface RunnerSettings {
  readonly claims: Record<string, string>;
  readonly secrets: Record<string, Record<string, string>>;
  readonly configMaps: Record<string, Record<string, string>>;
  readonly defaultUid: number;
  readonly defaultFsGroup?: number;
  readonly env: Record<string, string>;
  readonly stepOverrides?: (task: string, step: string, stepSpec: any) => any | undefined;
  readonly hostMounts: HostMount[];
  readonly isolateTmp: boolean;
  readonly scc?: SccOptions;
  readonly serviceAccounts?: Record<string, ServiceAccountOptions>;
  readonly limitRange?: LimitRangeOptions;
  readonly imageUsers?: Record<string, ImageUser>;
  readonly log: (line: string) => void;
}

/** A task workspace bound to a volume. */
export interface WorkspaceBinding {
  /** Task workspace name. */
  readonly name: string;
  readonly source: VolumeSource;
  readonly subPath?: string;
  /** Value of $(workspaces.<name>.volume). */
  readonly volumeName: string;
}

export interface TaskRunInput {
  readonly settings: RunnerSettings;
  readonly pipelineRun: { readonly name: string; readonly namespace: string; readonly uid: string; readonly labels: Record<string, string> };
  readonly pipelineName: string;
  readonly pipelineTaskName: string;
  /** Value of $(context.task.name). */
  readonly taskName: string;
  readonly taskRunName: string;
  /** Task spec after pipeline-level substitution (propagated params/results for embedded specs). */
  readonly taskSpec: any;
  /** Task param values, defaults applied. */
  readonly params: Record<string, ParamValue>;
  readonly workspaces: WorkspaceBinding[];
  readonly podTemplate: any;
  readonly retries: number;
  /** Per-attempt timeout in ms (undefined or 0: none). */
  readonly timeoutMs?: number;
  /** Absolute deadline (epoch ms) of the pipeline stage this task belongs to. */
  readonly stageDeadline?: number;
  /** Reason recorded when the stage deadline kills the task. */
  readonly stageDeadlineReason: string;
  readonly baseDir: string;
  readonly isFinally: boolean;
  readonly labels: Record<string, string>;
}

interface Identity {
  uid: number;
  gid: number;
  groups: number[];
  noNewPrivs: boolean;
  capabilities: string[] | 'all';
  readOnlyRootFilesystem: boolean;
  privileged: boolean;
  home: string;
}

/** A container's limits as given (`limits`), as numbers, and whether a cgroup enforces them. */
interface ContainerResources {
  readonly limits: { readonly memory?: string; readonly cpu?: string };
  readonly amounts: ResourceAmounts;
  readonly requestMilliCpu?: number;
  readonly enforced: boolean;
}

/** Tekton's place-scripts init container, as the runner runs it. */
interface PlaceScriptsContainer {
  readonly argument: string;
  readonly stepFiles: Array<string | undefined>;
  readonly id: Identity;
  readonly env: Record<string, string>;
  readonly resources: ContainerResources;
}

interface ContainerRun {
  readonly res: SandboxResult;
  readonly lines: string[];
  readonly startedAt: Date;
  readonly finishedAt: Date;
  readonly oomKilled: boolean;
  readonly peakMemoryBytes?: number;
  readonly cgroup?: CgroupSettings;
}

function describeLimits(r: ContainerResources): string {
  return r.enforced ? ` limits=${Object.entries(r.limits).map(([k, v]) => `${k}:${v}`).join(',')}` : '';
}

function elide(s: string, max = 120): string {
  return s.length > max ? `${s.slice(0, max)}...` : s;
}

/** The image's repository: without digest or tag (a registry's port is not a tag). */
export function imageRepository(image: string): string {
  const noDigest = image.split('@')[0];
  const slash = noDigest.lastIndexOf('/');
  const colon = noDigest.lastIndexOf(':');
  return colon > slash ? noDigest.slice(0, colon) : noDigest;
}

class TaskRunFailure extends Error {
  constructor(readonly reason: string, message: string) {
    super(message);
  }
}

const RESULTS_DIR = '/tekton/results';
const STEPS_DIR = '/tekton/steps';
const HOME_DIR = '/tekton/home';
const WORKSPACE_DIR = '/workspace';
/** Tekton's pipeline.CredsDir: where the entrypoint writes the service account's credentials, `$(credentials.path)`. */
export const CREDS_DIR = '/tekton/creds';
const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** Parse /etc/passwd of the host (our "image"). */
function passwdEntry(uid: number): { gid: number; home: string } | undefined {
  try {
    for (const line of fs.readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const f = line.split(':');
      if (f.length >= 6 && Number(f[2]) === uid) return { gid: Number(f[3]), home: f[5] || '/' };
    }
  } catch {
    // no passwd
  }
  return undefined;
}

function isPlainObject(v: unknown): v is Record<string, any> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function mergeByKey(base: any[] | undefined, over: any[] | undefined, key: string): any[] | undefined {
  if (!base) return over;
  if (!over) return base;
  const out = base.filter((b) => !over.some((o) => o?.[key] === b?.[key]));
  return [...out, ...over];
}

/** Strategic-merge-like merge of the stepTemplate into a step (step wins; env by name, volumeMounts by mountPath). */
export function mergeStepTemplate(template: any, step: any): any {
  if (!template) return structuredClone(step);
  const merge = (t: any, s: any): any => {
    const out: any = structuredClone(t);
    for (const [k, v] of Object.entries(s ?? {})) {
      if (k === 'env' || k === 'envFrom') out[k] = mergeByKey(out[k], v as any[], k === 'env' ? 'name' : '__none__');
      else if (k === 'volumeMounts') out[k] = mergeByKey(out[k], v as any[], 'mountPath');
      else if (isPlainObject(v) && isPlainObject(out[k])) out[k] = merge(out[k], v);
      else out[k] = structuredClone(v);
    }
    return out;
  };
  return merge(template, step);
}

/** Apply one substitution pass to the substitutable fields of a task spec (Tekton's list of fields). */
export function substituteTaskSpec(spec: any, resolver: Resolver, where: string): any {
  const out = structuredClone(spec);
  const str = (v: any, w: string) => (typeof v === 'string' ? substString(v, resolver, w) : v);
  out.steps = (out.steps ?? []).map((s: any, i: number) => {
    const w = `${where} step ${s.name ?? i}`;
    const step = { ...s };
    for (const f of ['image', 'imagePullPolicy', 'script', 'workingDir', 'onError']) step[f] = str(step[f], `${w} ${f}`);
    if (Array.isArray(step.command)) step.command = substArray(step.command, resolver, `${w} command`);
    if (Array.isArray(step.args)) step.args = substArray(step.args, resolver, `${w} args`);
    if (Array.isArray(step.env)) {
      step.env = step.env.map((e: any) => {
        const env = structuredClone(e);
        env.value = str(env.value, `${w} env ${e.name}`);
        for (const ref of ['secretKeyRef', 'configMapKeyRef']) {
          const r = env.valueFrom?.[ref];
          if (r) {
            r.name = str(r.name, `${w} env ${e.name}`);
            r.key = str(r.key, `${w} env ${e.name}`);
          }
        }
        return env;
      });
    }
    if (Array.isArray(step.volumeMounts)) {
      step.volumeMounts = step.volumeMounts.map((m: any) => ({
        ...m,
        name: str(m.name, `${w} volumeMount`),
        mountPath: str(m.mountPath, `${w} volumeMount`),
        subPath: str(m.subPath, `${w} volumeMount`),
      }));
    }
    if (Array.isArray(step.when)) {
      step.when = step.when.map((x: any) => ({
        ...x,
        input: str(x.input, `${w} when`),
        values: Array.isArray(x.values) ? substArray(x.values, resolver, `${w} when`) : x.values,
      }));
    }
    return step;
  });
  if (Array.isArray(out.volumes)) {
    out.volumes = out.volumes.map((v: any) => {
      const vol = structuredClone(v);
      vol.name = str(vol.name, `${where} volume`);
      if (vol.configMap) vol.configMap.name = str(vol.configMap.name, `${where} volume ${vol.name}`);
      if (vol.secret) vol.secret.secretName = str(vol.secret.secretName, `${where} volume ${vol.name}`);
      if (vol.persistentVolumeClaim) vol.persistentVolumeClaim.claimName = str(vol.persistentVolumeClaim.claimName, `${where} volume ${vol.name}`);
      for (const items of [vol.configMap?.items, vol.secret?.items]) {
        for (const it of items ?? []) {
          it.key = str(it.key, `${where} volume ${vol.name}`);
          it.path = str(it.path, `${where} volume ${vol.name}`);
        }
      }
      return vol;
    });
  }
  if (Array.isArray(out.workspaces)) {
    out.workspaces = out.workspaces.map((d: any) => ({ ...d, mountPath: str(d.mountPath, `${where} workspace ${d.name}`) }));
  }
  return out;
}

/** Tekton references left in the substitutable fields of a task spec. */
export function leftoverRefs(spec: any): string[] {
  const fields = {
    steps: (spec.steps ?? []).map((s: any) => [s.image, s.script, s.workingDir, s.onError, s.command, s.args, s.env, s.volumeMounts, s.when]),
    volumes: spec.volumes,
    workspaces: (spec.workspaces ?? []).map((d: any) => d.mountPath),
  };
  return [...new Set(collectTektonRefs(fields))];
}

/** Kubernetes' $(VAR) expansion: known names are replaced, $$ escapes, unknown references stay. */
export function expandEnvRefs(value: string, env: Record<string, string>, names: Set<string>): string {
  return value.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, n) => (m === '$$' ? '$' : names.has(n) ? env[n] : m));
}

export function stepName(step: any, i: number): string {
  return step?.name ? String(step.name) : `unnamed-${i}`;
}

/** The substitution passes of a TaskRun, in Tekton's order. */
export function taskRunResolvers(input: {
  params: Record<string, ParamValue>;
  owner: string;
  context: Record<string, string>;
  spec: any;
  workspaces: Array<{ name: string; bound: boolean; mountPath: string; claim: string; volume: string }>;
}): Resolver[] {
  const results: Record<string, string> = {};
  for (const r of input.spec.results ?? []) Object.assign(results, resultPathKeys(r.name, `${RESULTS_DIR}/${r.name}`));
  const steps: Record<string, string> = {};
  (input.spec.steps ?? []).forEach((s: any, i: number) => {
    steps[`steps.step-${stepName(s, i)}.exitCode.path`] = `${STEPS_DIR}/step-${stepName(s, i)}/exitCode`;
  });
  const ws: Record<string, string> = {};
  for (const w of input.workspaces) {
    ws[`workspaces.${w.name}.path`] = w.bound ? w.mountPath : '';
    ws[`workspaces.${w.name}.bound`] = String(w.bound);
    ws[`workspaces.${w.name}.claim`] = w.claim;
    ws[`workspaces.${w.name}.volume`] = w.volume;
  }
  // $(credentials.path): Tekton substitutes it in steps with pipeline.CredsDir.
  return [paramResolver(input.params, input.owner), mapResolver({ ...input.context, 'credentials.path': CREDS_DIR }), mapResolver(results), mapResolver(steps), mapResolver(ws)];
}

function capName(c: string): string {
  return String(c).toLowerCase().replace(/^cap_/, '');
}

/** Pod template merge: fields of `over` win, env and volumes merged by name. */
export function mergePodTemplates(base: any, over: any): any {
  if (!base) return over ? structuredClone(over) : {};
  if (!over) return structuredClone(base);
  const out = { ...structuredClone(base), ...structuredClone(over) };
  out.env = mergeByKey(base.env, over.env, 'name');
  out.volumes = mergeByKey(base.volumes, over.volumes, 'name');
  return out;
}

export class TaskRunExecutor {
  private readonly log: (line: string) => void;
  private readonly taskRunUid = crypto.randomUUID();

  constructor(private readonly input: TaskRunInput) {
    this.log = input.settings.log;
  }

  async run(): Promise<TaskRunRecord> {
    const inp = this.input;
    const startedAt = new Date();
    const maxAttempts = 1 + Math.max(0, Number(inp.retries) || 0);
    let last: Omit<TaskRunRecord, 'startedAt' | 'finishedAt' | 'attempts'> | undefined;
    let attempts = 0;
    for (let attempt = 0; attempt < maxAttempts; attempt++) {
      if (inp.stageDeadline !== undefined && Date.now() >= inp.stageDeadline && attempt > 0) break;
      attempts++;
      if (attempt > 0) this.log(`[${inp.pipelineTaskName}] retry ${attempt} of ${maxAttempts - 1}`);
      last = await this.runAttempt(attempt);
      if (last.status === 'Succeeded') break;
      if (last.reason === inp.stageDeadlineReason) break; // the pipeline stage is over: no retries
    }
    return { ...last!, startedAt, finishedAt: new Date(), attempts };
  }

  private out(line: string, step?: string) {
    this.log(`[${this.input.pipelineTaskName}${step ? '/' + step : ''}] ${line}`);
  }

  private async runAttempt(attempt: number): Promise<Omit<TaskRunRecord, 'startedAt' | 'finishedAt' | 'attempts'>> {
    const inp = this.input;
    const attemptStart = Date.now();
    const base = { pipelineTask: inp.pipelineTaskName, taskRun: inp.taskRunName, isFinally: inp.isFinally };
    const dir = path.join(inp.baseDir, `attempt-${attempt}`);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });

    // deadline of this attempt
    const ownDeadline = inp.timeoutMs ? attemptStart + inp.timeoutMs : undefined;
    const deadlines = [ownDeadline, inp.stageDeadline].filter((d): d is number => d !== undefined);
    const deadline = deadlines.length ? Math.min(...deadlines) : undefined;
    const deadlineReason = () => (ownDeadline !== undefined && deadline === ownDeadline ? 'TaskRunTimeout' : inp.stageDeadlineReason);

    let spec: any;
    let steps: any[];
    let identities: Identity[];
    let envs: Array<Record<string, string>>;
    let mounts: SandboxMount[][];
    let dirs: { results: string; steps: string; scripts: string; bin: string };
    let credsCopy: boolean[] = [];
    let resources: ContainerResources[];
    let pod: PodRecord;
    let placeScripts: PlaceScriptsContainer | undefined;
    try {
      spec = this.prepareSpec(attempt);
      steps = spec.steps;
      if (!steps.length) throw new TaskRunFailure('TaskRunValidationFailed', 'task has no steps');
      const sidecars: any[] = spec.sidecars ?? [];
      if (sidecars.length) this.out(`WARNING: ${sidecars.length} sidecar(s) are not run by the local runner (they still count as containers of the pod)`);
      let podTemplate = inp.podTemplate ?? {};
      const podName = `${inp.taskRunName}-pod`;
      let initSecurityContext: any = { runAsUser: podTemplate.securityContext?.runAsUser ?? inp.settings.defaultUid };
      let sccName: string | undefined;
      if (inp.settings.scc) {
        const admitted = admitWithScc(inp.settings.scc, steps, podTemplate, podName);
        steps = admitted.steps;
        podTemplate = admitted.podTemplate;
        initSecurityContext = admitted.initSecurityContext;
        sccName = admitted.scc;
        spec = { ...spec, steps };
      }
      const fsGroup: number | undefined = podTemplate.securityContext?.fsGroup ?? inp.settings.defaultFsGroup;
      identities = steps.map((s, i) => this.identity(s, i, podTemplate, fsGroup));
      const podUid = crypto.randomUUID();
      envs = steps.map((s, i) => this.stepEnv(s, i, identities[i], podTemplate, podName, podUid));
      resources = steps.map((s, i) => this.containerResources(s, `step ${stepName(s, i)}`));
      const prepared = this.prepareVolumes(spec, dir, fsGroup, podTemplate);
      dirs = prepared.dirs;
      const sa = this.serviceAccountMounts(podTemplate, dir, identities);
      mounts = steps.map((s, i) => [
        ...prepared.common, ...sa.common, ...(sa.creds[i] ? [sa.creds[i]] : []), ...this.stepMounts(s, i, prepared.volumes, dir),
      ]);
      credsCopy = steps.map(() => sa.hasCreds);
      // the pod Tekton builds (pkg/pod/pod.go Build): its init containers, and every container's share of the
      // kubelet's termination-message budget
      const initContainers = tektonInitContainers(steps, sidecars);
      const containerCount = steps.length + sidecars.length + initContainers.length;
      const ps = placeScriptsArgument(steps, sidecars);
      pod = {
        initContainers,
        containerCount,
        terminationMessageShare: kubeletMessageShare(containerCount),
        placeScriptsBytes: initContainers.includes('place-scripts') ? Buffer.byteLength(ps.argument) : undefined,
        scc: sccName,
      };
      if (initContainers.includes('place-scripts')) {
        const initStep = { name: 'place-scripts', securityContext: initSecurityContext };
        const id = this.identity(initStep, -1, podTemplate, fsGroup);
        placeScripts = {
          argument: ps.argument,
          stepFiles: ps.stepFiles,
          id,
          env: { PATH: process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', HOSTNAME: podName, HOME: id.home },
          resources: this.containerResources(initStep, 'init container place-scripts'),
        };
      }
    } catch (e) {
      if (!(e instanceof TaskRunFailure || e instanceof SubstitutionError || e instanceof VolumeError)) throw e; // harness bug
      const reason = e instanceof TaskRunFailure ? e.reason : e instanceof VolumeError ? 'CreateContainerConfigError' : 'TaskRunValidationFailed';
      const message = (e as Error).message;
      this.out(`FAILED (${reason}): ${message}`);
      return { ...base, status: 'Failed', reason, message, results: {}, steps: [] };
    }

    // Tekton's place-scripts init container (pkg/pod/script.go convertScripts): `sh -c ARG` writes every script into
    // /tekton/scripts, with the pod's identity, before any step; the kernel, not the runner, limits ARG's size
    if (placeScripts) {
      const failed = await this.runPlaceScripts(placeScripts, dir, dirs, pod, deadline, deadlineReason);
      if (failed) {
        this.out(`${failed.status} (${failed.reason}): ${failed.message}`);
        return { ...base, ...failed, results: {}, steps: [], pod };
      }
    }

    const argvs: Array<string[] | undefined> = steps.map((s, i) => withCredsCopy(credsCopy[i], stepArgv(s, i)));
    function stepArgv(s: any, i: number): string[] | undefined {
      // kubelet expands $(VAR) in command and args with the container's env
      const expand = (a: string) => expandEnvRefs(String(a), envs[i], new Set(Object.keys(envs[i])));
      const file = placeScripts?.stepFiles[i];
      // Tekton overwrites command with the script file place-scripts wrote (a stepTemplate may have set one); args
      // go to the script (pkg/pod/script.go placeScriptInContainer)
      if (file) return [file, ...(s.args ?? []).map(expand)];
      if (s.command?.length) return [...s.command, ...(s.args ?? [])].map(expand);
      return undefined;
    }

    const records: StepRecord[] = [];
    let failure: { status: TaskStatus; reason: string; message: string } | undefined;
    for (let i = 0; i < steps.length; i++) {
      const s = steps[i];
      const name = stepName(s, i);
      const id = identities[i];
      if (failure) {
        records.push({ name, exitCode: null, reason: 'Skipped', log: '' });
        continue;
      }
      if (Array.isArray(s.when) && s.when.length) {
        let w: { allowed: boolean; detail?: string };
        try {
          w = evaluateWhen(s.when);
        } catch (e) {
          failure = { status: 'Failed', reason: 'TaskRunValidationFailed', message: `step ${name}: ${(e as Error).message}` };
          records.push({ name, exitCode: null, reason: 'Error', log: '' });
          continue;
        }
        if (!w.allowed) {
          this.out(`skipped: when ${w.detail}`, name);
          records.push({ name, exitCode: null, reason: 'Skipped', log: '' });
          continue;
        }
      }
      const argv = argvs[i];
      if (!argv) {
        const message = `step ${name} has neither script nor command (running the image entrypoint is not emulated)`;
        failure = { status: 'Failed', reason: 'TaskRunValidationFailed', message };
        this.out(`FAILED: ${message}`, name);
        records.push({ name, exitCode: null, reason: 'Error', log: '' });
        continue;
      }
      const stepTimeout = parseDuration(s.timeout);
      const now = Date.now();
      const remaining = deadline !== undefined ? deadline - now : undefined;
      if (remaining !== undefined && remaining <= 0) {
        failure = { status: 'TimedOut', reason: deadlineReason(), message: `TaskRun ${inp.taskRunName} timed out` };
        records.push({ name, exitCode: null, reason: 'TaskRunTimeout', log: '' });
        continue;
      }
      const limits = [stepTimeout || undefined, remaining].filter((x): x is number => x !== undefined);
      const timeoutMs = limits.length ? Math.min(...limits) : undefined;
      const stepTimeoutWins = stepTimeout !== undefined && stepTimeout > 0 && (remaining === undefined || stepTimeout <= remaining);

      this.out(`image=${s.image ?? '(none)'} uid=${id.uid} gid=${id.gid} groups=[${id.groups.join(',')}]${id.privileged ? ' PRIVILEGED' : ''}${describeLimits(resources[i])}`, name);
      let ran: ContainerRun;
      try {
        ran = await this.runContainer({
          key: `step-${i}`,
          logName: name,
          dir,
          id,
          mounts: mounts[i],
          env: envs[i],
          argv,
          workingDir: s.workingDir ? path.posix.resolve(WORKSPACE_DIR, s.workingDir) : '/',
          timeoutMs,
          resources: resources[i],
        });
      } catch (e) {
        if (!(e instanceof TaskRunFailure)) throw e;
        failure = { status: 'Failed', reason: e.reason, message: `step ${name}: ${e.message}` };
        this.out(`FAILED (${e.reason}): ${e.message}`, name);
        records.push({ name, exitCode: null, reason: 'Error', log: '' });
        continue;
      }
      const { res, startedAt, finishedAt } = ran;
      let exitCode = res.exitCode;

      let reason = exitCode === 0 ? 'Completed' : 'Error';
      // Tekton's entrypoint (pkg/entrypoint/entrypointer.go Go) writes the termination message after the command
      let termination: StepTerminationMessage | undefined;
      if (!res.setupError && !res.timedOut && !ran.oomKilled) {
        termination = stepTerminationMessage(this.runResults(spec, dirs.results), startedAt, s.onError === 'continue' ? exitCode ?? undefined : undefined);
        if (termination.error) {
          // cmd/entrypoint main.go: the write error is printed and the entrypoint exits 1, whatever the command did
          const line = termination.error;
          ran.lines.push(line);
          this.out(line, name);
          exitCode = 1;
          reason = 'Error';
        }
      }
      if (res.setupError) {
        failure = { status: 'Failed', reason: 'SandboxSetupFailed', message: res.setupError };
      } else if (res.timedOut) {
        if (stepTimeoutWins) {
          reason = 'TimeoutExceeded';
          failure = { status: 'Failed', reason: 'Failed', message: `"step-${name}" exited because the step exceeded the specified timeout limit; step was killed after ${s.timeout}` };
        } else {
          reason = 'TaskRunTimeout';
          failure = { status: 'TimedOut', reason: deadlineReason(), message: `TaskRun ${inp.taskRunName} failed to finish within its timeout` };
        }
      } else if (ran.oomKilled) {
        // the runtime (CRI-O, from the cgroup's oom_kill count) reports a container that saw an OOM kill as terminated
        // with reason OOMKilled, which the kubelet copies into the container status
        // (pkg/kubelet/kuberuntime/kuberuntime_container.go toKubeContainerStatus); Tekton's
        // status.go extractContainerFailureMessage adds the reason from v1.3.0 on
        reason = 'OOMKilled';
        failure = {
          status: 'Failed',
          reason: 'Failed',
          message: `"step-${name}" exited with code ${exitCode}: OOMKilled (memory limit ${resources[i].limits.memory} = ${resources[i].amounts.memory} bytes, peak ${ran.peakMemoryBytes} bytes)`,
        };
      } else if (termination?.error) {
        failure = {
          status: 'Failed',
          reason: 'Failed',
          message: `"step-${name}" exited with code 1 (entrypoint: ${termination.error} ${termination.refusedBytes} bytes)`,
        };
      } else if (exitCode !== 0) {
        if (s.onError === 'continue') {
          reason = 'Continued';
        } else {
          failure = { status: 'Failed', reason: 'Failed', message: `"step-${name}" exited with code ${exitCode}` };
        }
      }
      // the kubelet keeps termination messages within the pod's budget by cutting each one to its share
      // (pkg/kubelet/status/status_manager.go normalizeStatus); a cut message is no longer JSON and Tekton loses the
      // step's results (pkg/pod/status.go: termination.ParseMessage fails, logged as "... could not be parsed sas JSON")
      if (!failure && termination && termination.bytes > pod.terminationMessageShare) {
        const cut = Buffer.from(termination.message).subarray(0, pod.terminationMessageShare).toString('utf8');
        failure = {
          status: 'Failed',
          reason: 'Failed',
          message: `the kubelet cut the termination message of "step-${name}" (${termination.bytes} bytes) to its share of ${pod.terminationMessageShare} bytes `
            + `(12288 / ${pod.containerCount} containers: ${steps.length} steps, ${(spec.sidecars ?? []).length} sidecars, init containers ${pod.initContainers.join(', ')}); `
            + `Tekton: termination message could not be parsed sas JSON: parsing message json: unexpected end of JSON input, msg: ${elide(cut)} - the step's results are lost`,
        };
      }
      fs.mkdirSync(path.join(dirs.steps, `step-${name}`), { recursive: true });
      fs.writeFileSync(path.join(dirs.steps, `step-${name}`, 'exitCode'), String(exitCode ?? ''));
      this.out(`exit ${exitCode}${reason !== 'Completed' ? ` (${reason})` : ''} in ${finishedAt.getTime() - startedAt.getTime()} ms${ran.peakMemoryBytes !== undefined ? `, peak memory ${ran.peakMemoryBytes} bytes` : ''}`, name);
      records.push({
        name,
        exitCode,
        reason,
        startedAt,
        finishedAt,
        uid: id.uid,
        gid: id.gid,
        groups: id.groups,
        log: ran.lines.join('\n'),
        io: res.io,
        terminationMessageBytes: termination?.bytes,
        limits: resources[i].enforced ? resources[i].limits : undefined,
        cgroup: ran.cgroup,
        peakMemoryBytes: ran.peakMemoryBytes,
      });
    }

    const results = this.readResults(spec, dirs.results);
    if (failure) {
      this.out(`${failure.status} (${failure.reason}): ${failure.message}`);
      return { ...base, ...failure, results, steps: records, pod };
    }
    this.out('Succeeded');
    return { ...base, status: 'Succeeded', reason: 'Succeeded', results, steps: records, pod };
  }

  /** Run place-scripts; returns the TaskRun's failure when it fails (Tekton: the pod fails, no step starts). */
  private async runPlaceScripts(
    ps: { argument: string; id: Identity; env: Record<string, string>; resources: ContainerResources },
    dir: string,
    dirs: { scripts: string; bin: string },
    pod: PodRecord,
    deadline: number | undefined,
    deadlineReason: () => string,
  ): Promise<{ status: TaskStatus; reason: string; message: string } | undefined> {
    // Tekton's prepare init container copies its entrypoint binary to /tekton/bin; here, the decode-script stand-in
    fs.writeFileSync(path.join(dirs.bin, 'entrypoint'), ENTRYPOINT_STAND_IN, { mode: 0o755 });
    fs.chmodSync(path.join(dirs.bin, 'entrypoint'), 0o755);
    this.out(`init container place-scripts: uid=${ps.id.uid} gid=${ps.id.gid}, sh -c <${pod.placeScriptsBytes} bytes>${describeLimits(ps.resources)}`);
    let ran: ContainerRun;
    try {
      ran = await this.runContainer({
        key: 'place-scripts',
        logName: 'place-scripts',
        dir,
        id: ps.id,
        mounts: [
          { hostPath: dirs.scripts, containerPath: SCRIPTS_DIR },
          { hostPath: dirs.bin, containerPath: TEKTON_BIN_DIR, readOnly: true },
        ],
        env: ps.env,
        // command ["sh"], args ["-c", ARG]: handed to the runtime's exec as they are (see RUNTIME_EXEC)
        argv: ['perl', '-e', RUNTIME_EXEC],
        stdin: runtimeExecInput(['sh', '-c', ps.argument]),
        workingDir: '/',
        timeoutMs: deadline !== undefined ? Math.max(0, deadline - Date.now()) : undefined,
        resources: ps.resources,
      });
    } catch (e) {
      if (!(e instanceof TaskRunFailure)) throw e;
      return { status: 'Failed', reason: e.reason, message: `init container place-scripts: ${e.message}` };
    }
    pod.initContainerStatuses = [{ name: 'place-scripts', exitCode: ran.res.exitCode, reason: ran.oomKilled ? 'OOMKilled' : ran.res.exitCode === 0 ? 'Completed' : 'Error', log: ran.lines.join('\n') }];
    if (ran.res.setupError) return { status: 'Failed', reason: 'SandboxSetupFailed', message: ran.res.setupError };
    if (ran.res.timedOut) return { status: 'TimedOut', reason: deadlineReason(), message: `TaskRun ${this.input.taskRunName} failed to finish within its timeout` };
    if (ran.res.exitCode !== 0) {
      // tektoncd/pipeline pkg/pod/status.go getFailureMessage: "init container failed, " + the container's message
      // (v1.3.0+ append ": <terminated reason>", e.g. ": Error"); the TaskRun's reason is Failed
      return {
        status: 'Failed',
        reason: 'Failed',
        message: `init container failed, "place-scripts" exited with code ${ran.res.exitCode}${ran.oomKilled ? ': OOMKilled' : ''} (log: ${ran.lines.join(' | ')}; sh -c argument ${pod.placeScriptsBytes} bytes)`,
      };
    }
    return undefined;
  }

  /** One container in its sandbox, inside a cgroup with its limits when it has any. */
  private async runContainer(c: {
    key: string;
    logName: string;
    dir: string;
    id: Identity;
    mounts: SandboxMount[];
    env: Record<string, string>;
    argv: string[];
    stdin?: Buffer;
    workingDir: string;
    timeoutMs?: number;
    resources: ContainerResources;
  }): Promise<ContainerRun> {
    let cg: ContainerCgroup | undefined;
    if (c.resources.enforced) {
      try {
        cg = createCgroup(`tekton-runner-${process.pid}-${crypto.randomBytes(4).toString('hex')}-${c.key}`, {
          memoryBytes: c.resources.amounts.memory,
          milliCpu: c.resources.amounts.milliCpu,
          requestMilliCpu: c.resources.requestMilliCpu,
        });
      } catch (e) {
        if (!(e instanceof CgroupError)) throw e;
        throw new TaskRunFailure('CgroupSetupFailed', `limits ${JSON.stringify(c.resources.limits)} cannot be enforced: ${e.message} (the runner never runs a container without its limits)`);
      }
    }
    const lines: string[] = [];
    const scratch = path.join(c.dir, 'sandbox', c.key);
    fs.mkdirSync(scratch, { recursive: true });
    const startedAt = new Date();
    let res: SandboxResult;
    try {
      res = await runInSandbox({
        scratchDir: scratch,
        mounts: c.mounts,
        uid: c.id.uid,
        gid: c.id.gid,
        groups: c.id.groups,
        noNewPrivs: c.id.noNewPrivs,
        capabilities: c.id.capabilities,
        readOnlyRootFilesystem: c.id.readOnlyRootFilesystem,
        privileged: c.id.privileged,
        isolateTmp: this.input.settings.isolateTmp,
        workingDir: c.workingDir,
        env: c.env,
        argv: c.argv,
        stdin: c.stdin,
        timeoutMs: c.timeoutMs,
        cgroupProcs: cg?.procsFiles,
        onLine: (line) => {
          lines.push(line);
          this.out(line, c.logName);
        },
      });
    } finally {
      try {
        fs.rmdirSync(scratch);
      } catch {
        // still a mount point or not empty: leave it
      }
    }
    const finishedAt = new Date();
    const outcome = cg ? cgroupOutcome(cg) : { oomKilled: false, peakMemoryBytes: undefined };
    if (cg) await removeCgroup(cg);
    return { res, lines, startedAt, finishedAt, oomKilled: outcome.oomKilled, peakMemoryBytes: outcome.peakMemoryBytes, cgroup: cg?.settings };
  }

  /**
   * A container's limits: its own `computeResources` (Tekton v1; `resources` is accepted too), each resource it
   * does not limit taken from the namespace's LimitRange default, as the LimitRanger admission plugin does
   * (kubernetes plugin/pkg/admission/limitranger: defaults per resource, never over a container's own value).
   */
  private containerResources(container: any, what: string): ContainerResources {
    const own = container.computeResources ?? container.resources ?? {};
    const lr = this.input.settings.limitRange;
    const limits: { memory?: string; cpu?: string } = {};
    for (const r of ['memory', 'cpu'] as const) {
      const v = own.limits?.[r] ?? lr?.[r];
      if (v !== undefined) limits[r] = String(v);
    }
    // a request defaults to the LimitRange's defaultRequest, else to the limit (API defaulting)
    const requestCpu = own.requests?.cpu ?? lr?.defaultRequest?.cpu ?? limits.cpu;
    let amounts: ResourceAmounts;
    let requestMilliCpu: number | undefined;
    try {
      amounts = resourceAmounts(limits, what);
      requestMilliCpu = requestCpu !== undefined ? resourceAmounts({ cpu: requestCpu }, `${what} request`).milliCpu : undefined;
    } catch (e) {
      throw new TaskRunFailure('TaskRunValidationFailed', (e as Error).message);
    }
    return { limits, amounts, requestMilliCpu, enforced: limits.memory !== undefined || limits.cpu !== undefined };
  }

  /** Step template, overrides and all substitution passes. */
  private prepareSpec(attempt: number): any {
    const inp = this.input;
    const raw = structuredClone(inp.taskSpec);
    raw.steps = (raw.steps ?? []).map((s: any, i: number) => {
      const merged = mergeStepTemplate(raw.stepTemplate, s);
      const override = inp.settings.stepOverrides?.(inp.pipelineTaskName, stepName(merged, i), structuredClone(merged));
      return override === undefined ? merged : override;
    });
    delete raw.stepTemplate;
    // workspace declarations: add the bound-but-undeclared ones (propagated workspaces)
    raw.workspaces = [...(raw.workspaces ?? [])];
    for (const b of inp.workspaces) {
      if (!raw.workspaces.some((d: any) => d.name === b.name)) raw.workspaces.push({ name: b.name });
    }
    const where = `task ${inp.pipelineTaskName}`;
    const context = {
      'context.taskRun.name': inp.taskRunName,
      'context.taskRun.namespace': inp.pipelineRun.namespace,
      'context.taskRun.uid': this.taskRunUid,
      'context.task.name': inp.taskName,
      'context.task.retry-count': String(attempt),
    };
    // params first, so declared mountPaths can use them
    let spec = substituteTaskSpec(raw, paramResolver(inp.params, where), where);
    const wsInfo = (spec.workspaces as any[]).map((d) => {
      const b = inp.workspaces.find((x) => x.name === d.name);
      if (!b && !d.optional) throw new TaskRunFailure('TaskRunValidationFailed', `workspace ${JSON.stringify(d.name)} is not bound and not optional`);
      return {
        name: d.name,
        bound: !!b,
        mountPath: d.mountPath || `${WORKSPACE_DIR}/${d.name}`,
        claim: b?.source.kind === 'pvc' ? b.source.claimName : '',
        volume: b?.volumeName ?? '',
      };
    });
    const passes = taskRunResolvers({ params: inp.params, owner: where, context, spec, workspaces: wsInfo });
    for (const resolver of passes.slice(1)) spec = substituteTaskSpec(spec, resolver, where);
    const left = leftoverRefs(spec);
    if (left.length) throw new TaskRunFailure('TaskRunValidationFailed', `unresolved references: ${left.join(', ')}`);
    return spec;
  }

  /**
   * What the pod gets from its service account: the token the kubelet mounts, and Tekton's credentials directory
   * (an emptyDir per step at /tekton/creds, written by the entrypoint as the step's uid: mode 0600, the step's own).
   */
  private serviceAccountMounts(podTemplate: any, dir: string, identities: Identity[]):
  { common: SandboxMount[]; creds: SandboxMount[]; hasCreds: boolean } {
    const name: string = podTemplate.serviceAccountName ?? 'default';
    const sa = this.input.settings.serviceAccounts?.[name];
    if (!sa) return { common: [], creds: [], hasCreds: false };
    const common: SandboxMount[] = [];
    if (sa.token !== undefined) {
      const d = path.join(dir, 'serviceaccount');
      fs.mkdirSync(d, { recursive: true });
      fs.writeFileSync(path.join(d, 'token'), sa.token, { mode: 0o644 });
      fs.writeFileSync(path.join(d, 'namespace'), this.input.pipelineRun.namespace, { mode: 0o644 });
      common.push({ hostPath: d, containerPath: SA_DIR, readOnly: true });
    }
    // Tekton's creds-init: docker config secrets among the account's `secrets` (imagePullSecrets are not read).
    const auths: Record<string, unknown> = {};
    for (const secretName of sa.secrets ?? []) {
      const data = this.input.settings.secrets[secretName];
      if (!data) throw new TaskRunFailure('CreateContainerConfigError', `service account ${name}: secret ${JSON.stringify(secretName)} not found`);
      if (data['.dockerconfigjson'] !== undefined) Object.assign(auths, JSON.parse(data['.dockerconfigjson']).auths ?? {});
      else if (data['.dockercfg'] !== undefined) Object.assign(auths, JSON.parse(data['.dockercfg']));
    }
    const hasCreds = Object.keys(auths).length > 0;
    const creds = identities.map((id, i) => {
      const d = path.join(dir, 'creds', String(i));
      fs.mkdirSync(d, { recursive: true });
      fs.chmodSync(d, 0o777);
      if (hasCreds) {
        fs.mkdirSync(path.join(d, '.docker'), { mode: 0o755 });
        const file = path.join(d, '.docker', 'config.json');
        fs.writeFileSync(file, JSON.stringify({ auths }), { mode: 0o600 });
        fs.chownSync(path.join(d, '.docker'), id.uid, id.gid);
        fs.chownSync(file, id.uid, id.gid);
      }
      return { hostPath: d, containerPath: CREDS_DIR };
    });
    return { common, creds, hasCreds };
  }

  private identity(step: any, i: number, podTemplate: any, fsGroup: number | undefined): Identity {
    const inp = this.input;
    const pod = podTemplate.securityContext ?? {};
    const sc = step.securityContext ?? {};
    const name = i < 0 ? String(step.name) : stepName(step, i);
    // no runAsUser anywhere: the container runs as its image's USER (and that user's group)
    const explicitUid = sc.runAsUser ?? pod.runAsUser ?? undefined;
    const fromImage = explicitUid === undefined ? this.imageUser(step, name) : undefined;
    const uid: number = sc.runAsUser ?? pod.runAsUser ?? fromImage?.uid ?? inp.settings.defaultUid;
    const pw = passwdEntry(uid);
    const gid: number = sc.runAsGroup ?? pod.runAsGroup ?? fromImage?.gid ?? pw?.gid ?? 0;
    const runAsNonRoot = sc.runAsNonRoot ?? pod.runAsNonRoot;
    if (runAsNonRoot && uid === 0) {
      throw new TaskRunFailure('CreateContainerConfigError', `step ${name}: container has runAsNonRoot and image will run as root`);
    }
    const groups = [...new Set([fsGroup, ...(pod.supplementalGroups ?? [])].filter((g): g is number => g !== undefined && g !== null).map(Number))];
    const privileged = sc.privileged === true;
    if (privileged) this.out('WARNING: securityContext.privileged is true', name);
    let capabilities: string[] | 'all' = [...DEFAULT_CAPABILITIES];
    const drop: string[] = (sc.capabilities?.drop ?? []).map(capName);
    const add: string[] = (sc.capabilities?.add ?? []).map(capName);
    if (drop.includes('all')) capabilities = [];
    capabilities = capabilities.filter((c) => !drop.includes(c));
    if (add.includes('all') || privileged) capabilities = 'all';
    else capabilities = [...new Set([...capabilities, ...add])];
    return {
      uid,
      gid,
      groups,
      noNewPrivs: sc.allowPrivilegeEscalation === false,
      capabilities,
      readOnlyRootFilesystem: sc.readOnlyRootFilesystem === true,
      privileged,
      home: pw?.home ?? '/',
    };
  }

  /**
   * The image's USER from options.imageUsers (by repository). Without the table the runner's defaultUid stands in,
   * except under pipelines-scc, which runs containers as their image's user: there an unknown image is an error.
   */
  private imageUser(step: any, name: string): ImageUser | undefined {
    const table = this.input.settings.imageUsers;
    const underPipelinesScc = this.input.settings.scc?.policy === 'pipelines-scc';
    if (!table && !underPipelinesScc) return undefined;
    const image = typeof step.image === 'string' ? step.image : '';
    const user = table?.[imageRepository(image)];
    if (!user) {
      throw new TaskRunFailure('ImageUserUnknown',
        `step ${name}: the user of image ${JSON.stringify(image)} is not known (its repository ${JSON.stringify(imageRepository(image))} is not in options.imageUsers)`
        + `${underPipelinesScc ? ', and pipelines-scc runs each container as its image\'s USER' : ''}: add it with the image's USER, e.g. { uid: 1001, gid: 0 }`);
    }
    return user;
  }

  private lookupKey(kind: 'secret' | 'configMap', name: string, key: string | undefined, optional: boolean, what: string): string | undefined {
    const store = kind === 'secret' ? this.input.settings.secrets : this.input.settings.configMaps;
    const data = store[name];
    if (!data) {
      if (optional) return undefined;
      throw new TaskRunFailure('CreateContainerConfigError', `${what}: ${kind} ${JSON.stringify(name)} not found`);
    }
    if (key === undefined) return undefined;
    if (!(key in data)) {
      if (optional) return undefined;
      throw new TaskRunFailure('CreateContainerConfigError', `${what}: couldn't find key ${key} in ${kind} ${name}`);
    }
    return data[key];
  }

  private stepEnv(step: any, i: number, id: Identity, podTemplate: any, podName: string, podUid: string): Record<string, string> {
    const inp = this.input;
    const name = stepName(step, i);
    const labels = { ...inp.labels };
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      HOSTNAME: podName,
      HOME: id.home,
      ...inp.settings.env,
    };
    const defined = new Set<string>();
    for (const ef of step.envFrom ?? []) {
      const prefix = ef.prefix ?? '';
      const ref = ef.secretRef ?? ef.configMapRef;
      const kind = ef.secretRef ? 'secret' : 'configMap';
      const store = kind === 'secret' ? inp.settings.secrets : inp.settings.configMaps;
      if (!store[ref?.name]) {
        if (ref?.optional) continue;
        throw new TaskRunFailure('CreateContainerConfigError', `step ${name} envFrom: ${kind} ${JSON.stringify(ref?.name)} not found`);
      }
      for (const [k, v] of Object.entries(store[ref.name])) {
        env[prefix + k] = v;
        defined.add(prefix + k);
      }
    }
    const fieldRef = (fp: string): string => {
      const lab = /^metadata\.labels\['(.+)'\]$/.exec(fp);
      if (lab) return labels[lab[1]] ?? '';
      switch (fp) {
        case 'metadata.name': return podName;
        case 'metadata.namespace': return inp.pipelineRun.namespace;
        case 'metadata.uid': return podUid;
        case 'spec.serviceAccountName': return podTemplate.serviceAccountName ?? 'default';
        case 'spec.nodeName': return 'localhost';
        case 'status.podIP': case 'status.hostIP': return '127.0.0.1';
        default: throw new TaskRunFailure('CreateContainerConfigError', `step ${name}: unsupported fieldRef ${fp}`);
      }
    };
    const resolveEnv = (e: any, what: string) => {
      if (e.valueFrom) {
        const vf = e.valueFrom;
        let v: string | undefined;
        if (vf.secretKeyRef) v = this.lookupKey('secret', vf.secretKeyRef.name, vf.secretKeyRef.key, !!vf.secretKeyRef.optional, what);
        else if (vf.configMapKeyRef) v = this.lookupKey('configMap', vf.configMapKeyRef.name, vf.configMapKeyRef.key, !!vf.configMapKeyRef.optional, what);
        else if (vf.fieldRef) v = fieldRef(vf.fieldRef.fieldPath);
        else throw new TaskRunFailure('CreateContainerConfigError', `${what}: unsupported valueFrom ${Object.keys(vf).join(',')}`);
        if (v !== undefined) env[e.name] = v;
        return;
      }
      // $(VAR) references to env vars defined earlier in the container, like Kubernetes
      env[e.name] = expandEnvRefs(String(e.value ?? ''), env, defined);
      defined.add(e.name);
    };
    for (const e of step.env ?? []) resolveEnv(e, `step ${name} env ${e.name}`);
    // pod template env takes precedence over steps and stepTemplate
    for (const e of podTemplate.env ?? []) resolveEnv(e, `podTemplate env ${e.name}`);
    return env;
  }

  /** Create the pod's volumes on the host, apply fsGroup like kubelet, return the mounts common to all steps. */
  private prepareVolumes(spec: any, dir: string, fsGroup: number | undefined, podTemplate: any) {
    const inp = this.input;
    const policy = podTemplate.securityContext?.fsGroupChangePolicy;
    const own = (hostDir: string, readOnly: boolean) => {
      if (fsGroup !== undefined && fsGroup !== null) applyFsGroup(hostDir, fsGroup, readOnly, policy);
    };
    const volumesDir = path.join(dir, 'volumes');
    const materialize = (source: VolumeSource, volName: string): { hostDir: string; readOnly: boolean } => {
      switch (source.kind) {
        case 'pvc':
          own(source.hostDir, false);
          return { hostDir: source.hostDir, readOnly: false };
        case 'emptyDir': {
          const d = makeEmptyDir(path.join(volumesDir, volName));
          own(d, false);
          return { hostDir: d, readOnly: false };
        }
        case 'secret':
        case 'configMap': {
          const store = source.kind === 'secret' ? inp.settings.secrets : inp.settings.configMaps;
          const d = makeKeyFilesDir(path.join(volumesDir, volName), store[source.name], source, `${source.kind} volume ${volName}`);
          own(d, true);
          return { hostDir: d, readOnly: true };
        }
      }
    };
    // Tekton's implicit emptyDirs
    const implicit = (n: string) => {
      const d = makeEmptyDir(path.join(dir, n));
      own(d, false);
      return d;
    };
    const dirs = {
      workspace: implicit('workspace'),
      home: implicit('home'),
      results: implicit('results'),
      steps: implicit('steps'),
      scripts: implicit('scripts'),
      bin: implicit('bin'),
    };
    const common: SandboxMount[] = [
      { hostPath: dirs.workspace, containerPath: WORKSPACE_DIR },
      { hostPath: dirs.home, containerPath: HOME_DIR },
      { hostPath: dirs.results, containerPath: RESULTS_DIR },
      { hostPath: dirs.steps, containerPath: STEPS_DIR, readOnly: true },
      { hostPath: dirs.scripts, containerPath: SCRIPTS_DIR, readOnly: true },
      { hostPath: dirs.bin, containerPath: TEKTON_BIN_DIR, readOnly: true },
    ];
    // workspaces
    for (const d of spec.workspaces ?? []) {
      const b = inp.workspaces.find((x) => x.name === d.name);
      if (!b) continue;
      const vol = materialize(b.source, `ws-${d.name}`);
      const hostPath = ensureSubPath(vol.hostDir, b.subPath, `workspace ${d.name}`);
      common.push({ hostPath, containerPath: d.mountPath || `${WORKSPACE_DIR}/${d.name}`, readOnly: vol.readOnly || d.readOnly === true });
    }
    for (const hm of inp.settings.hostMounts) {
      common.push({ hostPath: hm.hostPath, containerPath: hm.containerPath ?? hm.hostPath, readOnly: hm.readOnly !== false });
    }
    // task volumes and pod template volumes, materialized once per pod
    const volumes = new Map<string, { hostDir: string; readOnly: boolean }>();
    const taskVolumes: any[] = spec.volumes ?? [];
    const allVolumes = [...taskVolumes, ...(podTemplate.volumes ?? []).filter((pv: any) => !taskVolumes.some((v: any) => v.name === pv.name))];
    const referenced = new Set((spec.steps ?? []).flatMap((s: any) => (s.volumeMounts ?? []).map((m: any) => m.name)));
    for (const v of allVolumes) {
      if (!referenced.has(v.name)) continue;
      const source = volumeSourceFrom(v, inp.settings.claims, `volume ${v.name}`);
      volumes.set(v.name, materialize(source, `vol-${v.name}`));
    }
    return { dirs, common, volumes };
  }

  private stepMounts(step: any, i: number, volumes: Map<string, { hostDir: string; readOnly: boolean }>, _dir: string): SandboxMount[] {
    const out: SandboxMount[] = [];
    for (const m of step.volumeMounts ?? []) {
      const vol = volumes.get(m.name);
      if (!vol) throw new TaskRunFailure('CreateContainerConfigError', `step ${stepName(step, i)}: volumeMount ${JSON.stringify(m.name)} has no volume`);
      const hostPath = ensureSubPath(vol.hostDir, m.subPath, `volumeMount ${m.name}`);
      out.push({ hostPath, containerPath: m.mountPath, readOnly: vol.readOnly || m.readOnly === true });
    }
    return out;
  }

  private readResults(spec: any, resultsDir: string): Record<string, string> {
    const out: Record<string, string> = {};
    for (const r of spec.results ?? []) {
      const f = path.join(resultsDir, r.name);
      try {
        if (fs.statSync(f).isFile()) out[r.name] = fs.readFileSync(f, 'utf8');
      } catch {
        // not produced
      }
    }
    return out;
  }

  /**
   * The declared results present in /tekton/results, in the Task's order, as the entrypoint reads them
   * (a file's bytes as a Go string; bytes that are not UTF-8 would be marshalled by Go as \ufffd, 6 bytes, here as
   * U+FFFD, 3 bytes: results are text in practice).
   */
  private runResults(spec: any, resultsDir: string): RunResult[] {
    const files = this.readResults(spec, resultsDir);
    return (spec.results ?? []).filter((r: any) => r.name in files).map((r: any) => ({ key: r.name, value: files[r.name], type: 1 }));
  }
}

/**
 * Tekton's entrypoint, before the step's command: copies /tekton/creds into $HOME (credentials.CopyCredsToHome), as
 * the step's uid, and only warns when it cannot (HOME=/ for a uid without passwd entry is not writable).
 */
function withCredsCopy(enabled: boolean | undefined, argv: string[] | undefined): string[] | undefined {
  if (!enabled || !argv) return argv;
  const copy = `if [ -d ${CREDS_DIR}/.docker ]; then
  if ! { mkdir -p "\${HOME}/.docker" && chmod 700 "\${HOME}/.docker" && cp ${CREDS_DIR}/.docker/config.json "\${HOME}/.docker/config.json" && chmod 600 "\${HOME}/.docker/config.json"; } 2>/dev/null; then
    echo 'warning: unsuccessful cred copy: ".docker" from "${CREDS_DIR}" to "'"\${HOME}"'": permission denied' >&2
  fi
fi
exec "$@"`;
  return ['/bin/sh', '-c', copy, 'tekton-entrypoint', ...argv];
}

function parseRange(what: string, value: string): { start: number; end: number } {
  const m = /^(\d+)\/(\d+)$/.exec(value);
  if (!m) throw new Error(`tekton-runner: scc ${what} "${value}" is not <start>/<size>`);
  return { start: Number(m[1]), end: Number(m[1]) + Number(m[2]) - 1 };
}

interface SccProvider {
  readonly name: string;
  readonly problems: string[];
  readonly steps: any[];
  readonly podTemplate: any;
  /** The securityContext Tekton's init containers (none set) end up with. */
  readonly initSecurityContext: any;
}

/**
 * restricted-v2 (every service account may use it): runAsUser MustRunAsRange, fsGroup MustRunAs, no privilege
 * escalation, ALL capabilities dropped, only NET_BIND_SERVICE may be added.
 */
function restrictedV2(scc: SccOptions, steps: any[], podTemplate: any): SccProvider {
  const uids = parseRange('uidRange', scc.uidRange);
  const groups = parseRange('supplementalGroups', scc.supplementalGroups ?? scc.uidRange);
  const pod = structuredClone(podTemplate ?? {});
  const psc = { ...(pod.securityContext ?? {}) };
  const problems: string[] = [];
  const p = (m: string) => problems.push(`provider restricted-v2: ${m}`);
  psc.fsGroup ??= groups.start;
  if (psc.fsGroup < groups.start || psc.fsGroup > groups.end) {
    p(`.spec.securityContext.fsGroup: Invalid value: []int64{${psc.fsGroup}}: ${psc.fsGroup} is not an allowed group`);
  }
  if (psc.runAsUser !== undefined && (psc.runAsUser < uids.start || psc.runAsUser > uids.end)) {
    p(`.spec.securityContext.runAsUser: Invalid value: ${psc.runAsUser}: must be in the ranges: [${uids.start}, ${uids.end}]`);
  }
  pod.securityContext = psc;
  const admitted = steps.map((step, i) => {
    const s = structuredClone(step);
    const sc = { ...(s.securityContext ?? {}) };
    const where = `.containers[${i}]`;
    sc.runAsUser ??= psc.runAsUser ?? uids.start;
    if (sc.runAsUser < uids.start || sc.runAsUser > uids.end) {
      p(`${where}.runAsUser: Invalid value: ${sc.runAsUser}: must be in the ranges: [${uids.start}, ${uids.end}]`);
    }
    if (sc.privileged) p(`${where}.privileged: Invalid value: true: Privileged containers are not allowed`);
    if (sc.allowPrivilegeEscalation === true) p(`${where}.allowPrivilegeEscalation: Invalid value: true: Allowing privilege escalation for containers is not allowed`);
    for (const c of sc.capabilities?.add ?? []) {
      if (capName(c) !== 'net_bind_service') p(`${where}.capabilities.add: Invalid value: "${c}": capability may not be added`);
    }
    sc.allowPrivilegeEscalation = false;
    sc.capabilities = { ...(sc.capabilities ?? {}), drop: ['ALL'] };
    sc.runAsNonRoot = true;
    s.securityContext = sc;
    return s;
  });
  const initSecurityContext = { runAsUser: psc.runAsUser ?? uids.start, runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } };
  return { name: 'restricted-v2', problems, steps: admitted, podTemplate: pod, initSecurityContext };
}

/**
 * pipelines-scc, which OpenShift Pipelines' operator gives its `pipeline` service account (tektoncd/operator
 * cmd/openshift/operator/kodata/openshift/00-prereconcile/openshift-pipelines-scc.yaml): priority 10, runAsUser
 * RunAsAny (no uid is set: each container runs as its image's USER unless the YAML sets runAsUser), fsGroup MustRunAs
 * (the namespace's supplemental-groups range, default its first value), supplementalGroups RunAsAny,
 * allowPrivilegeEscalation true, allowPrivilegedContainer false, defaultAddCapabilities [SETFCAP],
 * requiredDropCapabilities [MKNOD], allowedCapabilities null (nothing beyond the default may be added).
 */
function pipelinesScc(scc: SccOptions, steps: any[], podTemplate: any): SccProvider {
  const groups = parseRange('supplementalGroups', scc.supplementalGroups ?? scc.uidRange);
  const pod = structuredClone(podTemplate ?? {});
  const psc = { ...(pod.securityContext ?? {}) };
  const problems: string[] = [];
  const p = (m: string) => problems.push(`provider "pipelines-scc": ${m}`);
  psc.fsGroup ??= groups.start;
  if (psc.fsGroup < groups.start || psc.fsGroup > groups.end) {
    p(`.spec.securityContext.fsGroup: Invalid value: []int64{${psc.fsGroup}}: ${psc.fsGroup} is not an allowed group`);
  }
  pod.securityContext = psc;
  const withCapabilities = (caps: any) => ({
    add: [...new Set([...(caps?.add ?? []), 'SETFCAP'])],
    drop: [...new Set([...(caps?.drop ?? []), 'MKNOD'])],
  });
  const admitted = steps.map((step, i) => {
    const s = structuredClone(step);
    const sc = { ...(s.securityContext ?? {}) };
    const where = `.containers[${i}]`;
    if (sc.privileged) p(`${where}.privileged: Invalid value: true: Privileged containers are not allowed`);
    for (const c of sc.capabilities?.add ?? []) {
      if (capName(c) !== 'setfcap') p(`${where}.capabilities.add: Invalid value: "${c}": capability may not be added`);
    }
    sc.capabilities = withCapabilities(sc.capabilities);
    s.securityContext = sc;
    return s;
  });
  // Tekton's shell image runs place-scripts; RunAsAny keeps its USER
  const shell = scc.initContainerUser ?? { uid: 0, gid: 0 };
  const initSecurityContext = {
    runAsUser: psc.runAsUser ?? shell.uid,
    ...(psc.runAsUser === undefined && psc.runAsGroup === undefined ? { runAsGroup: shell.gid } : {}),
    capabilities: withCapabilities(undefined),
  };
  return { name: 'pipelines-scc', problems, steps: admitted, podTemplate: pod, initSecurityContext };
}

/**
 * OpenShift's SCC admission of a TaskRun pod: the SCCs the service account may use, by priority (pipelines-scc,
 * priority 10, before restricted-v2 when the policy is pipelines-scc); the first that validates the pod sets its
 * defaults; when none does, the pod is refused with every provider's words.
 */
export function admitWithScc(scc: SccOptions, steps: any[], podTemplate: any, podName: string):
{ steps: any[]; podTemplate: any; initSecurityContext: any; scc: string } {
  const policy = scc.policy ?? 'restricted-v2';
  if (policy !== 'restricted-v2' && policy !== 'pipelines-scc') throw new Error(`tekton-runner: scc policy "${policy}" is not modelled: use restricted-v2 or pipelines-scc`);
  const providers = policy === 'pipelines-scc' ? [pipelinesScc, restrictedV2] : [restrictedV2];
  const tried = providers.map((provider) => provider(scc, steps, podTemplate));
  const ok = tried.find((t) => !t.problems.length);
  if (!ok) {
    throw new TaskRunFailure('PodCreationFailed',
      `failed to create task run pod "${podName}": pods "${podName}" is forbidden: unable to validate against any security context constraint: [${tried.flatMap((t) => t.problems).join(', ')}]`);
  }
  return { steps: ok.steps, podTemplate: ok.podTemplate, initSecurityContext: ok.initSecurityContext, scc: ok.name };
}
