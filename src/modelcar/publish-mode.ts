import { Duration, Size } from 'cdk8s';

/**
 * Options of `PublishMode.streaming()`.
 */
export interface StreamingPublishOptions {
  /**
   * Layers sent at once (each its own upload session, and its own hub connections).
   *
   * @default 4
   */
  readonly parallelLayers?: number;

  /**
   * Byte ranges of a layer fetched from the hub at once, ahead of the one being sent.
   *
   * @default 2
   */
  readonly rangesPerLayer?: number;

  /**
   * The bytes of one hub range and one registry PATCH. What a cut costs is at most one chunk per connection.
   *
   * @default Size.mebibytes(16)
   */
  readonly chunkSize?: Size;

  /**
   * How long the streaming publish may run (the whole model, hub to the first registry).
   *
   * @default Duration.hours(1)
   */
  readonly timeout?: Duration;

  /**
   * How many times Tekton retries the streaming task. Within one attempt, cuts, 5xx answers and lost upload
   * sessions are resumed or retried already; a retry (a new pod, no volume) streams the model again, and the
   * registry stores a blob it already holds only once.
   *
   * @default 0
   */
  readonly retries?: number;
}

/**
 * How a `ModelcarPipeline` gets the model from the hub into its first registry.
 */
export class PublishMode {
  /**
   * The volume mode (the default): download the model to the run's volume, build the image there, push it from
   * there to each target in turn. What the volume holds and for how long: `volumeCleanup`.
   */
  public static volume(): PublishMode {
    return new PublishMode(false, 4, 2, 16 * 1024 * 1024, Duration.hours(1), 0);
  }

  /**
   * The streaming mode: no volume. One task reads each file from the hub and sends it, in the same pass, as the
   * layout builder's layers (byte for byte the same image, the same digest) to the first target; the next targets
   * copy it registry to registry. Memory, not disk: at most `parallelLayers x (rangesPerLayer + 1) x chunkSize` of
   * model bytes at once (the step's memory request and limit are that plus 256 MiB for the interpreter and TLS).
   */
  public static streaming(options: StreamingPublishOptions = {}): PublishMode {
    const layers = options.parallelLayers ?? 4;
    const ranges = options.rangesPerLayer ?? 2;
    const chunk = (options.chunkSize ?? Size.mebibytes(16)).toKibibytes() * 1024;
    const retries = options.retries ?? 0;
    const whole = (name: string, v: number, lo: number, hi: number) => {
      if (!Number.isInteger(v) || v < lo || v > hi) throw new Error(`PublishMode.streaming: ${name} must be a whole number from ${lo} to ${hi} (got ${v})`);
    };
    whole('parallelLayers', layers, 1, 32);
    whole('rangesPerLayer', ranges, 1, 16);
    whole('retries', retries, 0, 10);
    if (!Number.isInteger(chunk) || chunk < 1024 * 1024 || chunk > 512 * 1024 * 1024) {
      throw new Error(`PublishMode.streaming: chunkSize must be a whole number of KiB from 1 MiB to 512 MiB (got ${chunk} bytes)`);
    }
    const mode = new PublishMode(true, layers, ranges, chunk, options.timeout ?? Duration.hours(1), retries);
    if (mode.memoryLimitBytes > STEP_MEMORY_CEILING) {
      throw new Error(`PublishMode.streaming: parallelLayers x (rangesPerLayer + 1) x chunkSize is ${mib(mode.memoryBoundBytes)} MiB, and with `
        + `the interpreter's 256 MiB the step would need ${mib(mode.memoryLimitBytes)} MiB, over ${mib(STEP_MEMORY_CEILING)} MiB (what a `
        + 'LimitRange commonly allows one container): lower one of them');
    }
    if (mode.timeout.toSeconds() < 120) throw new Error('PublishMode.streaming: timeout must be at least 2 minutes');
    return mode;
  }

  /** Whether the pipeline streams (no volume). */
  public readonly streams: boolean;
  /** Layers sent at once. */
  public readonly parallelLayers: number;
  /** Ranges fetched at once per layer. */
  public readonly rangesPerLayer: number;
  /** Bytes of one range and one PATCH. */
  public readonly chunkBytes: number;
  /** The streaming task's timeout. */
  public readonly timeout: Duration;
  /** Tekton retries of the streaming task. */
  public readonly retries: number;

  private constructor(streams: boolean, layers: number, ranges: number, chunk: number, timeout: Duration, retries: number) {
    this.streams = streams;
    this.parallelLayers = layers;
    this.rangesPerLayer = ranges;
    this.chunkBytes = chunk;
    this.timeout = timeout;
    this.retries = retries;
  }

  /** The most model bytes the streaming step holds at once: parallelLayers x (rangesPerLayer + 1) x chunkSize. */
  public get memoryBoundBytes(): number {
    return this.parallelLayers * (this.rangesPerLayer + 1) * this.chunkBytes;
  }

  /**
   * The streaming step's memory limit (and request): the bound plus 256 MiB for the interpreter and TLS. The step pins
   * glibc's mmap threshold (MALLOC_MMAP_THRESHOLD_), so that each chunk's buffer goes back to the system when freed:
   * with glibc's moving threshold and per-thread arenas, freed 16 MiB buffers stayed in the heap and the benchmark's
   * 1 GiB publish peaked at 373 MiB for a 192 MiB bound.
   */
  public get memoryLimitBytes(): number {
    return this.memoryBoundBytes + INTERPRETER_BYTES;
  }
}

const INTERPRETER_BYTES = 256 * 1024 * 1024;
/** A LimitRange's common per-container maximum (OpenShift's project template examples, our test namespace): 2 GiB. */
const STEP_MEMORY_CEILING = 2 * 1024 * 1024 * 1024;
const mib = (n: number) => Math.round(n / 1024 / 1024);
