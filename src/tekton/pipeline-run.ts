import { ApiObject, Duration, JsonPatch, Lazy } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { ParamType, ParamValue } from './params';
import { Pipeline, PipelineTask } from './pipeline';
import { checkLastApplied } from './pod-limits';
import { canonicalJson, RUN_NAME_HASH_LENGTH, runInputsDigest, validateNameFromInputs } from './run-name';
import { renderResources } from './step';
import { goDuration, undefinedIfEmpty, validateObjectName } from './util';
import { WorkspaceBinding } from './workspaces';
import { TektonPipelineRun } from '../imports/tekton.dev';

/**
 * The pod-level security context of every TaskRun pod of a run.
 */
export interface PodSecurityContext {
  /**
   * The uid of every container that does not set its own.
   *
   * @default - the image's user (on OpenShift, the namespace's assigned uid)
   */
  readonly runAsUser?: number;

  /**
   * The primary gid of every container that does not set its own.
   *
   * @default - the image's group
   */
  readonly runAsGroup?: number;

  /**
   * Refuse to start containers as uid 0.
   *
   * @default - not set
   */
  readonly runAsNonRoot?: boolean;

  /**
   * The group that owns the volumes and that every container gets as a supplementary
   * group. Giving every task the same fsGroup is what lets one task read what another
   * wrote on a shared workspace.
   *
   * @default - not set
   */
  readonly fsGroup?: number;

  /**
   * When Kubernetes changes the volume's ownership to fsGroup. It may be set without
   * fsGroup: on OpenShift the namespace's SCC fills fsGroup in at pod creation, and the
   * policy applies to that group.
   *
   * @default - Kubernetes' default (Always)
   */
  readonly fsGroupChangePolicy?: kplus.FsGroupChangePolicy;

  /**
   * More supplementary groups for every container.
   *
   * @default - none
   */
  readonly supplementalGroups?: number[];
}

/**
 * A node taint the TaskRun pods tolerate.
 */
export interface Toleration {
  /**
   * The taint key; empty with operator Exists matches every taint.
   *
   * @default - every key
   */
  readonly key?: string;

  /**
   * How the key and value are matched.
   *
   * @default TolerationOperator.EQUAL
   */
  readonly operator?: TolerationOperator;

  /**
   * The taint value, for operator Equal.
   *
   * @default - none
   */
  readonly value?: string;

  /**
   * The taint effect tolerated.
   *
   * @default - every effect
   */
  readonly effect?: kplus.TaintEffect;
}

/**
 * What Tekton applies to the pods it creates for TaskRuns.
 */
export interface PodTemplate {
  /**
   * The pod security context.
   *
   * @default - none
   */
  readonly securityContext?: PodSecurityContext;

  /**
   * Node labels the pods must match.
   *
   * @default - any node
   */
  readonly nodeSelector?: { [key: string]: string };

  /**
   * Taints the pods tolerate.
   *
   * @default - none
   */
  readonly tolerations?: Toleration[];
}

/**
 * Settings for every TaskRun of a PipelineRun.
 */
export interface TaskRunTemplate {
  /**
   * The service account the pods run as: its secrets give registry credentials.
   *
   * @default - the namespace's `default` (Tekton) or `pipeline` (OpenShift Pipelines)
   */
  readonly serviceAccountName?: string;

  /**
   * The pod template.
   *
   * @default - none
   */
  readonly podTemplate?: PodTemplate;
}

/**
 * Settings for the TaskRun of one pipeline task, overriding the run's `taskRunTemplate`.
 */
export interface TaskRunSpec {
  /** The pipeline task. */
  readonly pipelineTask: PipelineTask;

  /**
   * The service account for this task.
   *
   * @default - the run's
   */
  readonly serviceAccountName?: string;

  /**
   * The pod template for this task.
   *
   * @default - the run's
   */
  readonly podTemplate?: PodTemplate;

  /**
   * Compute resources for the whole task.
   *
   * @default - the steps' own
   */
  readonly computeResources?: kplus.ContainerResources;
}

/**
 * Timeouts of a PipelineRun.
 */
export interface PipelineRunTimeouts {
  /**
   * The whole run, finally tasks included. `Duration.seconds(0)` means no timeout.
   *
   * @default - Tekton's default (one hour)
   */
  readonly pipeline?: Duration;

  /**
   * The regular tasks together.
   *
   * @default - what the pipeline timeout leaves
   */
  readonly tasks?: Duration;

  /**
   * The finally tasks together.
   *
   * @default - what the pipeline timeout leaves
   */
  readonly finally?: Duration;
}

