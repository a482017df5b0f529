/**
 * A local Tekton v1 runner for tests: takes the synthesized Task, Pipeline and PipelineRun documents and runs the
 * PipelineRun on this host with real tools, each step in its own mount/pid namespace, under the uid/gid/groups the
 * YAML asks for (see sandbox.ts). No cluster involved; requires root.
 *
 * Semantics follow Tekton Pipelines v1 (docs/pipelines.md, docs/tasks.md, docs/variables.md, docs/workspaces.md,
 * docs/pipelineruns.md of tektoncd/pipeline): DAG from runAfter and result references, when expressions, skipping
 * rules, finally, retries, timeouts, onError, results, workspaces, parameter substitution passes.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { sandboxSupport } from './sandbox';
import {
  chainResolvers, collectTektonRefs, evaluateWhen, isObjectValue, mapResolver, ParamValue, paramResolver, parseDuration,
  parseParamRef, Resolver, selectValue, substArray, substParamValue, substString, SubstitutionError,
} from './substitution';
import {
  leftoverRefs, mergePodTemplates, mergeStepTemplate, RunnerSettings, stepName, substituteTaskSpec, TaskRunExecutor,
  taskRunResolvers, WorkspaceBinding,
} from './task-run';
import { Manifest, RunPipelineOptions, RunPipelineResult, TaskRunRecord } from './types';
import { VolumeSource, volumeSourceFrom } from './volumes';

export * from './types';
export { sandboxSupport } from './sandbox';

const STOPPING = 'PipelineRun was stopping';
const WHEN_SKIP = 'When Expressions evaluated to false';
const PARENT_SKIP = 'Parent Tasks were skipped';
const MISSING_RESULTS = 'Results were missing';
const PIPELINE_TIMEOUT_SKIP = 'PipelineRun timeout has been reached';
const TASKS_TIMEOUT_SKIP = 'PipelineRun Tasks timeout has been reached';
const FINALLY_TIMEOUT_SKIP = 'PipelineRun Finally timeout has been reached';

/** A result reference that cannot be resolved (yet). */
class MissingResultError extends Error {
  constructor(readonly task: string, readonly result: string, message: string) {
    super(message);
  }
}

class PipelineFailure extends Error {
  constructor(readonly reason: string, message: string) {
    super(message);
  }
}

interface TaskState {
  readonly pt: any;
  readonly isFinally: boolean;
  record?: TaskRunRecord;
  running?: Promise<void>;
}

function inferType(v: unknown): 'string' | 'array' | 'object' {
  if (Array.isArray(v)) return 'array';
  if (isObjectValue(v as ParamValue)) return 'object';
  return 'string';
}

function normalizeValue(v: unknown): ParamValue {
  if (Array.isArray(v)) return v.map((x) => String(x));
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, String(x)]));
  return v === undefined || v === null ? '' : String(v);
}

/** Apply declared params (type, default, enum) to provided values. Returns values and problems. */
interface ResolvedParams {
  values: Record<string, ParamValue>;
  missing: string[];
  problems: string[];
}

function resolveParams(decls: any[], given: Record<string, ParamValue>, owner: string, keepExtra: boolean): ResolvedParams {
  const values: Record<string, ParamValue> = {};
  const missing: string[] = [];
  const problems: string[] = [];
  for (const d of decls ?? []) {
    const type = d.type ?? (d.default !== undefined ? inferType(d.default) : 'string');
    let v: ParamValue | undefined = d.name in given ? given[d.name] : undefined;
    if (v === undefined) {
      if (d.default === undefined) {
        missing.push(d.name);
        continue;
      }
      v = normalizeValue(d.default);
    } else if (type === 'object' && isObjectValue(v) && isObjectValue(d.default)) {
      v = { ...normalizeValue(d.default) as Record<string, string>, ...v };
    }
    if (inferType(v) !== type) {
      problems.push(`${owner} param ${JSON.stringify(d.name)} should be ${type} but got ${inferType(v)}`);
      continue;
    }
    if (Array.isArray(d.enum) && d.enum.length && typeof v === 'string' && !d.enum.includes(v)) {
      problems.push(`${owner} param ${JSON.stringify(d.name)} value ${JSON.stringify(v)} is not in enum ${JSON.stringify(d.enum)}`);
    }
    values[d.name] = v;
  }
  if (keepExtra) {
    for (const [k, v] of Object.entries(given)) if (!(k in values) && !(decls ?? []).some((d: any) => d.name === k)) values[k] = v;
  }
  return { values, missing, problems };
}

function minDefined(...xs: Array<number | undefined>): number | undefined {
  const d = xs.filter((x): x is number => x !== undefined);
  return d.length ? Math.min(...d) : undefined;
}

function paramsToMap(params: any[] | undefined): Record<string, ParamValue> {
  const out: Record<string, ParamValue> = {};
  for (const p of params ?? []) out[p.name] = normalizeValue(p.value);
  return out;
}

