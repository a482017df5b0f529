import { Duration, Size } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import { goDuration, validateDnsLabel, validateObjectName, findVariables } from './util';
import { quantity } from './workspaces';

/**
 * What Tekton does when a step fails.
 */
export enum OnError {
  /** Fail the task and skip the remaining steps (Tekton's default). */
  STOP_AND_FAIL = 'stopAndFail',
  /** Record the exit code and go on with the next step. */
  CONTINUE = 'continue',
}

/**
 * The security context of a step's container.
 *
 * Absent fields are not emitted: the pod's security context and the cluster's policy
 * (on OpenShift, the namespace's SCC) decide them.
 */
export interface StepSecurityContext {
  /**
   * The uid the step runs as.
   *
   * @default - the pod's `runAsUser`, else the image's user
   */
  readonly runAsUser?: number;

  /**
   * The primary gid the step runs as.
   *
   * @default - the pod's `runAsGroup`, else the image's group
   */
  readonly runAsGroup?: number;

  /**
   * Refuse to start the container as uid 0.
   *
   * @default - not set
   */
  readonly runAsNonRoot?: boolean;

  /**
   * Run privileged. Steps of a pipeline rarely need it; prefer adding one capability.
   *
   * @default - not set (unprivileged)
   */
  readonly privileged?: boolean;

  /**
   * Whether a process may gain more privileges than its parent (setuid binaries).
   *
   * @default - not set
   */
  readonly allowPrivilegeEscalation?: boolean;

  /**
   * Mount the container's root filesystem read-only.
   *
   * @default - not set
   */
  readonly readOnlyRootFilesystem?: boolean;

  /**
   * Capabilities to add.
   *
   * @default - none
   */
  readonly addCapabilities?: kplus.Capability[];

  /**
   * Capabilities to drop.
   *
   * @default - none
   */
  readonly dropCapabilities?: kplus.Capability[];
}

/**
 * Where a Task volume is mounted in a step.
 */
export interface VolumeMount {
  /** The volume (added to the task with `addVolume()`). */
  readonly volume: TaskVolume;
  /** The absolute path in the container. */
  readonly mountPath: string;

  /**
   * Mount read-only.
   *
   * @default false
   */
  readonly readOnly?: boolean;

  /**
   * Mount only this path of the volume.
   *
   * @default - the whole volume
   */
  readonly subPath?: string;
}

/**
 * Fields a step and a Task's `stepTemplate` share.
 */
export interface StepTemplateProps {
  /**
   * The container image. Pin it by digest for repeatable runs.
   *
   * @default - from the stepTemplate (a step must end up with one)
   */
  readonly image?: string;

  /**
   * Environment variables. This is how params, workspace paths and result paths reach
   * a script: `param.envValue()`, `workspace.pathEnvValue()`, `result.pathEnvValue()`.
   *
   * @default - none
   */
  readonly env?: { [name: string]: kplus.EnvValue };

  /**
   * The working directory.
   *
   * @default - the image's
   */
  readonly workingDir?: string;

  /**
   * The container's security context.
   *
   * @default - none
   */
  readonly securityContext?: StepSecurityContext;

  /**
   * CPU, memory and ephemeral storage requests and limits.
   *
   * @default - none
   */
  readonly computeResources?: kplus.ContainerResources;

  /**
   * Task volumes to mount.
   *
   * @default - none
   */
  readonly volumeMounts?: VolumeMount[];
}

/**
 * A step of a Task: one container, run after the previous step finished.
 */
export interface StepProps extends StepTemplateProps {
  /** The step's name (a DNS-1123 label, unique in the task). */
  readonly name: string;

  /**
   * A script the container runs. Without a shebang Tekton runs it with `sh` under
   * `set -e`. It must not contain `$(params.`, `$(tasks.` or `$(context.` variables:
   * Tekton pastes their values into the script text, where a value becomes code. Hand
   * values to the script through `env` instead.
   *
   * @default - none (give `command`)
   */
  readonly script?: string;

  /**
   * The command, instead of a script.
   *
   * @default - the image's entrypoint
   */
  readonly command?: string[];

  /**
   * Arguments to the command or script.
   *
   * @default - none
   */
  readonly args?: string[];

  /**
   * How long the step may run before Tekton fails it.
   *
   * @default - no step timeout
   */
  readonly timeout?: Duration;

  /**
   * What happens when the step fails.
   *
   * @default OnError.STOP_AND_FAIL
   */
  readonly onError?: OnError;
}