/**
 * How a PipelineRun is named from its inputs (`PipelineRunProps.nameFromInputs`).
 *
 * Tekton's webhook refuses any change to the spec of a PipelineRun once it has started
 * (`PipelineRunSpec.ValidateUpdate`), so GitOps cannot re-apply a changed run under its
 * old name. Naming the run `<prefix>-<hash of its inputs>` turns a change into a new
 * object (created, so run, once) and an unchanged variant into the same bytes (nothing to
 * do). The hash covers the pipeline's name, the params the run gives (all, or those
 * `params` lists), `inputs` and `nonce`; with `includePipelineSpec`, also the specs of
 * the Pipeline and of the Tasks it references.
 */
export interface NameFromInputsOptions {
  /**
   * The readable part of the name, before the hash: lowercase letters, digits, '-' and
   * '.', at most 52 characters (a Kubernetes label value, which Tekton makes of the run's
   * name, holds 63: 52, a dash and the 10-character hash).
   */
  readonly prefix: string;

  /**
   * The params that join the hash, by name. List the ones that decide what the run
   * does, so that a param a later version adds (with the same value for every run) does
   * not rename every run.
   *
   * @default - every param the run gives
   */
  readonly params?: string[];

  /**
   * More inputs that decide what the run does but that are neither params nor the
   * pipeline's name (for example the registries its pipeline pushes to), by key.
   *
   * @default - none
   */
  readonly inputs?: { [key: string]: string };

  /**
   * Hash the Pipeline's spec and its referenced Tasks' specs too, so that any change of
   * the pipeline (a library upgrade, a new step) renames the run and so runs it again.
   * Off, a pipeline change applies to the next run a changed input creates.
   *
   * @default false
   */
  readonly includePipelineSpec?: boolean;

  /**
   * A value that joins the hash: change it (say, to today's date) to run again with
   * unchanged inputs.
   *
   * @default - none
   */
  readonly nonce?: string;
}

/**
 * Properties of a `PipelineRun`.
 */
export interface PipelineRunProps {
  /** The Pipeline to run (referenced by name). */
  readonly pipeline: Pipeline;

  /**
   * The run's `metadata.name`.
   *
   * @default - a name cdk8s derives from the construct path, unless generateName is set
   */
  readonly name?: string;

  /**
   * A prefix Kubernetes completes to a unique name at creation (`kubectl create`).
   * Exclusive with name.
   *
   * @default - a fixed name
   */
  readonly generateName?: string;

  /**
   * Name the run from its inputs: `<prefix>-<hash>`, where the hash covers the
   * pipeline's name, the params and whatever `nameFromInputs` adds. The same inputs give
   * the same name on any machine; a change gives a new name, so GitOps creates a new run
   * instead of updating a started one, which Tekton refuses. Exclusive with name and
   * generateName. Two runs with the same inputs fail at synth.
   *
   * @default - a fixed name (see name)
   */
  readonly nameFromInputs?: NameFromInputsOptions;

  /**
   * How the run is listed where runs are described (the page `GitOpsLayout` writes
   * beside each Pipeline): column => value, in this order.
   *
   * @default - the params the run gives
   */
  readonly summary?: { [column: string]: string };

  /**
   * Values for the pipeline's params, by name.
   *
   * @default - none
   */
  readonly params?: { [name: string]: ParamValue };

  /**
   * A volume source for each of the pipeline's workspaces, by name.
   *
   * @default - none
   */
  readonly workspaces?: { [name: string]: WorkspaceBinding };

  /**
   * Service account and pod template of every TaskRun.
   *
   * @default - none
   */
  readonly taskRunTemplate?: TaskRunTemplate;

  /**
   * Per-task overrides of the taskRunTemplate.
   *
   * @default - none
   */
  readonly taskRunSpecs?: TaskRunSpec[];

  /**
   * Timeouts.
   *
   * @default - Tekton's defaults
   */
  readonly timeouts?: PipelineRunTimeouts;
}

/**
 * A Tekton PipelineRun (tekton.dev/v1): one execution of a Pipeline.
 */
export class PipelineRun extends Construct {
  /** The PipelineRun object; an escape hatch (`addJsonPatch`) for fields not modelled here. */
  public readonly apiObject: ApiObject;
  /** The pipeline it runs. */
  public readonly pipeline: Pipeline;
  /**
   * The sha256 (hex) of the inputs the name was made from, when named from inputs.
   *
   * @default - not named from inputs
   */
  public readonly inputsDigest?: string;
  private readonly props: PipelineRunProps;