/** Names of pipeline tasks referenced as `$(tasks.<name>.results...)` anywhere in a value. */
function resultRefTasks(value: unknown): string[] {
  const out = new Set<string>();
  for (const ref of collectTektonRefs(value)) {
    const m = /^\$\(\s*tasks\.([^.]+)\.results\./.exec(ref);
    if (m) out.add(m[1]);
  }
  return [...out];
}

/** Resolver used only for validation: declared params by type, with dummy values. */
function validationParamResolver(decls: any[], anyNames: string[], owner: string): Resolver {
  return (expr) => {
    const ref = parseParamRef(expr);
    if (!ref) return undefined;
    const d = (decls ?? []).find((x: any) => x.name === ref.name);
    if (!d) {
      if (!anyNames.includes(ref.name)) return undefined;
      return ref.suffix === '[*]' ? ['x'] : 'x';
    }
    const type = d.type ?? (d.default !== undefined ? inferType(d.default) : 'string');
    if (type === 'object') {
      const keys = new Set([...Object.keys(d.properties ?? {}), ...Object.keys(isObjectValue(d.default) ? d.default : {})]);
      if (ref.suffix.startsWith('.') && keys.size && !keys.has(ref.suffix.slice(1))) {
        throw new SubstitutionError(`${owner} object param "${ref.name}" has no key ${ref.suffix.slice(1)}`);
      }
      const dummy: Record<string, string> = {};
      keys.forEach((k) => (dummy[k] = 'x'));
      if (ref.suffix.startsWith('.')) dummy[ref.suffix.slice(1)] = 'x';
      return selectValue(dummy, ref.suffix, `${owner} param "${ref.name}"`);
    }
    const dummy: ParamValue = type === 'array' ? ['x', 'x', 'x', 'x', 'x', 'x', 'x', 'x'] : 'x';
    return selectValue(dummy, ref.suffix, `${owner} param "${ref.name}"`);
  };
}

/** Resolve a PipelineRun and run it. Harness misconfiguration throws; pipeline problems give status Failed. */
export async function runPipeline(options: RunPipelineOptions): Promise<RunPipelineResult> {
  const support = sandboxSupport();
  if (!support.ok) throw new Error(`tekton-runner cannot run here: ${support.reason}`);
  return new PipelineRunner(options).run();
}

class PipelineRunner {
  private readonly lines: string[] = [];
  private readonly tasks = new Map<string, TaskState>();
  private readonly startedAt = new Date();
  private readonly uid = crypto.randomUUID();
  private readonly pr: Manifest;
  private readonly prName: string;
  private readonly namespace: string;
  private readonly runDir: string;
  private readonly settings: RunnerSettings;
  private readonly defaultTimeoutMs: number;
  private pipelineName = '';
  private pipelineSpec: any;
  private pipelineParams: Record<string, ParamValue> = {};
  private prBindings = new Map<string, { binding: any; source?: VolumeSource; volumeName: string }>();
  private taskSpecs = new Map<string, { spec: any; taskName: string; embedded: boolean }>();
  private deps = new Map<string, string[]>();
  private stopping = false;
  private failure?: { reason: string; message: string };
  private timedOut?: string;
  private pipelineDeadline?: number;
  private tasksDeadline?: number;
  private finallyDeadline?: number;

  constructor(private readonly options: RunPipelineOptions) {
    const docs = options.manifests.filter((d) => d && typeof d === 'object');
    const prs = docs.filter((d) => d.kind === 'PipelineRun');
    const wanted = options.pipelineRun;
    const matches = wanted ? prs.filter((d) => d.metadata?.name === wanted || d.metadata?.generateName === wanted) : prs;
    if (matches.length !== 1) {
      throw new Error(`tekton-runner: expected exactly one PipelineRun${wanted ? ` named ${wanted}` : ''}, found ${matches.length}`);
    }
    this.pr = matches[0];
    const meta = this.pr.metadata ?? {};
    this.prName = meta.name ?? `${meta.generateName ?? 'pipelinerun-'}${crypto.randomBytes(4).toString('hex').slice(0, 5)}`;
    this.namespace = meta.namespace ?? options.namespace ?? 'default';
    this.runDir = path.join(path.resolve(options.workDir), `${this.prName}-${this.uid.slice(0, 8)}`);
    this.defaultTimeoutMs = parseDuration(options.defaultTimeout ?? '60m') ?? 3600000;
    this.settings = {
      claims: options.claims ?? {},
      secrets: options.secrets ?? {},
      configMaps: options.configMaps ?? {},
      defaultUid: options.defaultUid ?? 1000970000,
      defaultFsGroup: options.defaultFsGroup,
      env: options.env ?? {},
      stepOverrides: options.stepOverrides,
      hostMounts: options.hostMounts ?? [],
      isolateTmp: options.isolateTmp ?? true,
      scc: options.scc,
      serviceAccounts: options.serviceAccounts,
      limitRange: options.limitRange,
      imageUsers: options.imageUsers,
      log: (line) => this.log(line),
    };
  }

  async run(): Promise<RunPipelineResult> {
    fs.mkdirSync(this.runDir, { recursive: true });
    this.log(`[pipelinerun] ${this.prName} (namespace ${this.namespace}, uid ${this.uid}) in ${this.runDir}`);
    try {
      this.resolvePipeline();
      this.resolveParamsAndWorkspaces();
      this.prepareTasks();
      this.validate();
    } catch (e) {
      if (e instanceof PipelineFailure) return this.finish(e.reason, e.message);
      throw e;
    }
    this.setDeadlines();
    await this.runDag();
    await this.runFinally();
    const { results, invalid } = this.pipelineResults();
    if (this.options.cleanup) fs.rmSync(path.join(this.runDir, 'taskruns'), { recursive: true, force: true });
    if (invalid.length) {
      // Tekton keeps the valid results and marks the PipelineRun failed (pipelinerun.go, CouldntGetPipelineResult).
      return this.finish('CouldntGetPipelineResult', `Failed to get PipelineResult from TaskRun Results for PipelineRun ${this.prName}: `
        + `invalid pipelineresults [${invalid.join(' ')}], the referenced results don't exist`, results);
    }
    return this.finish(undefined, undefined, results);
  }

  private log(line: string) {
    this.lines.push(line);
    this.options.log?.(line);
  }

  // ---------------------------------------------------------------- resolution

  private resolvePipeline() {
    const spec = this.pr.spec ?? {};
    if (spec.pipelineRef) {
      const ref = spec.pipelineRef;
      if (ref.resolver || ref.bundle) throw new PipelineFailure('CouldntGetPipeline', 'remote resolution (resolver/bundle) is not supported by the local runner');
      const p = this.options.manifests.find((d) => d?.kind === 'Pipeline' && d.metadata?.name === ref.name);
      if (!p) throw new PipelineFailure('CouldntGetPipeline', `Pipeline ${JSON.stringify(ref.name)} not found among the manifests`);
      this.pipelineSpec = structuredClone(p.spec ?? {});
      this.pipelineName = ref.name;
    } else if (spec.pipelineSpec) {
      this.pipelineSpec = structuredClone(spec.pipelineSpec);
      this.pipelineName = this.prName;
    } else {
      throw new PipelineFailure('CouldntGetPipeline', 'PipelineRun has neither pipelineRef nor pipelineSpec');
    }
    const names = new Set<string>();
    for (const pt of [...(this.pipelineSpec.tasks ?? []), ...(this.pipelineSpec.finally ?? [])]) {
      if (names.has(pt.name)) throw new PipelineFailure('PipelineValidationFailed', `duplicate pipeline task name ${pt.name}`);
      names.add(pt.name);
    }
  }

  private contextMap(pt?: any): Record<string, string> {
    const m: Record<string, string> = {
      'context.pipelineRun.name': this.prName,
      'context.pipelineRun.namespace': this.namespace,
      'context.pipelineRun.uid': this.uid,
      'context.pipeline.name': this.pipelineName,
    };
    if (pt) m['context.pipelineTask.retries'] = String(pt.retries ?? 0);
    return m;
  }

  private resolveParamsAndWorkspaces() {
    const given = paramsToMap(this.pr.spec?.params);
    const embedded = !!this.pr.spec?.pipelineSpec;
    const r = resolveParams(this.pipelineSpec.params ?? [], given, 'pipeline', embedded);
    if (r.missing.length) {
      throw new PipelineFailure('ParameterMissing', `PipelineRun ${this.namespace}/${this.prName} is missing parameters: ${r.missing.join(', ')}`);
    }
    if (r.problems.length) throw new PipelineFailure('ParameterTypeMismatch', r.problems.join('; '));
    this.pipelineParams = r.values;

    // workspace bindings of the PipelineRun (params and context substitute into them)
    const resolver = chainResolvers(paramResolver(this.pipelineParams, 'pipeline'), mapResolver(this.contextMap()));
    const subst = (s: any) => (typeof s === 'string' ? substString(s, resolver, 'PipelineRun workspaces') : s);
    for (const raw of this.pr.spec?.workspaces ?? []) {
      const b = structuredClone(raw);
      b.subPath = subst(b.subPath);
      if (b.persistentVolumeClaim) b.persistentVolumeClaim.claimName = subst(b.persistentVolumeClaim.claimName);
      if (b.secret) b.secret.secretName = subst(b.secret.secretName);
      if (b.configMap) b.configMap.name = subst(b.configMap.name);
      let source: VolumeSource;
      if (b.volumeClaimTemplate) {
        const claimName = `${b.volumeClaimTemplate.metadata?.name ?? 'pvc'}-${crypto.createHash('sha256').update(`${b.name}/${this.prName}/${this.uid}`).digest('hex').slice(0, 10)}`;
        const hostDir = path.join(this.runDir, 'pvc', b.name);
        fs.mkdirSync(hostDir, { recursive: true });
        fs.chownSync(hostDir, 0, 0);
        fs.chmodSync(hostDir, this.options.freshVolumeMode ?? 0o755);
        source = { kind: 'pvc', hostDir, claimName };
      } else {
        source = volumeSourceFrom(b, this.settings.claims, `PipelineRun workspace ${b.name}`);
      }
      this.prBindings.set(b.name, { binding: b, source, volumeName: `ws-${crypto.createHash('sha256').update(b.name + this.uid).digest('hex').slice(0, 5)}` });
    }
    for (const d of this.pipelineSpec.workspaces ?? []) {
      if (!this.prBindings.has(d.name) && !d.optional) {
        throw new PipelineFailure('InvalidWorkspaceBindings', `pipeline requires workspace with name ${JSON.stringify(d.name)} be provided by pipelinerun`);
      }
    }
  }

  /** Pipeline-level substitution (params, context, workspaces.bound) and task spec resolution. */
  private prepareTasks() {
    const wsBound: Record<string, string> = {};
    for (const d of this.pipelineSpec.workspaces ?? []) wsBound[`workspaces.${d.name}.bound`] = String(this.prBindings.has(d.name));
    const all = [
      ...(this.pipelineSpec.tasks ?? []).map((pt: any) => ({ pt, fin: false })),
      ...(this.pipelineSpec.finally ?? []).map((pt: any) => ({ pt, fin: true })),
    ];
    for (const { pt: raw, fin } of all) {
      const where = `pipeline task ${raw.name}`;
      const resolver = chainResolvers(paramResolver(this.pipelineParams, 'pipeline'), mapResolver(this.contextMap(raw)), mapResolver(wsBound));
      let pt: any;
      try {
        pt = this.substitutePipelineTask(raw, resolver, where);
      } catch (e) {
        if (e instanceof SubstitutionError) throw new PipelineFailure('PipelineValidationFailed', e.message);
        throw e;
      }
      if (pt.taskSpec) {
        // propagated params: pipeline params (overridden by same-named pipeline task params) and context go into embedded specs
        const overridden: Record<string, ParamValue> = { ...this.pipelineParams };
        for (const [k, v] of Object.entries(paramsToMap(pt.params))) if (k in overridden) overridden[k] = v;
        const r = chainResolvers(paramResolver(overridden, 'pipeline'), mapResolver(this.contextMap(raw)));
        const { metadata: _m, spec: nested, ...inline } = pt.taskSpec;
        const body = nested && !inline.steps ? nested : inline;
        try {
          pt.taskSpec = substituteTaskSpec(body, r, where);
        } catch (e) {
          if (e instanceof SubstitutionError) throw new PipelineFailure('PipelineValidationFailed', e.message);
          throw e;
        }
        this.taskSpecs.set(pt.name, { spec: pt.taskSpec, taskName: '', embedded: true });
      } else if (pt.taskRef) {
        const ref = pt.taskRef;
        if (ref.resolver || ref.bundle) throw new PipelineFailure('CouldntGetTask', `${where}: remote resolution is not supported by the local runner`);
        if (ref.kind && ref.kind !== 'Task') throw new PipelineFailure('CouldntGetTask', `${where}: taskRef kind ${ref.kind} is not supported`);
        const t = this.options.manifests.find((d) => d?.kind === 'Task' && d.metadata?.name === ref.name);
        if (!t) throw new PipelineFailure('CouldntGetTask', `${where}: Task ${JSON.stringify(ref.name)} not found among the manifests`);
        this.taskSpecs.set(pt.name, { spec: structuredClone(t.spec ?? {}), taskName: ref.name, embedded: false });
      } else {
        throw new PipelineFailure('PipelineValidationFailed', `${where}: needs taskRef or taskSpec (pipelines in pipelines and custom tasks are not supported)`);
      }
      this.tasks.set(pt.name, { pt, isFinally: fin });
      this.deps.set(pt.name, fin ? [] : [...new Set([...(pt.runAfter ?? []), ...resultRefTasks([pt.params, pt.when, pt.taskSpec?.steps])])]);
    }
  }

  private substitutePipelineTask(raw: any, resolver: Resolver, where: string): any {
    const pt = structuredClone(raw);
    pt.params = (pt.params ?? []).map((p: any) => ({ ...p, value: substParamValue(normalizeValue(p.value), resolver, `${where} param ${p.name}`) }));
    pt.when = (pt.when ?? []).map((w: any) => ({
      ...w,
      input: typeof w.input === 'string' ? substString(w.input, resolver, `${where} when`) : w.input,
      values: substArray((w.values ?? []).map(String), resolver, `${where} when`),
    }));
    pt.workspaces = (pt.workspaces ?? []).map((w: any) => ({ ...w, subPath: typeof w.subPath === 'string' ? substString(w.subPath, resolver, `${where} workspace`) : w.subPath }));
    for (const f of ['onError', 'displayName']) if (typeof pt[f] === 'string') pt[f] = substString(pt[f], resolver, `${where} ${f}`);
    if (pt.taskRef?.name) pt.taskRef.name = substString(pt.taskRef.name, resolver, `${where} taskRef`);
    return pt;
  }

  /** Static checks, like the Tekton webhook and the PipelineRun reconciler do before creating TaskRuns. */
  private validate() {
    const problems: string[] = [];
    const missing: string[] = [];
    const dagNames = (this.pipelineSpec.tasks ?? []).map((t: any) => t.name);
    for (const [name, st] of this.tasks) {
      const { spec, embedded } = this.taskSpecs.get(name)!;
      const pt = st.pt;
      const where = `pipeline task ${name}`;
      // required task params
      const given = paramsToMap(pt.params);
      for (const d of spec.params ?? []) if (d.default === undefined && !(d.name in given)) missing.push(`${name}: ${d.name}`);
      // task spec references
      problems.push(...this.validateTaskSpec(name, pt, spec, embedded));
      // pipeline task references left after static substitution
      for (const ref of collectTektonRefs([pt.params, pt.when, pt.workspaces?.map((w: any) => w.subPath), pt.onError])) {
        const expr = ref.slice(2, -1).trim();
        let m: RegExpExecArray | null;
        if ((m = /^tasks\.([^.]+)\.results\.(.+)$/.exec(expr))) {
          if (!dagNames.includes(m[1])) problems.push(`${where}: ${ref} refers to ${m[1]}, which is not a pipeline task in "tasks"`);
          else if (m[1] === name) problems.push(`${where}: ${ref} refers to itself`);
          else if (!this.resultDecl(m[1], m[2])) problems.push(`${where}: ${ref}: task ${m[1]} declares no such result`);
        } else if (/^tasks\.status$/.test(expr) || (m = /^tasks\.([^.]+)\.(status|reason)$/.exec(expr))) {
          if (!st.isFinally) problems.push(`${where}: ${ref} is only available in finally tasks`);
          else if (m && !dagNames.includes(m[1])) problems.push(`${where}: ${ref} refers to an unknown pipeline task`);
        } else {
          problems.push(`${where}: unresolved reference ${ref}`);
        }
      }
      for (const ra of pt.runAfter ?? []) {
        if (st.isFinally) problems.push(`${where}: finally tasks cannot use runAfter`);
        else if (!dagNames.includes(ra)) problems.push(`${where}: runAfter ${ra} is not a pipeline task`);
      }
      // workspaces of the pipeline task
      for (const w of pt.workspaces ?? []) {
        const pw = w.workspace ?? w.name;
        if (!(this.pipelineSpec.workspaces ?? []).some((d: any) => d.name === pw)) problems.push(`${where}: workspace ${w.name} binds unknown pipeline workspace ${pw}`);
      }
      for (const d of spec.workspaces ?? []) {
        const w = (pt.workspaces ?? []).find((x: any) => x.name === d.name);
        if (!w && !d.optional) problems.push(`${where}: task workspace ${JSON.stringify(d.name)} is not bound by the pipeline task`);
        if (w && !this.prBindings.has(w.workspace ?? w.name) && !d.optional) {
          problems.push(`${where}: task workspace ${JSON.stringify(d.name)} is required but pipeline workspace ${w.workspace ?? w.name} is not provided`);
        }
      }
      if (pt.retries && pt.onError === 'continue') problems.push(`${where}: retries and onError: continue cannot be combined`);
    }
    // pipeline results
    for (const r of this.pipelineSpec.results ?? []) {
      for (const ref of collectTektonRefs(r.value)) {
        const m = /^\$\(\s*(tasks|finally)\.([^.]+)\.results\.(.+?)\s*\)$/.exec(ref);
        if (!m) problems.push(`pipeline result ${r.name}: unsupported reference ${ref}`);
        else if (!this.tasks.has(m[2]) || this.tasks.get(m[2])!.isFinally !== (m[1] === 'finally')) problems.push(`pipeline result ${r.name}: ${ref} refers to an unknown ${m[1]} task`);
        else if (!this.resultDecl(m[2], m[3])) problems.push(`pipeline result ${r.name}: ${ref}: task ${m[2]} declares no such result`);
      }
    }
    // cycles
    const visiting = new Set<string>();
    const done = new Set<string>();
    const visit = (n: string, trail: string[]) => {
      if (done.has(n)) return;
      if (visiting.has(n)) {
        problems.push(`cycle in the task graph: ${[...trail, n].join(' -> ')}`);
        return;
      }
      visiting.add(n);
      for (const d of this.deps.get(n) ?? []) if (this.tasks.has(d)) visit(d, [...trail, n]);
      visiting.delete(n);
      done.add(n);
    };
    for (const n of dagNames) visit(n, []);
    if (missing.length) throw new PipelineFailure('ParameterMissing', `missing task parameters: ${missing.join('; ')}${problems.length ? '; ' + problems.join('; ') : ''}`);
    if (problems.length) throw new PipelineFailure('PipelineValidationFailed', problems.join('; '));
  }

  /** Find the declared result of a task matching `rest` (`name`, `name[*]`, `name[0]`, `name.key`). */
  private resultDecl(task: string, rest: string): { decl: any; suffix: string } | undefined {
    const spec = this.taskSpecs.get(task)?.spec;
    const decls = [...(spec?.results ?? [])].sort((a: any, b: any) => b.name.length - a.name.length);
    for (const d of decls) {
      if (rest === d.name) return { decl: d, suffix: '' };
      if (rest.startsWith(d.name + '[') || rest.startsWith(d.name + '.')) return { decl: d, suffix: rest.slice(d.name.length) };
    }
    return undefined;
  }

  private validateTaskSpec(name: string, pt: any, rawSpec: any, embedded: boolean): string[] {
    const where = `pipeline task ${name}`;
    try {
      const spec = structuredClone(rawSpec);
      spec.steps = (spec.steps ?? []).map((s: any, i: number) => {
        const merged = mergeStepTemplate(spec.stepTemplate, s);
        const o = this.settings.stepOverrides?.(name, stepName(merged, i), structuredClone(merged));
        return o === undefined ? merged : o;
      });
      delete spec.stepTemplate;
      spec.workspaces = [...(spec.workspaces ?? [])];
      for (const w of pt.workspaces ?? []) if (!spec.workspaces.some((d: any) => d.name === w.name)) spec.workspaces.push({ name: w.name });
      const anyNames = embedded ? Object.keys(paramsToMap(pt.params)) : [];
      const context = {
        'context.taskRun.name': 'x', 'context.taskRun.namespace': 'x', 'context.taskRun.uid': 'x', 'context.task.name': 'x', 'context.task.retry-count': '0',
      };
      let s = substituteTaskSpec(spec, validationParamResolver(spec.params, anyNames, where), where);
      const ws = (s.workspaces as any[]).map((d) => ({ name: d.name, bound: true, mountPath: '/x', claim: '', volume: 'x' }));
      // propagated results in embedded specs are resolved at run time
      const resultsLater: Resolver = (expr) => (embedded && /^tasks\.[^.]+\.results\./.test(expr) ? 'x' : undefined);
      const passes = taskRunResolvers({ params: {}, owner: where, context, spec: s, workspaces: ws }).slice(1);
      for (const r of [...passes, resultsLater]) s = substituteTaskSpec(s, r, where);
      return leftoverRefs(s).map((ref) => `${where}: unresolved reference ${ref} in the task`);
    } catch (e) {
      if (e instanceof SubstitutionError) return [e.message];
      throw e;
    }
  }

  private setDeadlines() {
    const t = this.pr.spec?.timeouts ?? {};
    const start = this.startedAt.getTime();
    const pipeline = parseDuration(t.pipeline) ?? parseDuration(this.pr.spec?.timeout) ?? this.defaultTimeoutMs;
    const tasks = parseDuration(t.tasks);
    const fin = parseDuration(t.finally);
    this.pipelineDeadline = pipeline ? start + pipeline : undefined;
    if (tasks) this.tasksDeadline = start + tasks;
    else if (fin && pipeline) this.tasksDeadline = start + pipeline - fin;
    else this.tasksDeadline = this.pipelineDeadline;
  }

  // ---------------------------------------------------------------- execution

  private record(name: string, rec: Partial<TaskRunRecord> & Pick<TaskRunRecord, 'status'>) {
    const st = this.tasks.get(name)!;
    st.record = {
      pipelineTask: name,
      taskRun: `${this.prName}-${name}`,
      results: {},
      steps: [],
      attempts: 0,
      isFinally: st.isFinally,
      ...rec,
    };
    if (rec.status === 'Skipped') this.log(`[${name}] skipped: ${rec.reason}${rec.message ? ` (${rec.message})` : ''}`);
  }

  private skipReason(name: string): string | undefined {
    return this.tasks.get(name)?.record?.status === 'Skipped' ? this.tasks.get(name)!.record!.reason : undefined;
  }

  /** Resolver for $(tasks.X.results.Y...), and in finally tasks $(tasks.X.status|reason) and $(tasks.status). */
  private runtimeResolver(isFinally: boolean): Resolver {
    return (expr) => {
      let m = /^tasks\.([^.]+)\.results\.(.+)$/.exec(expr);
      if (m) {
        const [, task, rest] = m;
        const found = this.resultDecl(task, rest);
        if (!found) return undefined;
        const rec = this.tasks.get(task)?.record;
        const raw = rec?.results[found.decl.name];
        if (raw === undefined) {
          throw new MissingResultError(task, found.decl.name, `Could not find result with name ${found.decl.name} for task ${task}`);
        }
        const type = found.decl.type ?? 'string';
        let value: ParamValue = raw;
        if (type !== 'string') {
          try {
            value = normalizeValue(JSON.parse(raw));
          } catch {
            throw new SubstitutionError(`result ${found.decl.name} of task ${task} is not valid JSON for type ${type}`);
          }
        }
        return selectValue(value, found.suffix, `result ${task}.${found.decl.name}`);
      }
      if (!isFinally) return undefined;
      if (expr === 'tasks.status') return this.aggregateStatus();
      m = /^tasks\.([^.]+)\.(status|reason)$/.exec(expr);
      if (m && this.tasks.has(m[1]) && !this.tasks.get(m[1])!.isFinally) {
        const rec = this.tasks.get(m[1])!.record;
        if (m[2] === 'reason') return rec?.reason ?? '';
        if (rec?.status === 'Succeeded') return 'Succeeded';
        if (rec?.status === 'Failed' || rec?.status === 'TimedOut') return 'Failed';
        return 'None';
      }
      return undefined;
    };
  }

  private aggregateStatus(): string {
    const dag = [...this.tasks.values()].filter((t) => !t.isFinally);
    if (dag.some((t) => !t.record)) return 'None';
    if (dag.some((t) => t.record!.status === 'Failed' || t.record!.status === 'TimedOut')) return 'Failed';
    if (dag.some((t) => t.record!.status === 'Skipped')) return 'Completed';
    return 'Succeeded';
  }

  /** Decide whether a ready task runs; returns the pipeline task with runtime values applied, or undefined if decided otherwise. */
  private decide(name: string): any | undefined {
    const st = this.tasks.get(name)!;
    const pt = structuredClone(st.pt);
    const now = Date.now();
    if (!st.isFinally) {
      if (this.stopping) return this.record(name, { status: 'Skipped', reason: STOPPING });
      if (this.pipelineDeadline !== undefined && now >= this.pipelineDeadline) {
        this.timedOut ??= PIPELINE_TIMEOUT_SKIP;
        return this.record(name, { status: 'Skipped', reason: PIPELINE_TIMEOUT_SKIP });
      }
      if (this.tasksDeadline !== undefined && now >= this.tasksDeadline) {
        this.timedOut ??= TASKS_TIMEOUT_SKIP;
        return this.record(name, { status: 'Skipped', reason: TASKS_TIMEOUT_SKIP });
      }
    } else if (this.finallyDeadline !== undefined && now >= this.finallyDeadline) {
      this.timedOut ??= FINALLY_TIMEOUT_SKIP;
      return this.record(name, { status: 'Skipped', reason: this.pipelineDeadline !== undefined && now >= this.pipelineDeadline ? PIPELINE_TIMEOUT_SKIP : FINALLY_TIMEOUT_SKIP });
    }
    const resolver = this.runtimeResolver(st.isFinally);
    const where = `pipeline task ${name}`;
    // 1. when expressions (if their references resolve)
    let whenMissing: MissingResultError | undefined;
    try {
      const when = pt.when.map((w: any) => ({
        ...w,
        input: typeof w.input === 'string' ? substString(w.input, resolver, `${where} when`) : w.input,
        values: substArray(w.values ?? [], resolver, `${where} when`),
      }));
      const ev = evaluateWhen(when);
      if (!ev.allowed) return this.record(name, { status: 'Skipped', reason: WHEN_SKIP, message: ev.detail });
      pt.when = when;
    } catch (e) {
      if (e instanceof MissingResultError) whenMissing = e;
      else if (e instanceof SubstitutionError) return this.validationFailure(name, 'InvalidTaskResultReference', e.message);
      else throw e;
    }
    // 2. parents skipped for another reason than their when expressions
    if (!st.isFinally) {
      for (const p of this.deps.get(name) ?? []) {
        const r = this.skipReason(p);
        if (r !== undefined && r !== WHEN_SKIP) return this.record(name, { status: 'Skipped', reason: PARENT_SKIP, message: `parent ${p}: ${r}` });
      }
    }
    // 3. result references
    try {
      if (whenMissing) throw whenMissing;
      pt.params = pt.params.map((p: any) => ({ ...p, value: substParamValue(p.value, resolver, `${where} param ${p.name}`) }));
      pt.workspaces = pt.workspaces.map((w: any) => ({ ...w, subPath: typeof w.subPath === 'string' ? substString(w.subPath, resolver, `${where} workspace`) : w.subPath }));
      const ts = this.taskSpecs.get(name)!;
      if (ts.embedded) {
        // propagated results into embedded specs
        pt.taskSpec = substituteTaskSpec(ts.spec, resolver, where);
      }
    } catch (e) {
      if (e instanceof MissingResultError) {
        // Tekton: a finally task, a consumer with onError: continue, or a consumer of a skipped task is skipped;
        // otherwise a result that was not produced fails the PipelineRun with InvalidTaskResultReference.
        const producer = this.tasks.get(e.task)?.record;
        if (st.isFinally || producer?.status === 'Skipped' || pt.onError === 'continue') {
          return this.record(name, { status: 'Skipped', reason: MISSING_RESULTS, message: e.message });
        }
        return this.validationFailure(name, 'InvalidTaskResultReference', `unable to find result referenced by ${where}: ${e.message}`);
      }
      if (e instanceof SubstitutionError) return this.validationFailure(name, 'InvalidTaskResultReference', e.message);
      throw e;
    }
    return pt;
  }

  private validationFailure(name: string, reason: string, message: string): undefined {
    this.log(`[${name}] FAILED (${reason}): ${message}`);
    this.record(name, { status: 'Failed', reason, message });
    this.failure ??= { reason, message };
    this.stopping = true;
    return undefined;
  }

  private async runTask(name: string, pt: any): Promise<void> {
    const st = this.tasks.get(name)!;
    const ts = this.taskSpecs.get(name)!;
    const spec = ts.embedded ? pt.taskSpec : ts.spec;
    const where = `pipeline task ${name}`;
    const taskRunName = `${this.prName}-${name}`;
    const given = paramsToMap(pt.params);
    const p = resolveParams(spec.params ?? [], given, where, true);
    if (p.missing.length || p.problems.length) {
      this.record(name, { status: 'Failed', reason: p.missing.length ? 'ParameterMissing' : 'ParameterTypeMismatch', message: [...p.missing.map((m) => `missing ${m}`), ...p.problems].join('; ') });
      this.stopping = true;
      return;
    }
    const workspaces: WorkspaceBinding[] = [];
    for (const w of pt.workspaces ?? []) {
      const pb = this.prBindings.get(w.workspace ?? w.name);
      if (!pb) continue; // optional and not provided
      const subPath = [pb.binding.subPath, w.subPath].filter(Boolean).join('/') || undefined;
      const source = pb.source ?? volumeSourceFrom(pb.binding, this.settings.claims, `workspace ${w.name}`);
      workspaces.push({ name: w.name, source, subPath, volumeName: pb.volumeName });
    }
    const trs = (this.pr.spec?.taskRunSpecs ?? []).find((x: any) => x.pipelineTaskName === name);
    const podTemplate = mergePodTemplates(this.pr.spec?.taskRunTemplate?.podTemplate, trs?.podTemplate);
    if (this.pr.spec?.taskRunTemplate?.serviceAccountName || trs?.serviceAccountName) {
      podTemplate.serviceAccountName = trs?.serviceAccountName ?? this.pr.spec.taskRunTemplate.serviceAccountName;
    }
    const timeout = parseDuration(trs?.timeout ?? pt.timeout);
    const timeoutMs = timeout === undefined ? this.defaultTimeoutMs : timeout;
    const labels: Record<string, string> = {
      ...(this.pr.metadata?.labels ?? {}),
      'app.kubernetes.io/managed-by': 'tekton-pipelines',
      'tekton.dev/pipeline': this.pipelineName,
      'tekton.dev/pipelineRun': this.prName,
      'tekton.dev/pipelineTask': name,
      'tekton.dev/taskRun': taskRunName,
      ...(ts.taskName ? { 'tekton.dev/task': ts.taskName } : {}),
    };
    this.log(`[${name}] starting TaskRun ${taskRunName}${ts.taskName ? ` (Task ${ts.taskName})` : ''}`);
    const executor = new TaskRunExecutor({
      settings: this.settings,
      pipelineRun: { name: this.prName, namespace: this.namespace, uid: this.uid, labels: this.pr.metadata?.labels ?? {} },
      pipelineName: this.pipelineName,
      pipelineTaskName: name,
      taskName: ts.taskName || taskRunName,
      taskRunName,
      taskSpec: spec,
      params: p.values,
      workspaces,
      podTemplate,
      retries: pt.retries ?? 0,
      timeoutMs: timeoutMs || undefined,
      stageDeadline: st.isFinally ? this.finallyDeadline : minDefined(this.tasksDeadline, this.pipelineDeadline),
      stageDeadlineReason: 'TaskRunCancelled',
      baseDir: path.join(this.runDir, 'taskruns', taskRunName),
      isFinally: st.isFinally,
      labels,
    });
    let rec = await executor.run();
    if (rec.status !== 'Succeeded') {
      if (rec.reason === 'TaskRunCancelled') this.timedOut ??= st.isFinally ? FINALLY_TIMEOUT_SKIP : TASKS_TIMEOUT_SKIP;
      if (pt.onError === 'continue' && !st.isFinally) {
        rec = { ...rec, reason: 'FailureIgnored', message: `${rec.reason}: ${rec.message ?? ''}` };
      } else {
        this.stopping = true;
      }
    }
    st.record = rec;
  }

  /** Run the given tasks as their dependencies allow, up to maxParallel at once. */
  private async schedule(names: string[]): Promise<void> {
    const max = Math.max(1, this.options.maxParallel ?? 1);
    const running = new Map<string, Promise<void>>();
    for (;;) {
      let progressed = false;
      for (const name of names) {
        const st = this.tasks.get(name)!;
        if (st.record || running.has(name)) continue;
        const deps = this.deps.get(name) ?? [];
        if (!deps.every((d) => this.tasks.get(d)?.record)) continue;
        if (running.size >= max) break;
        const pt = this.decide(name);
        progressed = true;
        if (pt === undefined) continue;
        const pr = this.runTask(name, pt).finally(() => running.delete(name));
        running.set(name, pr);
      }
      if (!running.size && !progressed) break;
      if (running.size && (!progressed || running.size >= max)) await Promise.race(running.values());
    }
  }

  private async runDag() {
    await this.schedule((this.pipelineSpec.tasks ?? []).map((t: any) => t.name));
    const unfinished = [...this.tasks.entries()].filter(([, t]) => !t.isFinally && !t.record);
    for (const [n] of unfinished) this.record(n, { status: 'Skipped', reason: STOPPING });
  }

  private async runFinally() {
    const fin = (this.pipelineSpec.finally ?? []).map((t: any) => t.name);
    if (!fin.length) return;
    const fto = parseDuration(this.pr.spec?.timeouts?.finally);
    const now = Date.now();
    this.finallyDeadline = fto ? Math.min(now + fto, this.pipelineDeadline ?? Infinity) : this.pipelineDeadline;
    this.log(`[pipelinerun] running finally tasks (tasks status: ${this.aggregateStatus()})`);
    await this.schedule(fin);
  }

  /**
   * Tekton's ApplyTaskResultsToPipelineResults: a result that refers to a task that did not succeed (skipped,
   * failed) is silently dropped; one that refers to a result a succeeded task did not write is invalid, and an
   * invalid result fails the PipelineRun.
   */
  private pipelineResults(): { results: Record<string, string>; invalid: string[] } {
    const out: Record<string, string> = {};
    const invalid: string[] = [];
    const resolver: Resolver = (expr) => {
      const m = /^(tasks|finally)\.([^.]+)\.results\.(.+)$/.exec(expr);
      if (!m) return undefined;
      const producer = this.tasks.get(m[2])?.record;
      if (producer && producer.status !== 'Succeeded') {
        throw new MissingResultError(m[2], m[3], `task ${m[2]} did not succeed (${producer.status})`);
      }
      return this.runtimeResolver(false)(`tasks.${m[2]}.results.${m[3]}`);
    };
    for (const r of this.pipelineSpec.results ?? []) {
      try {
        const v = substParamValue(normalizeValue(r.value), resolver, `pipeline result ${r.name}`);
        if (collectTektonRefs(v).length) continue;
        out[r.name] = typeof v === 'string' ? v : JSON.stringify(v);
      } catch (e) {
        if (e instanceof MissingResultError && this.tasks.get(e.task)?.record?.status !== 'Succeeded') {
          this.log(`[pipelinerun] pipeline result ${r.name} not emitted: ${e.message}`);
          continue;
        }
        if (e instanceof MissingResultError || e instanceof SubstitutionError) {
          this.log(`[pipelinerun] pipeline result ${r.name} is invalid: ${e.message}`);
          invalid.push(r.name);
          continue;
        }
        throw e;
      }
    }
    return { results: out, invalid };
  }

  private finish(reason?: string, message?: string, results: Record<string, string> = {}): RunPipelineResult {
    const recs = [...this.tasks.values()].map((t) => t.record).filter((r): r is TaskRunRecord => !!r);
    const failed = recs.filter((r) => (r.status === 'Failed' || r.status === 'TimedOut') && r.reason !== 'FailureIgnored');
    const skipped = recs.filter((r) => r.status === 'Skipped');
    let status: 'Succeeded' | 'Failed' = 'Succeeded';
    if (reason) {
      status = 'Failed';
    } else if (this.failure) {
      status = 'Failed';
      reason = this.failure.reason;
      message = this.failure.message;
    } else if (this.timedOut) {
      status = 'Failed';
      reason = 'PipelineRunTimeout';
      message = `PipelineRun ${this.prName} failed to finish within its timeout (${this.timedOut})`;
    } else if (failed.length) {
      status = 'Failed';
      reason = 'Failed';
    } else {
      reason = skipped.length ? 'Completed' : 'Succeeded';
    }
    if (!message) {
      const ignored = recs.filter((r) => r.reason === 'FailureIgnored').length;
      message = `Tasks Completed: ${recs.length - skipped.length} (Failed: ${failed.length + ignored}${ignored ? ` (Ignored: ${ignored})` : ''}), Skipped: ${skipped.length}`;
    }
    this.log(`[pipelinerun] ${status} (${reason}): ${message}`);
    const tasks: Record<string, TaskRunRecord> = {};
    for (const r of recs) tasks[r.pipelineTask] = r;
    return {
      status,
      reason,
      message,
      pipelineRun: { name: this.prName, namespace: this.namespace, uid: this.uid },
      tasks,
      results,
      log: this.lines.join('\n'),
      startedAt: this.startedAt,
      finishedAt: new Date(),
    };
  }
}
