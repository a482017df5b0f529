/**
 * Public types of the local Tekton runner (test harness only, not part of the library).
 */

/** A parsed Kubernetes/Tekton document (the runner reads Task, Pipeline and PipelineRun; others are ignored). */
export type Manifest = Record<string, any>;

/** An extra host directory or file mounted into every step (e.g. test fixtures). */
export interface HostMount {
  /** Path on this host. */
  readonly hostPath: string;
  /** Path inside the step; defaults to `hostPath`. */
  readonly containerPath?: string;
  /** Mount read-only (default true). */
  readonly readOnly?: boolean;
}

/**
 * OpenShift's SCC admission for the run's namespace, with the namespace's ranges from its annotations (each
 * `<start>/<size>`). Every TaskRun pod (steps and Tekton's init containers) is admitted like OpenShift admits it.
 *
 * restricted-v2 (policy 'restricted-v2', the default): unset runAsUser (pod and container) gets the range's first
 * uid, unset fsGroup the group range's first value; a uid or fsGroup outside its range, a privileged container, an
 * added capability other than NET_BIND_SERVICE or allowPrivilegeEscalation: true refuse the pod (TaskRun reason
 * PodCreationFailed, with the SCC's words); every container drops ALL capabilities and runs with no_new_privs.
 * supplementalGroups are RunAsAny, as in restricted-v2.
 *
 * pipelines-scc (policy 'pipelines-scc', what OpenShift Pipelines gives its `pipeline` service account, tried before
 * restricted-v2 by its priority 10): runAsUser RunAsAny, so a container without runAsUser runs as its image's USER
 * (from `imageUsers`, which is then required; an image missing from it fails the TaskRun, reason ImageUserUnknown);
 * fsGroup MustRunAs the supplemental-groups range (default its first value); privilege escalation allowed; SETFCAP
 * added and MKNOD dropped on every container; a privileged container or any other added capability is refused
 * by it (and then restricted-v2 is tried, as OpenShift does; `TaskRunRecord.pod.scc` says which admitted the pod).
 */
export interface SccOptions {
  /** `openshift.io/sa.scc.uid-range`, e.g. '1000650000/10000'. */
  readonly uidRange: string;
  /** `openshift.io/sa.scc.supplemental-groups` (fsGroup's range). Default: the uid range, as OpenShift allocates them. */
  readonly supplementalGroups?: string;
  /** The SCC the TaskRun's service account gets. Default 'restricted-v2'. */
  readonly policy?: 'restricted-v2' | 'pipelines-scc';
  /**
   * Under pipelines-scc: the USER of Tekton's shell image, which runs the place-scripts init container (its
   * runAsUser is not set either). Default root (0:0), an image without a USER.
   */
  readonly initContainerUser?: ImageUser;
}

/** The user an image runs as (its `USER`, and that user's primary group in the image's /etc/passwd). */
export interface ImageUser {
  readonly uid: number;
  readonly gid: number;
}

/**
 * A namespace LimitRange's container defaults (`spec.limits[type=Container]`), as the LimitRanger admission plugin
 * applies them: each resource a container (step or init container) does not limit itself gets `default`. Quantities
 * are Kubernetes quantities ('1', '500m', '2Gi').
 */
export interface LimitRangeOptions {
  /** `default.cpu`: enforced as a CFS quota (cpu.cfs_quota_us / cfs_period_us, or cpu.max). */
  readonly cpu?: string;
  /** `default.memory`: enforced as the cgroup's memory limit; over it, the kernel's OOM killer kills. */
  readonly memory?: string;
  /** `defaultRequest` (cpu gives cpu.shares); default: the limits, as Kubernetes defaults requests. */
  readonly defaultRequest?: { readonly cpu?: string; readonly memory?: string };
}

/** A ServiceAccount of the namespace, as Tekton and the kubelet use it. */
export interface ServiceAccountOptions {
  /**
   * Its `secrets`: Tekton's credential initialization reads these (and only these, not imagePullSecrets). Docker
   * config secrets (a `.dockerconfigjson` or `.dockercfg` key, i.e. types kubernetes.io/dockerconfigjson and
   * kubernetes.io/dockercfg) are merged into `/tekton/creds/.docker/config.json`; annotated basic-auth secrets
   * are not emulated.
   */
  readonly secrets?: string[];
  /** Its `imagePullSecrets`: for the kubelet's image pulls only; Tekton ignores them (kept to show they are ignored). */
  readonly imagePullSecrets?: string[];
  /** The token the kubelet mounts at /var/run/secrets/kubernetes.io/serviceaccount/token (with namespace). */
  readonly token?: string;
}