  constructor(scope: Construct, id: string, props: PipelineRunProps) {
    super(scope, id);
    const where = `pipelinerun ${this.node.path}`;
    if (props.name !== undefined && props.generateName !== undefined) {
      throw new Error(`${where} has both name "${props.name}" and generateName "${props.generateName}": give one`);
    }
    if (props.nameFromInputs !== undefined && (props.name !== undefined || props.generateName !== undefined)) {
      throw new Error(`${where} has nameFromInputs and ${props.name !== undefined ? `name "${props.name}"` : `generateName "${props.generateName}"`}: give one`);
    }
    if (props.nameFromInputs !== undefined) {
      validateNameFromInputs(where, props.nameFromInputs);
      for (const p of props.nameFromInputs.params ?? []) {
        if (!(p in (props.params ?? {}))) {
          throw new Error(`${where}: nameFromInputs.params lists "${p}", which the run does not give (it gives ${JSON.stringify(Object.keys(props.params ?? {}))})`);
        }
      }
    }
    if (props.name !== undefined) validateObjectName(`${where}: name`, props.name);
    if (props.generateName !== undefined) {
      // Kubernetes appends 5 random characters.
      validateObjectName(`${where}: generateName`, `${props.generateName}xxxxx`);
    }
    validateTimeouts(where, props.timeouts);
    validatePodTemplate(`${where}: taskRunTemplate.podTemplate`, props.taskRunTemplate?.podTemplate);
    if (props.taskRunTemplate?.serviceAccountName) validateObjectName(`${where}: serviceAccountName`, props.taskRunTemplate.serviceAccountName);
    const seen = new Set<string>();
    for (const spec of props.taskRunSpecs ?? []) {
      if (spec.pipelineTask._pipeline !== props.pipeline) {
        throw new Error(`${where}: taskRunSpecs names task "${spec.pipelineTask.name}" of another pipeline`);
      }
      if (seen.has(spec.pipelineTask.name)) throw new Error(`${where}: taskRunSpecs has task "${spec.pipelineTask.name}" twice`);
      seen.add(spec.pipelineTask.name);
      validatePodTemplate(`${where}: taskRunSpecs[${spec.pipelineTask.name}].podTemplate`, spec.podTemplate);
    }
    this.pipeline = props.pipeline;
    this.props = props;
    let name = props.name;
    if (props.nameFromInputs) {
      this.inputsDigest = this.digestInputs();
      name = `${props.nameFromInputs.prefix}-${this.inputsDigest.slice(0, RUN_NAME_HASH_LENGTH)}`;
    }
    this.apiObject = new TektonPipelineRun(this, 'Resource', {
      metadata: props.generateName !== undefined ? { generateName: props.generateName }
        : name !== undefined ? { name } : {},
      spec: Lazy.any({ produce: () => this._toSpec() }),
    });
    if (props.generateName) {
      // ApiObject always fills metadata.name: drop it, a generated name is the point.
      this.apiObject.addJsonPatch(JsonPatch.remove('/metadata/name'));
    }
    this.node.addValidation({ validate: () => this.validateRun() });
  }

  /** The run's `metadata.name` (with generateName: the name cdk8s would give; Kubernetes picks the real one). */
  public get name(): string {
    return this.apiObject.name;
  }

  /**
   * What the run shows where runs are listed: `summary`, else the params it gives.
   */
  public get summary(): { [column: string]: string } {
    if (this.props.summary) return { ...this.props.summary };
    const out: { [column: string]: string } = {};
    for (const [k, v] of Object.entries(this.props.params ?? {})) out[k] = typeof v.value === 'string' ? v.value : JSON.stringify(v.value);
    return out;
  }

  private digestInputs(): string {
    const o = this.props.nameFromInputs!;
    const params: { [name: string]: any } = {};
    for (const [k, v] of Object.entries(this.props.params ?? {})) if (!o.params || o.params.includes(k)) params[k] = v.value;
    return runInputsDigest({
      pipeline: this.pipeline.name,
      params,
      inputs: o.inputs,
      nonce: o.nonce,
      pipelineSpec: o.includePipelineSpec ? pipelineSpecOf(this.pipeline) : undefined,
    });
  }

