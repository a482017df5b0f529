import { ApiObject, Lazy } from 'cdk8s';
import { Construct } from 'constructs';
import { Param, ParamOptions } from './params';
import { checkLastApplied, checkPlaceScripts } from './pod-limits';
import { Result, ResultOptions } from './results';
import { renderTemplate, Step, StepProps, StepTemplateProps, TaskVolume, validateStepTemplate } from './step';
import { checkUnique, findVariables, undefinedIfEmpty, validateObjectName } from './util';
import { Workspace, WorkspaceOptions } from './workspaces';
import { TektonTask, toJson_TaskSpec } from '../imports/tekton.dev';

/**
 * Properties of a `Task`.
 */
export interface TaskProps {
  /**
   * The Task's `metadata.name`, which pipelines reference.
   *
   * @default - a name cdk8s derives from the construct path
   */
  readonly name?: string;

  /**
   * What the task does.
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

  /**
   * Defaults every step inherits (a step's own value wins; env is merged by name).
   *
   * @default - none
   */
  readonly stepTemplate?: StepTemplateProps;

  /**
   * Render the task only inside the pipelines that use it (`taskSpec`), not as a
   * Task object of its own.
   *
   * @default false
   */
  readonly embedded?: boolean;
}

/**
 * A Tekton Task (tekton.dev/v1): steps that run in order in one pod.
 *
 * @example
 * const task = new Task(chart, 'hello');
 * const who = task.addParam('who', { default: ParamValue.string('world') });
 * task.addStep({
 *   name: 'greet',
 *   image: 'registry.access.redhat.com/ubi9/ubi-minimal@sha256:...',
 *   env: { WHO: who.envValue() },
 *   script: 'echo "hello, $WHO"',
 * });
 */
export class Task extends Construct {
  /**
   * The Task object, or undefined for an embedded task. Use it as an escape hatch
   * (`addJsonPatch`) for fields this construct does not model.
   */
  public readonly apiObject?: ApiObject;
  /** The task's description, if any. */
  public readonly description?: string;
  /** Whether the task is rendered inline in pipelines. */
  public readonly embedded: boolean;
  private readonly _name?: string;
  private readonly displayName?: string;
  private readonly stepTemplate?: StepTemplateProps;
  private readonly _params = new Map<string, Param>();
  private readonly _results = new Map<string, Result>();
  private readonly _workspaces = new Map<string, Workspace>();
  private readonly _steps: Step[] = [];
  private readonly _volumes = new Map<string, TaskVolume>();

  constructor(scope: Construct, id: string, props: TaskProps = {}) {
    super(scope, id);
    if (props.name !== undefined) validateObjectName(`task ${this.node.path}: name`, props.name);
    if (props.stepTemplate) validateStepTemplate(`task ${this.node.path}`, props.stepTemplate);
    this._name = props.name;
    this.description = props.description;
    this.displayName = props.displayName;
    this.stepTemplate = props.stepTemplate;
    this.embedded = props.embedded ?? false;
    if (!this.embedded) {
      this.apiObject = new TektonTask(this, 'Resource', {
        // An explicit `name: undefined` would override cdk8s' generated name.
        metadata: props.name !== undefined ? { name: props.name } : {},
        spec: Lazy.any({ produce: () => this._toSpec() }),
      });
    }
    this.node.addValidation({ validate: () => this.validateTask() });
  }

  /** The Task's `metadata.name`. */
  public get name(): string {
    if (this.apiObject) return this.apiObject.name;
    return this._name ?? this.node.id;
  }

  /** The declared params. */
  public get params(): Param[] {
    return [...this._params.values()];
  }

  /** The declared results. */
  public get results(): Result[] {
    return [...this._results.values()];
  }

  /** The declared workspaces. */
  public get workspaces(): Workspace[] {
    return [...this._workspaces.values()];
  }

  /** The steps, in order. */
  public get steps(): Step[] {
    return [...this._steps];
  }

  /** Declares a param. Pass its value to steps with `param.envValue()`. */
  public addParam(name: string, options: ParamOptions = {}): Param {
    checkUnique('param', `task ${this.node.path}`, name, this._params.keys());
    const param = new Param(`task ${this.node.path}`, name, options);
    this._params.set(name, param);
    return param;
  }

  /** Declares a result. A step writes it to `result.path`. */
  public addResult(name: string, options: ResultOptions = {}): Result {
    checkUnique('result', `task ${this.node.path}`, name, this._results.keys());
    const result = new Result(`task ${this.node.path}`, name, options);
    this._results.set(name, result);
    return result;
  }

  /** Declares a workspace. */
  public addWorkspace(name: string, options: WorkspaceOptions = {}): Workspace {
    checkUnique('workspace', `task ${this.node.path}`, name, this._workspaces.keys());
    const ws = new Workspace(`task ${this.node.path}`, name, options);
    this._workspaces.set(name, ws);
    return ws;
  }

