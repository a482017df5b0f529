import { Size } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import { validateDnsLabel } from './util';

/**
 * Options for `Task.addWorkspace()`.
 */
export interface WorkspaceOptions {
  /**
   * What the workspace holds.
   *
   * @default - no description
   */
  readonly description?: string;

  /**
   * Where the workspace is mounted in each step.
   *
   * @default /workspace/<name>
   */
  readonly mountPath?: string;

  /**
   * Mount the workspace read-only.
   *
   * @default false
   */
  readonly readOnly?: boolean;

  /**
   * The task runs without this workspace bound (check `bound` in the script).
   *
   * @default false
   */
  readonly optional?: boolean;
}

/**
 * A workspace a Task declares: a volume a PipelineRun provides, shared by the steps.
 */
export class Workspace {
  /** The workspace's name. */
  public readonly name: string;
  /** The description, if any. */
  public readonly description?: string;
  /** The mount path, if not the default. */
  public readonly mountPath?: string;
  /** Whether it is mounted read-only. */
  public readonly readOnly: boolean;
  /** Whether the task runs without it. */
  public readonly optional: boolean;

  /** @internal */
  constructor(owner: string, name: string, options: WorkspaceOptions = {}) {
    validateDnsLabel(`${owner}: workspace name`, name);
    if (options.mountPath !== undefined && !options.mountPath.startsWith('/')) {
      throw new Error(`${owner}: workspace "${name}" mountPath "${options.mountPath}" is not absolute: start it with '/'`);
    }
    this.name = name;
    this.description = options.description;
    this.mountPath = options.mountPath;
    this.readOnly = options.readOnly ?? false;
    this.optional = options.optional ?? false;
  }

  /** The Tekton variable for where the workspace is mounted: `$(workspaces.name.path)`. */
  public get path(): string {
    return `$(workspaces.${this.name}.path)`;
  }

  /** The Tekton variable that is `true` when the workspace is bound: `$(workspaces.name.bound)`. */
  public get bound(): string {
    return `$(workspaces.${this.name}.bound)`;
  }

  /** An env value holding the workspace's mount path, for a step script. */
  public pathEnvValue(): kplus.EnvValue {
    return kplus.EnvValue.fromValue(this.path);
  }

  /** @internal */
  public _toSpec(): any {
    return {
      name: this.name,
      description: this.description,
      mountPath: this.mountPath,
      readOnly: this.readOnly || undefined,
      optional: this.optional || undefined,
    };
  }
}

/**
 * Options for `Pipeline.addWorkspace()`.
 */
export interface PipelineWorkspaceOptions {
  /**
   * What the workspace holds.
   *
   * @default - no description
   */
  readonly description?: string;

  /**
   * A PipelineRun may leave this workspace unbound.
   *
   * @default false
   */
  readonly optional?: boolean;
}

/**
 * A workspace a Pipeline declares, bound by each PipelineRun and passed to its tasks.
 */
export class PipelineWorkspace {
  /** The workspace's name. */
  public readonly name: string;
  /** The description, if any. */
  public readonly description?: string;
  /** Whether a run may leave it unbound. */
  public readonly optional: boolean;

  /** @internal */
  constructor(owner: string, name: string, options: PipelineWorkspaceOptions = {}) {
    validateDnsLabel(`${owner}: workspace name`, name);
    this.name = name;
    this.description = options.description;
    this.optional = options.optional ?? false;
  }

  /** The Tekton variable that is `true` when a run bound it: `$(workspaces.name.bound)`. */
  public get bound(): string {
    return `$(workspaces.${this.name}.bound)`;
  }

  /** @internal */
  public _toSpec(): any {
    return { name: this.name, description: this.description, optional: this.optional || undefined };
  }
}

/**
 * Options for `WorkspaceBinding.volumeClaimTemplate()`.
 */
export interface VolumeClaimTemplateOptions {
  /** The size of the volume each run gets. */
  readonly storage: Size;

  /**
   * The storage class.
   *
   * @default - the cluster's default storage class
   */
  readonly storageClassName?: string;

  /**
   * The access modes.
   *
   * @default [PersistentVolumeAccessMode.READ_WRITE_ONCE]
   */
  readonly accessModes?: kplus.PersistentVolumeAccessMode[];

  /**
   * Mount only this directory of the volume.
   *
   * @default - the whole volume
   */
  readonly subPath?: string;
}

/**
 * Options for `WorkspaceBinding.persistentVolumeClaim()`.
 */
export interface PersistentVolumeClaimBindingOptions {
  /**
   * Mount the claim read-only.
   *
   * @default false
   */
  readonly readOnly?: boolean;

  /**
   * Mount only this directory of the volume.
   *
   * @default - the whole volume
   */
  readonly subPath?: string;
}

/**
 * Options for `WorkspaceBinding.emptyDir()`.
 */