  /** Within one namespace: the same inputs twice, or a name taken twice. */
  private validateNaming(): string[] {
    const where = `pipelinerun ${this.node.path}`;
    const errors: string[] = [];
    if (this.props.nameFromInputs?.includePipelineSpec && this.digestInputs() !== this.inputsDigest) {
      errors.push(`${where} was named from pipeline ${this.pipeline.node.path} before the pipeline (or one of its tasks) changed: `
        + 'create the run after the pipeline is complete, so that its name covers the final spec');
    }
    // Report each pair once, on the run added later.
    const runs = this.node.root.node.findAll().filter((c): c is PipelineRun => c instanceof PipelineRun);
    const namespace = this.apiObject.metadata.namespace ?? '';
    for (const other of runs) {
      if (other === this) break;
      // The same run in two namespaces is two deployments, not a duplicate.
      if ((other.apiObject.metadata.namespace ?? '') !== namespace) continue;
      if (this.inputsDigest !== undefined && other.inputsDigest === this.inputsDigest) {
        errors.push(`${where} and pipelinerun ${other.node.path} have the same inputs (the same pipeline, params and inputs, `
          + `hash ${this.inputsDigest.slice(0, RUN_NAME_HASH_LENGTH)}): they would build the same thing twice; remove one, or change what it builds`);
      } else if (this.props.generateName === undefined && other.props.generateName === undefined
        && other.name === this.name) {
        errors.push(`${where} and pipelinerun ${other.node.path} are both named "${this.name}"${namespace ? ` in namespace ${namespace}` : ''}: give each its own name`);
      }
    }
    return errors;
  }

  /** @internal */
  public _toSpec(): any {
    const p = this.props;
    const t = p.timeouts;
    return {
      pipelineRef: { name: this.pipeline.name },
      params: undefinedIfEmpty(Object.entries(p.params ?? {}).map(([name, v]) => ({ name, value: v.value }))),
      workspaces: undefinedIfEmpty(Object.entries(p.workspaces ?? {}).map(([name, b]) => b._toSpec(name))),
      taskRunTemplate: p.taskRunTemplate ? {
        serviceAccountName: p.taskRunTemplate.serviceAccountName,
        podTemplate: renderPodTemplate(p.taskRunTemplate.podTemplate),
      } : undefined,
      taskRunSpecs: undefinedIfEmpty((p.taskRunSpecs ?? []).map((s) => ({
        pipelineTaskName: s.pipelineTask.name,
        serviceAccountName: s.serviceAccountName,
        podTemplate: renderPodTemplate(s.podTemplate),
        computeResources: renderResources(s.computeResources),
      }))),
      timeouts: t ? {
        pipeline: t.pipeline ? goDuration(t.pipeline) : undefined,
        tasks: t.tasks ? goDuration(t.tasks) : undefined,
        finally: t.finally ? goDuration(t.finally) : undefined,
      } : undefined,
    };
  }

  private validateRun(): string[] {
    const where = `pipelinerun ${this.node.path}`;
    const errors: string[] = [...this.validateNaming(), ...checkLastApplied(where, this.apiObject.toJson())];
    const declared = new Map(this.pipeline.params.map((x) => [x.name, x]));
    for (const [name, value] of Object.entries(this.props.params ?? {})) {
      const param = declared.get(name);
      if (!param) {
        errors.push(`${where} gives param "${name}" that pipeline ${this.pipeline.node.path} does not declare (it declares ${JSON.stringify([...declared.keys()])})`);
      } else if (param.type !== value.type) {
        errors.push(`${where} gives param "${name}" a value of type ${value.type}, but it is of type ${param.type}`);
      } else if (param.enum && !param.enum.includes(value.value)) {
        errors.push(`${where} gives param "${name}" the value "${value.value}", which is not one of ${JSON.stringify(param.enum)}`);
      } else if (param.type === ParamType.OBJECT) {
        const missing = param.properties.filter((k) => !(k in (value.value ?? {})));
        if (missing.length > 0) errors.push(`${where} gives object param "${name}" without keys ${JSON.stringify(missing)}`);
      }
    }
    for (const param of this.pipeline.params) {
      if (param.required && !(param.name in (this.props.params ?? {}))) {
        errors.push(`${where} does not give required param "${param.name}" of pipeline ${this.pipeline.node.path}: add it to params`);
      }
    }
    const workspaces = new Map(this.pipeline.workspaces.map((w) => [w.name, w]));
    for (const name of Object.keys(this.props.workspaces ?? {})) {
      if (!workspaces.has(name)) {
        errors.push(`${where} binds workspace "${name}" that pipeline ${this.pipeline.node.path} does not declare (it declares ${JSON.stringify([...workspaces.keys()])})`);
      }
    }
    for (const ws of this.pipeline.workspaces) {
      if (!ws.optional && !(ws.name in (this.props.workspaces ?? {}))) {
        errors.push(`${where} does not bind required workspace "${ws.name}" of pipeline ${this.pipeline.node.path}: add it to workspaces`);
      }
    }
    return errors;
  }
}

