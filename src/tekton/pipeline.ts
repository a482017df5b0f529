import { ApiObject, Duration, Lazy } from 'cdk8s';
import { Construct } from 'constructs';
import { Param, ParamOptions, ParamValue } from './params';
import { checkLastApplied } from './pod-limits';
import { Task } from './task';
import { checkUnique, findVariables, goDuration, undefinedIfEmpty, validateDnsLabel, validateObjectName } from './util';
import { PipelineWorkspace, PipelineWorkspaceOptions } from './workspaces';
import { TektonPipeline } from '../imports/tekton.dev';

/**
 * Properties of a `Pipeline`.
 */
export interface PipelineProps {
  /**
   * The Pipeline's `metadata.name`, which PipelineRuns reference.
   *
   * @default - a name cdk8s derives from the construct path
   */
  readonly name?: string;

  /**
   * What the pipeline does.
   *
   * @default - no description
   */
  readonly description?: string;

  /**
   * A human-readable name for UIs.
   *
   * @default - none
   */
  readonly displayName?: string;
}

/**
 * Options for `Pipeline.addFinally()`; `addTask()` takes these plus `runAfter`.
 */
export interface FinallyTaskOptions {
  /** The Task to run. A non-embedded Task is referenced by name (`taskRef`), an embedded one inlined (`taskSpec`). */
  readonly task: Task;

  /**
   * Values for the task's params, by param name. Every required param must be given.
   *
   * @default - none
   */
  readonly params?: { [name: string]: ParamValue };

  /**
   * The pipeline workspace bound to each of the task's workspaces, by task workspace name.
   *
   * @default - none
   */
  readonly workspaces?: { [name: string]: PipelineWorkspace };

  /**
   * How many times Tekton retries the task after it fails.
   *
   * @default 0
   */
  readonly retries?: number;

  /**
   * How long one attempt of the task may run.
   *
   * @default - Tekton's default (one hour, or the run's `timeouts.tasks`)
   */
  readonly timeout?: Duration;

  /**
   * Run the task only when every expression holds; otherwise it is skipped.
   *
   * @default - always run
   */
  readonly when?: WhenExpression[];

  /**
   * A human-readable name for UIs.
   *
   * @default - none
   */
  readonly displayName?: string;
}

/**
 * Options for `Pipeline.addTask()`.
 */
export interface PipelineTaskOptions extends FinallyTaskOptions {
  /**
   * Tasks that must finish first. Tasks whose results this task uses are waited for
   * without being listed here.
   *
   * @default - none
   */
  readonly runAfter?: PipelineTask[];
}

/**
 * Options for `Pipeline.addResult()`.
 */
export interface PipelineResultOptions {
  /** The value, usually a task result: `pipelineTask.result('name')`. */
  readonly value: string;

  /**
   * What the result holds.
   *
   * @default - no description
   */
  readonly description?: string;
}

/**
 * A task of a pipeline. Created by `Pipeline.addTask()` or `Pipeline.addFinally()`.
 */
export class PipelineTask {
  /** The pipeline task's name, unique in the pipeline. */
  public readonly name: string;
  /** The Task it runs. */
  public readonly task: Task;
  /** True for a `finally` task. */
  public readonly isFinally: boolean;
  /** @internal */
  public readonly _pipeline: Pipeline;
  private readonly options: PipelineTaskOptions;
  private readonly _runAfter: PipelineTask[];
  private readonly _params: Map<string, ParamValue>;
  private readonly _workspaces: Map<string, { ws: PipelineWorkspace; subPath?: string }>;

