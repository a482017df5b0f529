/**
 * How Tekton and the kubelet shape a TaskRun's pod, as pure functions the runner and its tests share: the
 * place-scripts init container's argument, the termination message a step's entrypoint writes, the share of the
 * pod's termination-message budget the kubelet keeps per container, and LimitRange defaults.
 *
 * Modelled on tektoncd/pipeline as released in OpenShift Pipelines 1.19-1.21 (Tekton v1.0.0, v1.3.0, v1.6.0).
 * `git diff v1.0.0 v1.6.0` of the files modelled here: pkg/pod/script.go, pkg/termination/write.go,
 * pkg/entrypoint/entrypointer.go, pkg/pod/workingdir_init.go and pkg/names/generate.go are byte-identical across the
 * three; pkg/pod/pod.go differs only in the results sidecar's flags and polling env, the managed-by label and pod
 * annotations (not modelled: the init containers it builds, prepare / place-scripts / working-dir-initializer, are
 * the same); pkg/result/result.go only swaps go-multierror for errors.Join; pkg/pod/status.go adds the termination
 * reason to a failed container's message from v1.3.0 on (`"step-x" exited with code 137: OOMKilled`; v1.0.0 says
 * `"step-x" exited with code 137`) and keeps the log line "termination message could not be parsed sas JSON" (sic).
 */
import * as crypto from 'crypto';

/** Where Tekton's place-scripts writes scripts (pkg/pod/script.go scriptsDir). */
export const SCRIPTS_DIR = '/tekton/scripts';
/** Where Tekton's prepare init container copies its entrypoint binary (pkg/pod/pod.go, binMount). */
export const TEKTON_BIN_DIR = '/tekton/bin';

/**
 * k8s.io/apimachinery/pkg/util/rand String's alphabet (no vowels, no 0/1/3: no words, no look-alikes), which
 * tektoncd/pipeline pkg/names SimpleNameGenerator.RestrictLengthWithRandomSuffix uses for its 5-char suffix.
 */
const RAND_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

/** A random suffix as pkg/names makes it (5 chars of k8s' rand alphabet). */
export function randomNameSuffix(): string {
  let s = '';
  for (let i = 0; i < 5; i++) s += RAND_ALPHABET[crypto.randomInt(RAND_ALPHABET.length)];
  return s;
}

/** tektoncd/pipeline pkg/names RestrictLengthWithRandomSuffix: base cut to 63-5-1 chars, then `-<suffix>`. */
export function restrictLengthWithRandomSuffix(base: string, suffix: () => string = randomNameSuffix): string {
  return `${base.length > 57 ? base.slice(0, 57) : base}-${suffix()}`;
}

/** A step or sidecar as place-scripts sees it: only its script matters. */
export interface ScriptHolder {
  readonly script?: string;
}

export interface PlaceScriptsArgument {
  /** The `sh -c` argument of the place-scripts init container (args[1]); '' when nothing has a script. */
  readonly argument: string;
  /** Per step: the file its command becomes (`[file, ...args]`), undefined for a step without script. */
  readonly stepFiles: Array<string | undefined>;
  /** Per sidecar, likewise (`sidecar-script-<i>`). */
  readonly sidecarFiles: Array<string | undefined>;
}

/**
 * tektoncd/pipeline pkg/pod/script.go `convertScripts` / `placeScriptInContainer` (Linux branch): for every step
 * (then every sidecar) with a non-empty script, a block that writes the script's base64 into
 * /tekton/scripts/script-<i>-<random> through a quoted heredoc and has the entrypoint binary decode it in place.
 * A script whose TrimSpace does not start with "#!" gets the "#!/bin/sh\nset -e\n" preamble first.
 * Pure but for the random suffix (pass `suffix` for a fixed one).
 */
export function placeScriptsArgument(
  steps: ScriptHolder[],
  sidecars: ScriptHolder[] = [],
  suffix: () => string = randomNameSuffix,
): PlaceScriptsArgument {
  let argument = '';
  const place = (holder: ScriptHolder, prefix: string, i: number): string | undefined => {
    const script = holder.script;
    if (typeof script !== 'string' || script === '') return undefined;
    const file = `${SCRIPTS_DIR}/${restrictLengthWithRandomSuffix(`${prefix}-${i}`, suffix)}`;
    // Go's strings.TrimSpace trims Unicode white space; JavaScript's trim() differs only in U+FEFF, irrelevant here
    const withPreamble = script.trim().startsWith('#!') ? script : `#!/bin/sh\nset -e\n${script}`;
    const encoded = Buffer.from(withPreamble, 'utf8').toString('base64');
    argument += `scriptfile="${file}"\ntouch \${scriptfile} && chmod +x \${scriptfile}\ncat > \${scriptfile} << '_EOF_'\n${encoded}\n_EOF_\n${TEKTON_BIN_DIR}/entrypoint decode-script "\${scriptfile}"\n`;
    return file;
  };
  const stepFiles = steps.map((s, i) => place(s, 'script', i));
  const sidecarFiles = sidecars.map((s, i) => place(s, 'sidecar-script', i));
  return { argument, stepFiles, sidecarFiles };
}