export interface RunPipelineOptions {
  /** Parsed YAML documents (kinds Task, Pipeline, PipelineRun; others ignored). */
  readonly manifests: Manifest[];
  /** metadata.name or metadata.generateName of the PipelineRun to run; default: the only PipelineRun. */
  readonly pipelineRun?: string;
  /** All run state lives here (created if missing). */
  readonly workDir: string;
  /** Existing PVC claimName -> host directory (kept between runs; created if missing). */
  readonly claims?: Record<string, string>;
  /** Secret name -> key -> value (for secret workspaces/volumes and env valueFrom/envFrom). */
  readonly secrets?: Record<string, Record<string, string>>;
  /** ConfigMap name -> key -> value. */
  readonly configMaps?: Record<string, Record<string, string>>;
  /**
   * uid used when no runAsUser is set on the step, the stepTemplate or the pod template (the "image user").
   * OpenShift's restricted SCC assigns one from the namespace range, with primary gid 0. Default 1000970000.
   */
  readonly defaultUid?: number;
  /**
   * fsGroup used when the pod template sets none. OpenShift's restricted-v2 SCC assigns the first uid of the
   * namespace range (i.e. the same value as `defaultUid`); vanilla Kubernetes assigns none. Default: none.
   */
  readonly defaultFsGroup?: number;
  /** Extra env for every step, applied like image env: the step's own `env` wins (e.g. PATH, tool flags). */
  readonly env?: Record<string, string>;
  /**
   * Replace a step before substitution. `task` is the pipeline task name. Return undefined to keep the step.
   * (e.g. the e2e test replaces the hub download with a named fixture).
   */
  readonly stepOverrides?: (task: string, step: string, stepSpec: any) => any | undefined;
  /** Extra host paths mounted into every step (e.g. fixtures); host /tmp is otherwise not visible. */
  readonly hostMounts?: HostMount[];
  /** Give each step a fresh tmpfs /tmp like a container image would (default true). */
  readonly isolateTmp?: boolean;
  /** Mode of a fresh volumeClaimTemplate volume root (owner root:root), like a freshly formatted volume. Default 0o755. */
  readonly freshVolumeMode?: number;
  /** Namespace used when the PipelineRun has none. Default 'default'. */
  readonly namespace?: string;
  /** Global default TaskRun/PipelineRun timeout (Tekton `default-timeout-minutes`), Go duration. Default '60m'. */
  readonly defaultTimeout?: string;
  /** OpenShift SCC admission of every TaskRun pod (see SccOptions). Default: none (any identity is accepted). */
  readonly scc?: SccOptions;
  /**
   * The user each image runs as, by image repository (no tag or digest), e.g. { 'registry.access.redhat.com/ubi9/python-312':
   * { uid: 1001, gid: 0 } }. When given, a step without runAsUser runs as its image's user (an image not listed
   * fails the TaskRun, reason ImageUserUnknown) instead of `defaultUid`; required by scc policy 'pipelines-scc'.
   */
  readonly imageUsers?: Record<string, ImageUser>;
  /**
   * The namespace's LimitRange container defaults (see LimitRangeOptions). A container with limits (its own
   * `computeResources.limits` or these) runs in a cgroup of its own with them; where no cgroup can be created the
   * TaskRun fails (reason CgroupSetupFailed), it never runs without its limits. Default: no LimitRange (only
   * containers' own limits are enforced).
   */
  readonly limitRange?: LimitRangeOptions;
  /**
   * ServiceAccounts by name. The one a TaskRun uses (taskRunTemplate.serviceAccountName, else 'default') gets
   * Tekton's credential handling: its docker secrets in /tekton/creds (`$(credentials.path)`, a private emptyDir
   * per step), copied into `$HOME` only where the step can write `$HOME` (else the warning "unsuccessful cred
   * copy", as Tekton's entrypoint prints); Tekton does not set HOME (a uid without passwd entry has HOME=/).
   * A service account not listed here has no credentials and no token.
   */
  readonly serviceAccounts?: Record<string, ServiceAccountOptions>;
  /**
   * Number of TaskRuns run concurrently. Tekton runs every independent task at once: pass a large number to be as
   * strict (a missing runAfter then shows). Default 1 (deterministic, and exact per-step I/O accounting).
   */
  readonly maxParallel?: number;
  /** Remove per-TaskRun scratch dirs (emptyDirs, scripts, results) after the run. Default false. */
  readonly cleanup?: boolean;
  /** Log sink, called for each line (the log is always collected into the result too). */
  readonly log?: (line: string) => void;
}

export type TaskStatus = 'Succeeded' | 'Failed' | 'Skipped' | 'TimedOut';