  /** @internal */
  constructor(pipeline: Pipeline, name: string, options: PipelineTaskOptions, isFinally: boolean) {
    const where = `pipeline ${pipeline.node.path}`;
    validateDnsLabel(`${where}: task name`, name);
    if (options.retries !== undefined && !(Number.isInteger(options.retries) && options.retries >= 0)) {
      throw new Error(`${where}: task "${name}" retries ${options.retries} must be a whole number, 0 or more`);
    }
    if (options.timeout) goDuration(options.timeout);
    if (isFinally && options.runAfter?.length) {
      throw new Error(`${where}: finally task "${name}" has runAfter: finally tasks run after all tasks; drop runAfter`);
    }
    this._pipeline = pipeline;
    this.name = name;
    this.task = options.task;
    this.isFinally = isFinally;
    this.options = options;
    this._runAfter = [];
    this._params = new Map(Object.entries(options.params ?? {}));
    this._workspaces = new Map(Object.entries(options.workspaces ?? {}).map(([k, ws]) => [k, { ws }]));
    for (const t of options.runAfter ?? []) this.addRunAfter(t);
  }

  /** The tasks listed in `runAfter`. */
  public get runAfter(): PipelineTask[] {
    return [...this._runAfter];
  }

  /** Makes this task wait for `other`. */
  public addRunAfter(other: PipelineTask): void {
    const where = `pipeline ${this._pipeline.node.path}: task "${this.name}"`;
    if (this.isFinally) throw new Error(`${where} is a finally task: finally tasks cannot have runAfter`);
    if (other._pipeline !== this._pipeline) {
      throw new Error(`${where} runs after "${other.name}" of another pipeline (${other._pipeline.node.path}): runAfter only within one pipeline`);
    }
    if (other.isFinally) throw new Error(`${where} runs after finally task "${other.name}": regular tasks cannot wait for finally tasks`);
    if (other === this) throw new Error(`${where} runs after itself`);
    if (!this._runAfter.includes(other)) this._runAfter.push(other);
  }

  /** Sets (or replaces) the value of one of the task's params. */
  public setParam(name: string, value: ParamValue): void {
    this._params.set(name, value);
  }

  /** Binds one of the task's workspaces to a pipeline workspace. */
  public bindWorkspace(name: string, workspace: PipelineWorkspace, subPath?: string): void {
    this._workspaces.set(name, { ws: workspace, subPath });
  }

  /**
   * The Tekton variable for one of this task's results, `$(tasks.name.results.r)`.
   * Using it in another task's params makes that task wait for this one.
   */
  public result(name: string): string {
    this.task.result(name);
    return `$(tasks.${this.name}.results.${name})`;
  }

  /** The Tekton variable for this task's status (`Succeeded`, `Failed`, `None`), for finally tasks. */
  public get status(): string {
    return `$(tasks.${this.name}.status)`;
  }

  /** Names of the tasks this one waits for (runAfter and result references). @internal */
  public _dependencies(): string[] {
    const deps = new Set(this._runAfter.map((t) => t.name));
    for (const v of this._strings().flatMap((s) => findVariables(s))) {
      if (v.root === 'tasks' && v.path[1] === 'results') deps.add(v.path[0]);
    }
    return [...deps];
  }

  /** Every string Tekton substitutes in (param values, when). @internal */
  public _strings(): string[] {
    return [
      ...[...this._params.values()].flatMap((p) => p._strings()),
      ...(this.options.when ?? []).flatMap((w) => [w.input, ...w.values]),
    ];
  }

