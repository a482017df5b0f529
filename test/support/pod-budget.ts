/**
 * What each synthesized Task asks of its pod, computed the way Tekton and the kubelet compute it, for tests that
 * hold the shipped Tasks well inside the limits (the runner enforces the limits themselves when it runs a Task):
 * - the place-scripts argument (PodLimits.placeScriptsArgumentBytes, the kernel's limit is 131,072 bytes);
 * - the largest termination message a step can write: every declared result at its longest, as Tekton's
 *   entrypoint writes them (pkg/entrypoint/entrypointer.go, pkg/termination/write.go: JSON, Go's encoding),
 *   plus its StartedAt entry; against Tekton's 4,096 bytes and the kubelet's share of 12,288 bytes among the pod's
 *   containers (pkg/kubelet/status/status_manager.go normalizeStatus), Tekton's init containers counted.
 */
import { PodLimits } from '../../src';

/**
 * The longest value each result of the modelcar Tasks can have. A Task with a result missing here fails the
 * check: add its bound, with the reason.
 */
export const RESULT_MAX_BYTES: Record<string, number> = {
  // sha256:<64 hex>
  IMAGE_DIGEST: 71,
  BUILD_CONFIG: 71,
  // a tag: at most 128 characters (OCI distribution spec)
  IMAGE_TAG: 128,
  // repository:tag; a repository name is at most 255 characters, the registry included (distribution/reference
  // NameTotalLengthMax)
  IMAGE_URL: 255 + 1 + 128,
  // repository@digest
  IMAGE_REF: 255 + 1 + 71,
  // a commit id: 40 hex today (git sha1), 64 if the hub moves to sha256
  MODEL_RESOLVED_REVISION: 64,
  // bytes as a decimal uint64
  MODEL_SIZE: 20,
  REBUILD: 5,
  // <commit>-<16 hex of the build configuration>
  SERVING_TAG: 64 + 1 + 16,
};

/** Tekton's StartedAt entry at its longest (time format 2006-01-02T15:04:05.000Z07:00 with an offset). */
const STARTED_AT = { key: 'StartedAt', value: '2026-12-02T16:25:07.000+00:00', type: 3 };

/** What one Task's pod must hold. */
export interface TaskPodNeeds {
  readonly task: string;
  readonly placeScriptsBytes: number;
  /** The longest termination message a step of this Task can write. */
  readonly messageBytes: number;
  /** The kubelet's share of 12,288 bytes for each container of this pod. */
  readonly shareBytes: number;
}

/** Computes what a Task manifest asks of its pod (see the file's comment). */
export function taskPodNeeds(task: any): TaskPodNeeds {
  const steps: any[] = task.spec.steps ?? [];
  const scripts = steps.map((s) => s.script ?? '');
  const entries = (task.spec.results ?? []).map((r: any) => {
    const max = RESULT_MAX_BYTES[r.name];
    if (max === undefined) throw new Error(`task ${task.metadata?.name}: no longest value known for result ${r.name}: add it to RESULT_MAX_BYTES`);
    return { key: r.name, value: 'x'.repeat(max), type: 1 };
  });
  const messageBytes = Buffer.byteLength(JSON.stringify([...entries, STARTED_AT]));
  // prepare (always), place-scripts (when a step has a script), working-dir-initializer (a relative workingDir
  // or one under /workspace/: pkg/pod/workingdir_init.go), the steps, the sidecars.
  const relativeDir = steps.some((s) => s.workingDir && (!s.workingDir.startsWith('/') || s.workingDir.startsWith('/workspace/')));
  const containers = 1 + (scripts.some((s) => s) ? 1 : 0) + (relativeDir ? 1 : 0) + steps.length + (task.spec.sidecars ?? []).length;
  return {
    task: task.metadata?.name,
    placeScriptsBytes: PodLimits.placeScriptsArgumentBytes(scripts),
    messageBytes,
    shareBytes: Math.floor(12_288 / containers),
  };
}