export interface StepRecord {
  readonly name: string;
  /** Exit code; null when the step did not run (skipped) or could not be started. */
  readonly exitCode: number | null;
  /**
   * 'Completed' | 'Error' | 'Continued' (failed with onError continue) | 'TimeoutExceeded' | 'Skipped' | 'TaskRunTimeout'
   * | 'OOMKilled' (the kernel's OOM killer killed in the step's cgroup; the runtime then reports this reason).
   */
  readonly reason: string;
  readonly startedAt?: Date;
  readonly finishedAt?: Date;
  /** uid/gid/groups the step ran under. */
  readonly uid?: number;
  readonly gid?: number;
  readonly groups?: number[];
  /** The step's output (stdout and stderr interleaved), without prefixes. */
  readonly log: string;
  /** Storage I/O of the step's whole process tree (see SandboxIo); absent when it could not be read. */
  readonly io?: StepIo;
  /** Bytes of the termination message Tekton's entrypoint left (results so far, StartedAt...). */
  readonly terminationMessageBytes?: number;
  /** The limits the step ran under (its own, else the LimitRange's); absent when it had none. */
  readonly limits?: { readonly memory?: string; readonly cpu?: string };
  /** Its cgroup's settings, read back from the cgroup's files. */
  readonly cgroup?: {
    readonly version: 1 | 2;
    readonly memoryPath?: string;
    readonly memoryLimitBytes?: number;
    readonly cpuQuotaUs?: number;
    readonly cpuPeriodUs?: number;
  };
  /** Peak memory of the step's cgroup (memory.max_usage_in_bytes, or memory.peak on cgroup v2), when it had one. */
  readonly peakMemoryBytes?: number;
}

/** The pod Tekton would build for the TaskRun, as far as the runner models it. */
export interface PodRecord {
  /** Tekton's init containers: prepare, place-scripts (a step or sidecar has a script), working-dir-initializer. */
  readonly initContainers: string[];
  /** Containers + init containers (the kubelet's divisor). */
  readonly containerCount: number;
  /** Bytes of termination message the kubelet keeps per container: 12288 / containerCount. */
  readonly terminationMessageShare: number;
  /** Bytes of place-scripts' `sh -c` argument (the kernel refuses 131072 and more: MAX_ARG_STRLEN). */
  readonly placeScriptsBytes?: number;
  /** The SCC that admitted the pod (scc mode only). */
  readonly scc?: string;
  /** Init containers that ran (place-scripts). */
  initContainerStatuses?: Array<{ readonly name: string; readonly exitCode: number | null; readonly reason: string; readonly log: string }>;
}

/**
 * Storage I/O of a step, from /proc/self/io of the runner before and after the step: Linux adds the counters of
 * every reaped child (and theirs) to its parent's, so the difference is what the step's processes caused, plus the
 * runner's own writes meanwhile (a few KB). Exact only when one step runs at a time (maxParallel 1, the default).
 * Writes to tmpfs (the step's /tmp and root overlay) are not storage I/O and are not counted.
 */
export interface StepIo {
  /** Bytes the step caused to be read from storage (page cache hits are not counted). */
  readonly readBytes: number;
  /** Bytes the step caused to be written to storage (counted when pages are dirtied). */
  readonly writeBytes: number;
  /** Of those, bytes never written because the file was truncated or deleted first. */
  readonly cancelledWriteBytes: number;
}

export interface TaskRunRecord {
  /** Pipeline task name. */
  readonly pipelineTask: string;
  /** TaskRun name `<pipelineRun>-<pipelineTask>`. */
  readonly taskRun: string;
  readonly status: TaskStatus;
  /** Tekton-like reason, e.g. Succeeded, Failed, TaskRunTimeout, FailureIgnored, CreateContainerConfigError, or a skip reason. */
  readonly reason?: string;
  readonly message?: string;
  /** Declared results present after the (last) attempt, verbatim file content. */
  readonly results: Record<string, string>;
  /** Steps of the last attempt. */
  readonly steps: StepRecord[];
  /** The pod of the last attempt (absent when it was never built, e.g. a validation failure). */
  readonly pod?: PodRecord;
  readonly startedAt?: Date;
  readonly finishedAt?: Date;
  /** Number of attempts (0 when skipped or never started). */
  readonly attempts: number;
  readonly isFinally: boolean;
}

export interface RunPipelineResult {
  readonly status: 'Succeeded' | 'Failed';
  /** Succeeded | Completed (some tasks skipped) | Failed | PipelineRunTimeout | ParameterMissing | PipelineValidationFailed | InvalidTaskResultReference ... */
  readonly reason?: string;
  readonly message?: string;
  readonly pipelineRun: { readonly name: string; readonly namespace: string; readonly uid: string };
  readonly tasks: Record<string, TaskRunRecord>;
  /** Pipeline results (spec.results); arrays/objects JSON-encoded. */
  readonly results: Record<string, string>;
  /** Full log, each line prefixed `[task/step]`. */
  readonly log: string;
  readonly startedAt: Date;
  readonly finishedAt: Date;
}