  /** @internal */
  public _validate(): string[] {
    const errors: string[] = [];
    const where = `pipeline ${this._pipeline.node.path}: task "${this.name}"`;
    const declared = new Map(this.task.params.map((p) => [p.name, p]));
    for (const [name, value] of this._params) {
      const p = declared.get(name);
      if (!p) {
        errors.push(`${where} passes param "${name}" that task ${this.task.node.path} does not declare (it declares ${JSON.stringify([...declared.keys()])})`);
      } else if (p.type !== value.type) {
        errors.push(`${where} passes a value of type ${value.type} to param "${name}" of type ${p.type}`);
      } else if (p.enum && typeof value.value === 'string' && findVariables(value.value).length === 0 && !p.enum.includes(value.value)) {
        errors.push(`${where} passes "${value.value}" to param "${name}", which allows only ${JSON.stringify(p.enum)}`);
      }
    }
    for (const p of this.task.params) {
      if (p.required && !this._params.has(p.name)) {
        errors.push(`${where} does not pass required param "${p.name}" of task ${this.task.node.path}: add it to params`);
      }
    }
    const taskWs = new Map(this.task.workspaces.map((w) => [w.name, w]));
    for (const [name, binding] of this._workspaces) {
      if (!taskWs.has(name)) {
        errors.push(`${where} binds workspace "${name}" that task ${this.task.node.path} does not declare (it declares ${JSON.stringify([...taskWs.keys()])})`);
      }
      if (!this._pipeline.workspaces.includes(binding.ws)) {
        errors.push(`${where} binds workspace "${name}" to "${binding.ws.name}", which is not a workspace of this pipeline: use pipeline.addWorkspace()`);
      }
    }
    for (const w of this.task.workspaces) {
      if (!w.optional && !this._workspaces.has(w.name)) {
        errors.push(`${where} does not bind workspace "${w.name}" of task ${this.task.node.path}: add it to workspaces`);
      }
    }
    return errors;
  }

  /** @internal */
  public _toSpec(): any {
    return {
      name: this.name,
      displayName: this.options.displayName,
      taskRef: this.task.embedded ? undefined : { kind: 'Task', name: this.task.name },
      taskSpec: this.task.embedded ? this.task._toEmbeddedJson() : undefined,
      params: undefinedIfEmpty([...this._params].map(([name, v]) => ({ name, value: v.value }))),
      workspaces: undefinedIfEmpty([...this._workspaces].map(([name, b]) => ({ name, workspace: b.ws.name, subPath: b.subPath }))),
      runAfter: undefinedIfEmpty(this._runAfter.map((t) => t.name)),
      retries: this.options.retries || undefined,
      timeout: this.options.timeout ? goDuration(this.options.timeout) : undefined,
      when: undefinedIfEmpty((this.options.when ?? []).map((w) => w._toSpec())),
    };
  }
}

/**
 * A Tekton Pipeline (tekton.dev/v1): tasks and the order they run in.
 */
export class Pipeline extends Construct {
  /** The Pipeline object; an escape hatch (`addJsonPatch`) for fields not modelled here. */
  public readonly apiObject: ApiObject;
  private readonly props: PipelineProps;
  private readonly _params = new Map<string, Param>();
  private readonly _workspaces = new Map<string, PipelineWorkspace>();
  private readonly _tasks: PipelineTask[] = [];
  private readonly _finally: PipelineTask[] = [];
  private readonly _results = new Map<string, PipelineResultOptions>();

  constructor(scope: Construct, id: string, props: PipelineProps = {}) {
    super(scope, id);
    if (props.name !== undefined) validateObjectName(`pipeline ${this.node.path}: name`, props.name);
    this.props = props;
    this.apiObject = new TektonPipeline(this, 'Resource', {
      metadata: props.name !== undefined ? { name: props.name } : {},
      spec: Lazy.any({ produce: () => this._toSpec() }),
    });
    this.node.addValidation({ validate: () => this.validatePipeline() });
  }

  /** The Pipeline's `metadata.name`. */
  public get name(): string {
    return this.apiObject.name;
  }

  /** The declared params. */
  public get params(): Param[] {
    return [...this._params.values()];
  }

  /** The declared workspaces. */
  public get workspaces(): PipelineWorkspace[] {
    return [...this._workspaces.values()];
  }

  /** The tasks, in the order added (finally tasks excluded). */
  public get tasks(): PipelineTask[] {
    return [...this._tasks];
  }

  /** The finally tasks. */
  public get finallyTasks(): PipelineTask[] {
    return [...this._finally];
  }