/** The Tekton variable roots that must never be pasted into a script. */
const FORBIDDEN_IN_SCRIPT = ['params', 'tasks', 'context'];

/**
 * A step of a Task. Created by `Task.addStep()`.
 */
export class Step {
  /** The step's name. */
  public readonly name: string;
  private readonly props: StepProps;

  /** @internal */
  constructor(owner: string, props: StepProps) {
    validateDnsLabel(`${owner}: step name`, props.name);
    const where = `${owner}: step "${props.name}"`;
    if (props.script !== undefined && props.command !== undefined) {
      throw new Error(`${where} has both script and command: give one`);
    }
    if (props.script !== undefined && props.script.trim() === '') {
      throw new Error(`${where} has an empty script`);
    }
    if (props.image !== undefined && props.image.trim() === '') {
      throw new Error(`${where} has an empty image`);
    }
    for (const v of findVariables(props.script)) {
      if (FORBIDDEN_IN_SCRIPT.includes(v.root)) {
        throw new Error(`${where} script contains "$(${v.expression})": Tekton would paste the value into the script, where it can run as code. `
          + 'Pass it through env (e.g. env: { NAME: param.envValue() }) and read "$NAME" in the script');
      }
    }
    for (const name of Object.keys(props.env ?? {})) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
        throw new Error(`${where} env var name "${name}" is invalid: use letters, digits and '_', not starting with a digit`);
      }
    }
    validateTemplate(where, props);
    if (props.timeout) goDuration(props.timeout);
    this.name = props.name;
    this.props = { ...props };
  }

  /** The image, if set on the step. */
  public get image(): string | undefined {
    return this.props.image;
  }

  /** The script, if any. */
  public get script(): string | undefined {
    return this.props.script;
  }

  /** Every string of the step in which Tekton substitutes variables. @internal */
  public _strings(): string[] {
    return [
      this.props.image, this.props.script, this.props.workingDir,
      ...(this.props.command ?? []), ...(this.props.args ?? []),
      ...Object.values(this.props.env ?? {}).map((e) => e.value),
    ].filter((s): s is string => typeof s === 'string');
  }

  /** The volumes the step mounts. @internal */
  public _volumes(): TaskVolume[] {
    return (this.props.volumeMounts ?? []).map((m) => m.volume);
  }

  /** @internal */
  public _toSpec(): any {
    return {
      name: this.name,
      ...renderTemplate(this.props),
      script: this.props.script,
      command: this.props.command,
      args: this.props.args,
      timeout: this.props.timeout ? goDuration(this.props.timeout) : undefined,
      onError: this.props.onError,
    };
  }
}

function validateTemplate(where: string, props: StepTemplateProps) {
  const sc = props.securityContext;
  for (const [field, value] of [['runAsUser', sc?.runAsUser], ['runAsGroup', sc?.runAsGroup]] as const) {
    if (value !== undefined && !(Number.isInteger(value) && value >= 0 && value <= 2147483647)) {
      throw new Error(`${where} securityContext.${field} ${value} is out of range: use a whole number from 0 to 2147483647`);
    }
  }
  if (sc?.runAsNonRoot && sc.runAsUser === 0) {
    throw new Error(`${where} securityContext has runAsNonRoot with runAsUser 0: the container could never start`);
  }
  for (const m of props.volumeMounts ?? []) {
    if (!m.mountPath.startsWith('/')) {
      throw new Error(`${where} mounts volume "${m.volume.name}" at "${m.mountPath}": mountPath must be absolute`);
    }
  }
}

/** @internal */
export function renderTemplate(props: StepTemplateProps): any {
  const env = Object.entries(props.env ?? {}).map(([name, v]) => ({ name, value: v.value, valueFrom: v.valueFrom }));
  return {
    image: props.image,
    env: env.length > 0 ? env : undefined,
    workingDir: props.workingDir,
    securityContext: renderSecurityContext(props.securityContext),
    computeResources: renderResources(props.computeResources),
    volumeMounts: props.volumeMounts?.length
      ? props.volumeMounts.map((m) => ({ name: m.volume.name, mountPath: m.mountPath, readOnly: m.readOnly || undefined, subPath: m.subPath }))
      : undefined,
  };
}

/** @internal */
export function validateStepTemplate(owner: string, props: StepTemplateProps): void {
  validateTemplate(`${owner}: stepTemplate`, props);
}