  /** Adds a step after the existing ones. */
  public addStep(props: StepProps): Step {
    checkUnique('step', `task ${this.node.path}`, props.name, this._steps.map((s) => s.name));
    const step = new Step(`task ${this.node.path}`, props);
    this._steps.push(step);
    return step;
  }

  /** Adds a volume to the task's pod, for steps to mount. */
  public addVolume(volume: TaskVolume): TaskVolume {
    checkUnique('volume', `task ${this.node.path}`, volume.name, this._volumes.keys());
    this._volumes.set(volume.name, volume);
    return volume;
  }

  /** Looks up a declared result by name, or throws. */
  public result(name: string): Result {
    const r = this._results.get(name);
    if (!r) {
      throw new Error(`task ${this.node.path} has no result "${name}": its results are ${JSON.stringify([...this._results.keys()])}`);
    }
    return r;
  }

  /**
   * The spec in the L1 shape (quantities as objects).
   *
   * @internal
   */
  public _toSpec(): any {
    return {
      displayName: this.displayName,
      description: this.description,
      params: undefinedIfEmpty(this.params.map((p) => p._toSpec())),
      results: undefinedIfEmpty(this.results.map((r) => r._toSpec())),
      workspaces: undefinedIfEmpty(this.workspaces.map((w) => w._toSpec())),
      volumes: undefinedIfEmpty([...this._volumes.values()].map((v) => v._toSpec())),
      stepTemplate: this.stepTemplate ? renderTemplate(this.stepTemplate) : undefined,
      steps: this._steps.map((s) => s._toSpec()),
    };
  }

  /**
   * The spec as JSON, for embedding as a pipeline task's `taskSpec`.
   *
   * @internal
   */
  public _toEmbeddedJson(): any {
    return toJson_TaskSpec(this._toSpec());
  }

  private validateTask(): string[] {
    const errors: string[] = [];
    const where = `task ${this.node.path}`;
    if (this._steps.length === 0) {
      errors.push(`${where} has no steps: add one with addStep()`);
    }
    for (const step of this._steps) {
      if (!step.image && !this.stepTemplate?.image) {
        errors.push(`${where}: step "${step.name}" has no image: set image on the step or on the stepTemplate`);
      }
      for (const volume of step._volumes()) {
        if (this._volumes.get(volume.name) !== volume) {
          errors.push(`${where}: step "${step.name}" mounts volume "${volume.name}" that the task does not have: call task.addVolume() with it`);
        }
      }
      const strings = [...step._strings(), ...templateStrings(this.stepTemplate)];
      errors.push(...this.checkVariables(`${where}: step "${step.name}"`, strings));
    }
    // What the pod and kubectl apply can hold (pod-limits.ts): an embedded task is a pod too.
    errors.push(...checkPlaceScripts(where, this._steps.map((s) => s._toSpec().script ?? '')));
    if (this.apiObject) errors.push(...checkLastApplied(`task ${this.node.path}`, this.apiObject.toJson()));
    return errors;
  }

  private checkVariables(where: string, strings: string[]): string[] {
    const errors: string[] = [];
    for (const v of strings.flatMap((s) => findVariables(s))) {
      const name = v.path[0];
      if (v.root === 'params' && !this._params.has(name)) {
        errors.push(`${where} uses "$(${v.expression})" but the task declares no param "${name}": call addParam("${name}")`);
      } else if (v.root === 'workspaces' && !this._workspaces.has(name)) {
        errors.push(`${where} uses "$(${v.expression})" but the task declares no workspace "${name}": call addWorkspace("${name}")`);
      } else if (v.root === 'results' && !this._results.has(name)) {
        errors.push(`${where} uses "$(${v.expression})" but the task declares no result "${name}": call addResult("${name}")`);
      } else if (v.root === 'context' && !this.embedded && !TASK_CONTEXT.includes(v.expression)) {
        errors.push(`${where} uses "$(${v.expression})", which Tekton does not substitute in a Task (only ${TASK_CONTEXT.join(', ')}): `
          + 'declare a param and let the pipeline pass the value (e.g. RUN_ID: "$(context.pipelineRun.uid)")');
      }
    }
    return errors;
  }
}

/** The context variables Tekton substitutes in a referenced Task (pipeline-level ones stay literal). */
const TASK_CONTEXT = ['context.taskRun.name', 'context.taskRun.namespace', 'context.taskRun.uid', 'context.task.name', 'context.task.retry-count'];

function templateStrings(t: StepTemplateProps | undefined): string[] {
  if (!t) return [];
  return [t.image, t.workingDir, ...Object.values(t.env ?? {}).map((e) => e.value)].filter((s): s is string => typeof s === 'string');
}