  /**
   * The Tekton variable for the aggregate status of the pipeline's tasks, `$(tasks.status)`,
   * for finally tasks: `Succeeded` (every task succeeded), `Completed` (every task succeeded
   * or was skipped), `Failed` (one failed), `None` (none failed, but not every task ended:
   * a timeout or a cancellation).
   */
  public get tasksStatus(): string {
    return '$(tasks.status)';
  }

  /** Declares a param that PipelineRuns give. */
  public addParam(name: string, options: ParamOptions = {}): Param {
    checkUnique('param', `pipeline ${this.node.path}`, name, this._params.keys());
    const p = new Param(`pipeline ${this.node.path}`, name, options);
    this._params.set(name, p);
    return p;
  }

  /** Declares a workspace that PipelineRuns bind. */
  public addWorkspace(name: string, options: PipelineWorkspaceOptions = {}): PipelineWorkspace {
    checkUnique('workspace', `pipeline ${this.node.path}`, name, this._workspaces.keys());
    const ws = new PipelineWorkspace(`pipeline ${this.node.path}`, name, options);
    this._workspaces.set(name, ws);
    return ws;
  }

  /** Adds a task. */
  public addTask(name: string, options: PipelineTaskOptions): PipelineTask {
    this.checkTaskName(name);
    const t = new PipelineTask(this, name, options, false);
    this._tasks.push(t);
    return t;
  }

  /** Adds a task that runs after all others, whether they succeeded or not. */
  public addFinally(name: string, options: FinallyTaskOptions): PipelineTask {
    this.checkTaskName(name);
    const t = new PipelineTask(this, name, options, true);
    this._finally.push(t);
    return t;
  }

  /** Declares a pipeline result, e.g. from a task result. */
  public addResult(name: string, options: PipelineResultOptions): void {
    checkUnique('result', `pipeline ${this.node.path}`, name, this._results.keys());
    if (!/^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/.test(name)) {
      throw new Error(`pipeline ${this.node.path}: result name "${name}" is invalid: use letters, digits, '-', '_' and '.'`);
    }
    if (options.value.trim() === '') throw new Error(`pipeline ${this.node.path}: result "${name}" has an empty value`);
    this._results.set(name, { ...options });
  }

  private checkTaskName(name: string) {
    checkUnique('task', `pipeline ${this.node.path}`, name, [...this._tasks, ...this._finally].map((t) => t.name));
  }

  /** @internal */
  public _toSpec(): any {
    return {
      displayName: this.props.displayName,
      description: this.props.description,
      params: undefinedIfEmpty(this.params.map((p) => p._toSpec())),
      workspaces: undefinedIfEmpty(this.workspaces.map((w) => w._toSpec())),
      tasks: this._tasks.map((t) => t._toSpec()),
      finally: undefinedIfEmpty(this._finally.map((t) => t._toSpec())),
      results: undefinedIfEmpty([...this._results].map(([name, r]) => ({ name, description: r.description, value: r.value }))),
    };
  }

  private validatePipeline(): string[] {
    const where = `pipeline ${this.node.path}`;
    const errors: string[] = [];
    if (this._tasks.length === 0) errors.push(`${where} has no tasks: add one with addTask()`);
    const regular = new Map(this._tasks.map((t) => [t.name, t]));
    const all = [...this._tasks, ...this._finally];
    for (const t of all) {
      errors.push(...t._validate());
      for (const v of t._strings().flatMap((s) => findVariables(s))) {
        errors.push(...this.checkVariable(`${where}: task "${t.name}"`, v.root, v.path, v.expression, t));
      }
    }
    for (const [name, r] of this._results) {
      for (const v of findVariables(r.value)) {
        errors.push(...this.checkVariable(`${where}: result "${name}"`, v.root, v.path, v.expression, undefined));
      }
    }
    // Cycles through runAfter and result references (Tekton's DAG check).
    const state = new Map<string, 'visiting' | 'done'>();
    const visit = (t: PipelineTask, trail: string[]): string | undefined => {
      if (state.get(t.name) === 'done') return undefined;
      if (state.get(t.name) === 'visiting') return [...trail, t.name].join(' -> ');
      state.set(t.name, 'visiting');
      for (const dep of t._dependencies()) {
        const d = regular.get(dep);
        if (!d) continue; // reported by checkVariable
        const cycle = visit(d, [...trail, t.name]);
        if (cycle) return cycle;
      }
      state.set(t.name, 'done');
      return undefined;
    };
    for (const t of this._tasks) {
      const cycle = visit(t, []);
      if (cycle) {
        errors.push(`${where} has a cycle: ${cycle}: break it by removing a runAfter or a result reference`);
        break;
      }
    }
    // An embedded task's spec is inside the Pipeline's JSON (pod-limits.ts).
    errors.push(...checkLastApplied(where, this.apiObject.toJson()));
    return errors;
  }