function renderSecurityContext(sc: StepSecurityContext | undefined): any {
  if (!sc) return undefined;
  const capabilities = (sc.addCapabilities?.length || sc.dropCapabilities?.length)
    ? { add: sc.addCapabilities?.length ? sc.addCapabilities : undefined, drop: sc.dropCapabilities?.length ? sc.dropCapabilities : undefined }
    : undefined;
  return {
    runAsUser: sc.runAsUser,
    runAsGroup: sc.runAsGroup,
    runAsNonRoot: sc.runAsNonRoot,
    privileged: sc.privileged,
    allowPrivilegeEscalation: sc.allowPrivilegeEscalation,
    readOnlyRootFilesystem: sc.readOnlyRootFilesystem,
    capabilities,
  };
}

/** @internal */
export function renderResources(r: kplus.ContainerResources | undefined): any {
  if (!r) return undefined;
  const requests: Record<string, any> = {};
  const limits: Record<string, any> = {};
  const put = (target: Record<string, any>, key: string, value: any) => {
    if (value !== undefined) target[key] = { value };
  };
  put(requests, 'cpu', r.cpu?.request?.amount);
  put(limits, 'cpu', r.cpu?.limit?.amount);
  put(requests, 'memory', r.memory?.request ? quantity(r.memory.request) : undefined);
  put(limits, 'memory', r.memory?.limit ? quantity(r.memory.limit) : undefined);
  put(requests, 'ephemeral-storage', r.ephemeralStorage?.request ? quantity(r.ephemeralStorage.request) : undefined);
  put(limits, 'ephemeral-storage', r.ephemeralStorage?.limit ? quantity(r.ephemeralStorage.limit) : undefined);
  const out = {
    requests: Object.keys(requests).length ? requests : undefined,
    limits: Object.keys(limits).length ? limits : undefined,
  };
  return out.requests || out.limits ? out : undefined;
}

/**
 * Options for `TaskVolume.emptyDir()`.
 */
export interface EmptyDirVolumeOptions {
  /**
   * The most the directory may hold.
   *
   * @default - no limit
   */
  readonly sizeLimit?: Size;

  /**
   * Where the directory lives.
   *
   * @default EmptyDirMedium.DEFAULT
   */
  readonly medium?: kplus.EmptyDirMedium;
}

/**
 * Options for `TaskVolume.secret()` and `TaskVolume.configMap()`.
 */
export interface KeyVolumeOptions {
  /**
   * The mode of the files, e.g. 0o440.
   *
   * @default 0o644
   */
  readonly defaultMode?: number;

  /**
   * Start the task even when the Secret or ConfigMap does not exist.
   *
   * @default false
   */
  readonly optional?: boolean;
}

/**
 * A volume of a Task's pod, mounted into steps with `volumeMounts`.
 */
export class TaskVolume {
  /** A scratch directory for the task's steps. */
  public static emptyDir(name: string, options: EmptyDirVolumeOptions = {}): TaskVolume {
    return new TaskVolume(name, {
      emptyDir: {
        medium: options.medium || undefined,
        sizeLimit: options.sizeLimit ? quantity(options.sizeLimit) : undefined,
      },
    });
  }

  /** The keys of a Secret as files. */
  public static secret(name: string, secretName: string, options: KeyVolumeOptions = {}): TaskVolume {
    validateObjectName(`volume "${name}" secret name`, secretName);
    return new TaskVolume(name, { secret: { secretName, defaultMode: mode(name, options.defaultMode), optional: options.optional } });
  }

  /** The keys of a ConfigMap as files. */
  public static configMap(name: string, configMapName: string, options: KeyVolumeOptions = {}): TaskVolume {
    validateObjectName(`volume "${name}" configMap name`, configMapName);
    return new TaskVolume(name, { configMap: { name: configMapName, defaultMode: mode(name, options.defaultMode), optional: options.optional } });
  }

  /** The volume's name. */
  public readonly name: string;
  private readonly source: any;

  private constructor(name: string, source: any) {
    validateDnsLabel('volume name', name);
    this.name = name;
    this.source = source;
  }

  /** @internal */
  public _toSpec(): any {
    return { name: this.name, ...this.source };
  }
}

function mode(name: string, m: number | undefined): number | undefined {
  if (m !== undefined && !(Number.isInteger(m) && m >= 0 && m <= 0o777)) {
    throw new Error(`volume "${name}" defaultMode ${m} is out of range: use 0 to 0o777`);
  }
  return m;
}