/** The Pipeline's spec and the specs of the Tasks it references by name, as they synthesize. */
function pipelineSpecOf(pipeline: Pipeline): any {
  const tasks: { [name: string]: any } = {};
  for (const t of [...pipeline.tasks, ...pipeline.finallyTasks]) {
    if (!t.task.embedded && t.task.apiObject) tasks[t.task.name] = t.task.apiObject.toJson().spec;
  }
  // Through canonical JSON and back: the same spec gives the same value whatever the key order.
  return JSON.parse(canonicalJson({ pipeline: pipeline.apiObject.toJson().spec, tasks }));
}

function validateTimeouts(where: string, t: PipelineRunTimeouts | undefined) {
  if (!t) return;
  const secs = (d?: Duration) => (d === undefined ? undefined : (goDuration(d), d.toSeconds()));
  const pipeline = secs(t.pipeline);
  const tasks = secs(t.tasks);
  const fin = secs(t.finally);
  if (pipeline === undefined || pipeline === 0) {
    // Tekton: without a pipeline timeout, tasks and finally are checked against the default (60m)
    // by the webhook only when pipeline is set; 0 means "no timeout".
    return;
  }
  if (tasks !== undefined && tasks > pipeline) {
    throw new Error(`${where}: timeouts.tasks (${goDuration(t.tasks!)}) exceeds timeouts.pipeline (${goDuration(t.pipeline!)})`);
  }
  if (fin !== undefined && fin > pipeline) {
    throw new Error(`${where}: timeouts.finally (${goDuration(t.finally!)}) exceeds timeouts.pipeline (${goDuration(t.pipeline!)})`);
  }
  if (tasks !== undefined && fin !== undefined && tasks + fin > pipeline) {
    throw new Error(`${where}: timeouts.tasks + timeouts.finally (${tasks + fin}s) exceed timeouts.pipeline (${pipeline}s): raise pipeline or lower the others`);
  }
}

const MAX_ID = 2147483647;

function validatePodTemplate(where: string, pt: PodTemplate | undefined) {
  if (!pt) return;
  const sc = pt.securityContext ?? {};
  const check = (field: string, v: number | undefined) => {
    if (v !== undefined && !(Number.isInteger(v) && v >= 0 && v <= MAX_ID)) {
      throw new Error(`${where}: securityContext.${field} ${v} is out of range: use a whole number from 0 to ${MAX_ID}`);
    }
  };
  check('runAsUser', sc.runAsUser);
  check('runAsGroup', sc.runAsGroup);
  check('fsGroup', sc.fsGroup);
  for (const g of sc.supplementalGroups ?? []) check('supplementalGroups[]', g);
  if (sc.runAsNonRoot && sc.runAsUser === 0) {
    throw new Error(`${where}: securityContext has runAsNonRoot with runAsUser 0: no pod could start`);
  }
  for (const [k] of Object.entries(pt?.nodeSelector ?? {})) {
    if (k.trim() === '') throw new Error(`${where}: nodeSelector has an empty key`);
  }
  for (const t of pt?.tolerations ?? []) {
    // The types say it; JavaScript callers can still pass any string.
    if (t.operator !== undefined && !Object.values(TolerationOperator).includes(t.operator)) {
      throw new Error(`${where}: toleration operator "${t.operator}" is invalid: use TolerationOperator.EQUAL or TolerationOperator.EXISTS`);
    }
    if (t.effect !== undefined && !Object.values(kplus.TaintEffect).includes(t.effect)) {
      throw new Error(`${where}: toleration effect "${t.effect}" is invalid: use TaintEffect.NO_SCHEDULE, PREFER_NO_SCHEDULE or NO_EXECUTE (cdk8s-plus)`);
    }
  }
}

function renderPodTemplate(pt: PodTemplate | undefined): any {
  if (!pt) return undefined;
  const sc = pt.securityContext;
  return {
    securityContext: sc ? {
      runAsUser: sc.runAsUser,
      runAsGroup: sc.runAsGroup,
      runAsNonRoot: sc.runAsNonRoot,
      fsGroup: sc.fsGroup,
      fsGroupChangePolicy: sc.fsGroupChangePolicy,
      supplementalGroups: undefinedIfEmpty(sc.supplementalGroups),
    } : undefined,
    nodeSelector: undefinedIfEmpty(pt.nodeSelector),
    tolerations: undefinedIfEmpty(pt.tolerations?.map((t) => ({ ...t }))),
  };
}

/**
 * How a toleration matches a taint (Kubernetes `Toleration.operator`).
 */
export enum TolerationOperator {
  /** The taint's key and value equal the toleration's. */
  EQUAL = 'Equal',
  /** The taint has the key, whatever its value (give no value). */
  EXISTS = 'Exists',
}