/**
 * A stand-in for the `decode-script` subcommand of Tekton's entrypoint binary (cmd/entrypoint/subcommands
 * decode_script.go: base64-decode the file and write it back in place, same mode). Tekton's `prepare` init container
 * copies the real Go binary to /tekton/bin/entrypoint; it is not built here, so the runner puts this script there.
 */
export const ENTRYPOINT_STAND_IN = `#!/bin/sh
# tekton-runner stand-in for Tekton's entrypoint binary: only its decode-script subcommand
if [ "$1" != decode-script ] || [ $# -ne 2 ]; then
  echo "tekton-runner entrypoint stand-in: only 'decode-script <file>' is emulated, got: $*" >&2
  exit 1
fi
decoded="$2.decoded.$$"
if ! base64 -d < "$2" > "$decoded"; then
  rm -f "$decoded"
  echo "error decoding script file \\"$2\\"" >&2
  exit 1
fi
# writing into the file (not renaming over it) keeps its mode, like os.WriteFile on an existing file
cat "$decoded" > "$2" && rm -f "$decoded"
`;

/** Go's encoding/json Marshal of a value made of strings, numbers, arrays and plain objects (fields in order). */
export function goJsonMarshal(value: unknown): string {
  // JSON.stringify escapes like Go (\" \\ \n \r \t \b \f, other controls as \u00xx lower-case); Go's HTML-safe
  // encoder also escapes <, >, & and U+2028/U+2029 (encoding/json encodeState.string).
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** tektoncd/pipeline pkg/result/result.go RunResult as marshalled (resourceName omitted when empty). */
export interface RunResult {
  readonly key: string;
  readonly value: string;
  /** 1 TaskRunResultType, 3 InternalTektonResultType, 4 StepResultType. */
  readonly type: number;
}

/** tektoncd/pipeline pkg/termination/write.go MaxContainerTerminationMessageLength. */
export const MAX_CONTAINER_TERMINATION_MESSAGE = 4096;
/** tektoncd/pipeline pkg/termination/write.go errTooLong. */
export const TERMINATION_MESSAGE_TOO_LONG = 'Termination message is above max allowed size 4096, caused by large task result.';

export interface StepTerminationMessage {
  /** What ends up in the container's termination message (the file's content). */
  readonly message: string;
  /** Byte length of `message`. */
  readonly bytes: number;
  /** Set when the entrypoint fails the step (exit code 1) because a write was over 4096 bytes. */
  readonly error?: string;
  /** Byte length of the JSON that was refused. */
  readonly refusedBytes?: number;
}

/** Go's time.Format("2006-01-02T15:04:05.000Z07:00") of a UTC time (the container's TZ). */
export function tektonTime(d: Date): string {
  return d.toISOString();
}

/**
 * The termination message a step's entrypoint leaves (tektoncd/pipeline pkg/entrypoint/entrypointer.go `Go`):
 * after the command, `readResultsFromDisk` writes the declared results present in /tekton/results (every step's
 * entrypoint gets all of the Task's result names, `-results a,b,...`) as type 1, via pkg/termination/write.go
 * `WriteMessage`, which refuses JSON over 4096 bytes (Go returns the error: cmd/entrypoint prints it and exits 1).
 * Then Go's deferred WriteMessage appends StartedAt (and ExitCode for onError continue) to what is there; over 4096
 * it is refused too (log.Fatalf "Error while writing message: ...", exit 1) and the file keeps the results alone.
 */
export function stepTerminationMessage(results: RunResult[], startedAt: Date, continuedExitCode?: number): StepTerminationMessage {
  let existing: RunResult[] = [];
  let error: string | undefined;
  let refusedBytes: number | undefined;
  if (results.length) {
    const json = goJsonMarshal(results);
    if (Buffer.byteLength(json) > MAX_CONTAINER_TERMINATION_MESSAGE) {
      error = TERMINATION_MESSAGE_TOO_LONG;
      refusedBytes = Buffer.byteLength(json);
    } else {
      existing = results;
    }
  }
  const internal: RunResult[] = [{ key: 'StartedAt', value: tektonTime(startedAt), type: 3 }];
  if (continuedExitCode !== undefined && continuedExitCode !== 0) internal.push({ key: 'ExitCode', value: String(continuedExitCode), type: 3 });
  const full = goJsonMarshal([...existing, ...internal]);
  if (Buffer.byteLength(full) > MAX_CONTAINER_TERMINATION_MESSAGE) {
    const kept = existing.length ? goJsonMarshal(existing) : '';
    return { message: kept, bytes: Buffer.byteLength(kept), error: `Error while writing message: ${TERMINATION_MESSAGE_TOO_LONG}`, refusedBytes: Buffer.byteLength(full) };
  }
  return { message: full, bytes: Buffer.byteLength(full), error, refusedBytes };
}

/** kubernetes pkg/kubelet/container MaxPodTerminationMessageLogLength: the whole pod's termination messages. */
export const MAX_POD_TERMINATION_MESSAGE = 1024 * 12;

/**
 * The init containers Tekton puts in a TaskRun pod (tektoncd/pipeline pkg/pod/pod.go Build): `prepare` always
 * (entrypointInitContainer), `place-scripts` when a step or sidecar has a script (script.go convertScripts),
 * `working-dir-initializer` when a step's workingDir is relative or under /workspace/ (workingdir_init.go).
 */
export function tektonInitContainers(steps: Array<{ script?: string; workingDir?: string }>, sidecars: ScriptHolder[] = []): string[] {
  const names = ['prepare'];
  if ([...steps, ...sidecars].some((s) => typeof s.script === 'string' && s.script !== '')) names.push('place-scripts');
  const relative = steps.some((s) => {
    if (!s.workingDir) return false;
    const p = cleanPath(s.workingDir);
    return !p.startsWith('/') || p.startsWith('/workspace/');
  });
  if (relative) names.push('working-dir-initializer');
  return names;
}

/** Go's filepath.Clean for the cases that matter to workingdir_init.go (an absolute path keeps its leading /). */
function cleanPath(p: string): string {
  const abs = p.startsWith('/');
  const parts: string[] = [];
  for (const part of p.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (parts.length && parts[parts.length - 1] !== '..') parts.pop();
      else if (!abs) parts.push('..');
      continue;
    }
    parts.push(part);
  }
  const joined = parts.join('/');
  return abs ? `/${joined}` : joined || '.';
}