export interface EmptyDirBindingOptions {
  /**
   * The most the directory may hold.
   *
   * @default - no limit
   */
  readonly sizeLimit?: Size;

  /**
   * Where the directory lives.
   *
   * @default EmptyDirMedium.DEFAULT (the node's disk)
   */
  readonly medium?: kplus.EmptyDirMedium;
}

/**
 * What a PipelineRun binds to one of its pipeline's workspaces: exactly one volume source.
 */
export class WorkspaceBinding {
  /**
   * A fresh PersistentVolumeClaim for each run, deleted with the run. Nothing from an
   * earlier run can be read from it.
   */
  public static volumeClaimTemplate(options: VolumeClaimTemplateOptions): WorkspaceBinding {
    const mebibytes = options.storage.toMebibytes();
    if (!(mebibytes > 0)) {
      throw new Error(`volumeClaimTemplate storage ${mebibytes}Mi must be positive`);
    }
    const modes = options.accessModes ?? [kplus.PersistentVolumeAccessMode.READ_WRITE_ONCE];
    if (modes.length === 0) throw new Error('volumeClaimTemplate accessModes is empty: give at least one');
    return new WorkspaceBinding(WorkspaceBindingKind.VOLUME_CLAIM_TEMPLATE, {
      volumeClaimTemplate: {
        spec: {
          accessModes: modes,
          storageClassName: options.storageClassName,
          resources: { requests: { storage: quantity(options.storage) } },
        },
      },
      subPath: options.subPath,
    });
  }

  /**
   * An existing PersistentVolumeClaim. Its content outlives the run: a later run sees
   * what an earlier one left.
   */
  public static persistentVolumeClaim(claimName: string, options: PersistentVolumeClaimBindingOptions = {}): WorkspaceBinding {
    validateDnsLabel('persistentVolumeClaim claimName', claimName);
    return new WorkspaceBinding(WorkspaceBindingKind.PERSISTENT_VOLUME_CLAIM, {
      persistentVolumeClaim: { claimName, readOnly: options.readOnly || undefined },
      subPath: options.subPath,
    });
  }

  /** A directory that lives as long as each TaskRun's pod: not shared between tasks. */
  public static emptyDir(options: EmptyDirBindingOptions = {}): WorkspaceBinding {
    return new WorkspaceBinding(WorkspaceBindingKind.EMPTY_DIR, {
      emptyDir: {
        medium: options.medium || undefined,
        sizeLimit: options.sizeLimit ? quantity(options.sizeLimit) : undefined,
      },
    });
  }

  /** The keys of a Secret, one file each. */
  public static secret(secretName: string): WorkspaceBinding {
    validateDnsLabel('secret name', secretName);
    return new WorkspaceBinding(WorkspaceBindingKind.SECRET, { secret: { secretName } });
  }

  /** The keys of a ConfigMap, one file each. */
  public static configMap(configMapName: string): WorkspaceBinding {
    validateDnsLabel('configMap name', configMapName);
    return new WorkspaceBinding(WorkspaceBindingKind.CONFIG_MAP, { configMap: { name: configMapName } });
  }

  /** The kind of volume source. */
  public readonly kind: WorkspaceBindingKind;
  private readonly spec: any;

  private constructor(kind: WorkspaceBindingKind, spec: any) {
    this.kind = kind;
    this.spec = spec;
  }

  /** @internal */
  public _toSpec(name: string): any {
    return { name, ...this.spec };
  }
}

/**
 * The volume source of a `WorkspaceBinding`, named by its field in a PipelineRun's workspace.
 */
export enum WorkspaceBindingKind {
  /** A fresh PersistentVolumeClaim per run (`volumeClaimTemplate`). */
  VOLUME_CLAIM_TEMPLATE = 'volumeClaimTemplate',
  /** An existing PersistentVolumeClaim (`persistentVolumeClaim`). */
  PERSISTENT_VOLUME_CLAIM = 'persistentVolumeClaim',
  /** A directory per TaskRun pod (`emptyDir`). */
  EMPTY_DIR = 'emptyDir',
  /** A Secret's keys (`secret`). */
  SECRET = 'secret',
  /** A ConfigMap's keys (`configMap`). */
  CONFIG_MAP = 'configMap',
}

/**
 * Renders a Size as a Kubernetes quantity in the largest whole binary unit.
 *
 * @internal
 */
export function quantity(size: Size): string {
  const mi = size.toMebibytes();
  if (!Number.isInteger(mi) || mi < 0) {
    throw new Error(`size ${mi}Mi is not a whole, non-negative number of mebibytes`);
  }
  if (mi > 0 && mi % (1024 * 1024) === 0) return `${mi / (1024 * 1024)}Ti`;
  if (mi > 0 && mi % 1024 === 0) return `${mi / 1024}Gi`;
  return `${mi}Mi`;
}