  private checkVariable(where: string, root: string, path: string[], expression: string, from: PipelineTask | undefined): string[] {
    const ref = `"$(${expression})"`;
    if (root === 'params') {
      if (!this._params.has(path[0])) return [`${where} uses ${ref} but the pipeline declares no param "${path[0]}": call pipeline.addParam("${path[0]}")`];
    } else if (root === 'workspaces') {
      if (!this._workspaces.has(path[0])) return [`${where} uses ${ref} but the pipeline declares no workspace "${path[0]}"`];
    } else if (root === 'tasks') {
      if (path[0] === undefined) return [];
      // $(tasks.status): the aggregate status of the pipeline's tasks, for finally tasks only.
      if (path[0] === 'status' && path.length === 1) {
        return from?.isFinally ? [] : [`${where} uses ${ref}: the tasks' aggregate status is only available to finally tasks`];
      }
      const target = [...this._tasks, ...this._finally].find((t) => t.name === path[0]);
      if (!target) return [`${where} uses ${ref} but the pipeline has no task "${path[0]}"`];
      if (path[1] === 'results') {
        if (target.isFinally && from !== undefined) {
          return [`${where} uses ${ref}: results of finally tasks can only be used in pipeline results`];
        }
        if (!target.task.results.some((r) => r.name === path[2])) {
          return [`${where} uses ${ref} but task "${target.name}" declares no result "${path[2]}" (it declares ${JSON.stringify(target.task.results.map((r) => r.name))})`];
        }
        if (target === from) return [`${where} uses its own result ${ref}`];
      } else if (path[1] === 'status' && (from === undefined || !from.isFinally)) {
        return [`${where} uses ${ref}: task status is only available to finally tasks`];
      }
    }
    return [];
  }
}

/**
 * A condition on a pipeline task: the task runs only when every expression holds.
 */
export class WhenExpression {
  /** Holds when `input` (after substitution) is one of `values`. */
  public static isIn(input: string, values: string[]): WhenExpression {
    return new WhenExpression(input, WhenOperator.IN, values);
  }

  /** Holds when `input` (after substitution) is none of `values`. */
  public static isNotIn(input: string, values: string[]): WhenExpression {
    return new WhenExpression(input, WhenOperator.NOT_IN, values);
  }

  /** The value tested. */
  public readonly input: string;
  /** How `input` is compared with the values. */
  public readonly operator: WhenOperator;
  private readonly _values: string[];

  private constructor(input: string, operator: WhenOperator, values: string[]) {
    if (values.length === 0) throw new Error(`when expression on "${input}" has no values: give at least one`);
    this.input = input;
    this.operator = operator;
    this._values = [...values];
  }

  /** The values compared against. */
  public get values(): string[] {
    return [...this._values];
  }

  /** @internal */
  public _toSpec(): any {
    return { input: this.input, operator: this.operator, values: this.values };
  }
}

/**
 * The operator of a `WhenExpression` (Tekton's `when[].operator`).
 */
export enum WhenOperator {
  /** The input is one of the values. */
  IN = 'in',
  /** The input is none of the values. */
  NOT_IN = 'notin',
}