/**
 * kubernetes pkg/kubelet/status/status_manager.go `normalizeStatus`: each container's terminated message is cut to
 * 12288 / (containers + initContainers + ephemeralContainers) bytes, integer division.
 */
export function kubeletMessageShare(containerCount: number): number {
  return containerCount > 0 ? Math.floor(MAX_POD_TERMINATION_MESSAGE / containerCount) : MAX_POD_TERMINATION_MESSAGE;
}

/** Resource amounts as the runner enforces them. */
export interface ResourceAmounts {
  /** Bytes. */
  readonly memory?: number;
  /** Millicores. */
  readonly milliCpu?: number;
}

const BINARY_SUFFIX: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };
const DECIMAL_SUFFIX: Record<string, number> = { 'n': 1e-9, 'u': 1e-6, 'm': 1e-3, '': 1, 'k': 1e3, 'M': 1e6, 'G': 1e9, 'T': 1e12, 'P': 1e15, 'E': 1e18 };

/** A Kubernetes resource.Quantity ('2Gi', '500m', '1', '1e3') as a number of units. */
export function parseQuantity(q: string | number, what: string): number {
  if (typeof q === 'number') return q;
  const m = /^([+-]?[0-9.]+)(?:([eE][+-]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?)$/.exec(String(q).trim());
  if (!m) throw new Error(`tekton-runner: ${what} ${JSON.stringify(q)} is not a Kubernetes quantity (e.g. 2Gi, 512Mi, 500m, 1)`);
  const n = Number(m[1]) * (m[2] ? 10 ** Number(m[2].slice(1)) : 1);
  const suffix = m[3] ?? '';
  return n * (BINARY_SUFFIX[suffix] ?? DECIMAL_SUFFIX[suffix]);
}

/** Container `resources.limits` (or Tekton's `computeResources.limits`) as amounts. */
export function resourceAmounts(limits: Record<string, string | number> | undefined, what: string): ResourceAmounts {
  if (!limits) return {};
  return {
    // the kubelet rounds memory up to a whole byte and cpu up to a millicore (resource.Quantity Value/MilliValue)
    memory: limits.memory !== undefined ? Math.ceil(parseQuantity(limits.memory, `${what} memory`)) : undefined,
    milliCpu: limits.cpu !== undefined ? Math.ceil(parseQuantity(limits.cpu, `${what} cpu`) * 1000) : undefined,
  };
}
