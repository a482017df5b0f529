/**
 * What a pod can hold, computed at synth the way Tekton and Kubernetes compute it, so that a
 * Task that cannot start, or an object `kubectl apply` cannot store, fails `cdk8s synth` and
 * not the cluster.
 *
 * Sources (tektoncd/pipeline v1.0, v1.3 and v1.6, the Tekton of OpenShift Pipelines 1.19 to
 * 1.21; the files below are the same in all three):
 * - pkg/pod/script.go `convertScripts`, `placeScriptInContainer`: every step script, base64
 *   (std encoding), goes into ONE argument of `sh -c` in the `place-scripts` init container,
 *   each wrapped in the same few lines; a script whose trimmed text does not start with `#!`
 *   gets the preamble `#!/bin/sh\nset -e\n` first.
 * - pkg/names `RestrictLengthWithRandomSuffix`: the script file is `script-<i>-<5 random>`.
 * - Linux `MAX_ARG_STRLEN` (32 pages of 4 KiB = 131,072 bytes, the NUL included): `execve`
 *   refuses a longer argument with E2BIG, so the init container cannot even start
 *   (`exec /bin/sh: argument list too long`; tektoncd/pipeline#7513, #8398).
 */

/**
 * The limits a Task's pod must fit, and their sizes computed as Tekton and Kubernetes compute them.
 */
export class PodLimits {
  /** Linux's limit on one argument of `execve` (MAX_ARG_STRLEN), the terminating NUL included. */
  public static readonly KERNEL_ARG_LIMIT = 131_072;

  /**
   * The most a Task's `place-scripts` argument may hold at synth: 120 KiB, 8 KiB below the
   * kernel's limit. The margin is for what Tekton adds to the same argument at run time: a
   * TaskRun with `debug.breakpoints` (onFailure, beforeSteps) gets four more scripts
   * (pkg/pod/scripts_constants.go, about 2.5 KB with their wrappers), and a sidecar's script.
   */
  public static readonly PLACE_SCRIPTS_BUDGET = 122_880;

  /**
   * The most `kubectl apply` (and Argo CD, which applies client-side by default) can store:
   * it keeps the object's JSON in the `kubectl.kubernetes.io/last-applied-configuration`
   * annotation, and the API server refuses annotations over 256 KiB in all
   * (apimachinery `TotalAnnotationSizeLimitB`, keys and values counted).
   */
  public static readonly ANNOTATIONS_LIMIT = 262_144;

  /** The annotation `kubectl apply` writes. */
  public static readonly LAST_APPLIED_ANNOTATION = 'kubectl.kubernetes.io/last-applied-configuration';

  /**
   * The bytes of the `sh -c` argument Tekton's `place-scripts` init container gets for these
   * step scripts, in step order ('' for a step without a script). The random suffix of each
   * file name has a fixed length, so the size is exact.
   */
  public static placeScriptsArgumentBytes(scripts: string[]): number {
    let bytes = 0;
    scripts.forEach((script, i) => {
      if (!script) return;
      const text = script.trim().startsWith('#!') ? script : DEFAULT_SCRIPT_PREAMBLE + script;
      const encoded = 4 * Math.ceil(Buffer.byteLength(text, 'utf8') / 3);
      bytes += Buffer.byteLength(scriptWrapper(`/tekton/scripts/script-${i}-xxxxx`)) + encoded;
    });
    return bytes;
  }

  /**
   * The bytes `kubectl apply` needs in an object's annotations: its compact JSON as the
   * last-applied annotation, plus the annotations it already has.
   */
  public static lastAppliedBytes(manifest: any): number {
    const annotations: Record<string, string> = manifest?.metadata?.annotations ?? {};
    const existing = Object.entries(annotations)
      .filter(([k]) => k !== PodLimits.LAST_APPLIED_ANNOTATION)
      .reduce((n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(String(v)), 0);
    return existing + Buffer.byteLength(PodLimits.LAST_APPLIED_ANNOTATION) + Buffer.byteLength(JSON.stringify(manifest));
  }

  private constructor() {}
}

/** Tekton's preamble for a script without a shebang (pkg/pod/script.go `defaultScriptPreamble`). */
const DEFAULT_SCRIPT_PREAMBLE = '#!/bin/sh\nset -e\n';

/** The lines around one script's base64 in the place-scripts argument (placeScriptInContainer). */
function scriptWrapper(file: string): string {
  return `scriptfile="${file}"\ntouch \${scriptfile} && chmod +x \${scriptfile}\ncat > \${scriptfile} << '_EOF_'\n`
    + '\n_EOF_\n/tekton/bin/entrypoint decode-script "${scriptfile}"\n';
}

/** Errors for an object `kubectl apply` could not store (empty: it fits). @internal */
export function checkLastApplied(where: string, manifest: any): string[] {
  const bytes = PodLimits.lastAppliedBytes(manifest);
  if (bytes <= PodLimits.ANNOTATIONS_LIMIT) return [];
  return [`${where} is ${bytes} bytes as kubectl apply stores it (its JSON in the ${PodLimits.LAST_APPLIED_ANNOTATION} annotation), `
    + `over the API server's limit of ${PodLimits.ANNOTATIONS_LIMIT} bytes of annotations: split it (fewer or smaller steps per Task, `
    + 'fewer tasks per Pipeline) or deliver it with server-side apply (Argo CD: ServerSideApply=true)'];
}

/** Errors for a Task whose place-scripts init container could not start (empty: it fits). @internal */
export function checkPlaceScripts(where: string, scripts: string[]): string[] {
  const bytes = PodLimits.placeScriptsArgumentBytes(scripts);
  if (bytes <= PodLimits.PLACE_SCRIPTS_BUDGET) return [];
  return [`${where}: its step scripts make a place-scripts argument of ${bytes} bytes (Tekton passes every script, base64, in one `
    + `argument of sh -c), over the budget of ${PodLimits.PLACE_SCRIPTS_BUDGET} bytes (Linux refuses one argument over `
    + `${PodLimits.KERNEL_ARG_LIMIT} bytes and the pod would never start): move steps into another Task, or make the scripts smaller`];
}
