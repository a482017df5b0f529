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
 * OpenShift's restricted-v2 SCC for the run's namespace, from the namespace's annotations (each `<start>/<size>`).
 * With it, every TaskRun pod is admitted like OpenShift admits it: unset runAsUser (pod and container) gets the
 * range's first uid, unset fsGroup the group range's first value; a uid or fsGroup outside its range, a privileged
 * container, an added capability other than NET_BIND_SERVICE or allowPrivilegeEscalation: true refuse the pod
 * (TaskRun reason PodCreationFailed, with the SCC's words); every container drops ALL capabilities and runs with
 * no_new_privs. supplementalGroups are RunAsAny, as in restricted-v2.
 */
export interface SccOptions {
  /** `openshift.io/sa.scc.uid-range`, e.g. '1000650000/10000'. */
  readonly uidRange: string;
  /** `openshift.io/sa.scc.supplemental-groups` (fsGroup's range). Default: the uid range, as OpenShift allocates them. */
  readonly supplementalGroups?: string;
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
  /** 'Completed' | 'Error' | 'Continued' (failed with onError continue) | 'TimeoutExceeded' | 'Skipped' | 'TaskRunTimeout'. */
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
