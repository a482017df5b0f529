import { Size } from 'cdk8s';
import { ImageReference } from './image-reference';
import { ModelcarImages } from './images';

/** Docker's limit on an image's layers (moby layer/layer_store.go, maxLayerDepth). */
const DOCKER_MAX_LAYERS = 125;
/** overlayfs's limit on lower directories (the kernel's OVL_MAX_STACK, fs/overlayfs). */
const OVERLAY_MAX_LAYERS = 500;

/**
 * Options of the OCI layout builder.
 */
export interface OciLayoutBuilderOptions {
  /**
   * Files at least this large get a layer of their own; smaller files share one layer.
   * One layer per weight shard keeps layers within what registries accept and lets a
   * push resume per shard.
   *
   * @default Size.mebibytes(64)
   */
  readonly largeFileThreshold?: Size;

  /**
   * The most layers the image may have, the base image's included. Past it, the files that
   * would have had a layer of their own share layers with their neighbours (the two
   * neighbouring layers with the fewest bytes together first; no file is split), so the
   * largest models still run everywhere: Docker refuses an image of more than 125 layers
   * (moby layer/layer_store.go, maxLayerDepth), overlayfs stacks at most 500 (the kernel's
   * OVL_MAX_STACK: CRI-O, podman). A base image that leaves no layer for the model fails the
   * build.
   *
   * @default 125
   */
  readonly maxLayers?: number;

  /**
   * The image that runs the layout builder (Python 3 standard library only).
   *
   * @default ModelcarImages.PYTHON
   */
  readonly image?: ImageReference;

  /**
   * The platforms the image runs on. With more than one, the image is an OCI image index with
   * a manifest per platform: each on that platform's manifest of the base image (which must be
   * an image index, pinned by its index digest, with a manifest for every platform), all of
   * them sharing the model's layers, written once and pushed once. A node pulls its own
   * platform's manifest; CRI-O refuses an image that has none for the node's architecture. With
   * one platform the image is a single manifest, as before image indexes.
   *
   * @default [ImagePlatform.LINUX_AMD64, ImagePlatform.LINUX_ARM64]
   */
  readonly platforms?: ImagePlatform[];
}

/**
 * Options of the buildah builder.
 */
export interface BuildahBuilderOptions {
  /**
   * The buildah image.
   *
   * @default ModelcarImages.BUILDAH
   */
  readonly image?: ImageReference;
}

/** The kinds of builder. */
export enum ModelcarBuilderKind {
  /** Writes the OCI layout directly: no build container, no capabilities, each model byte written once. */
  OCI_LAYOUT = 'oci-layout',
  /** buildah from / copy / commit / push, with the vfs driver and chroot isolation. */
  BUILDAH = 'buildah',
}

/**
 * How the build task turns the base image and the model into an OCI artifact.
 *
 * A modelcar is only files under `/models` on top of a small base image, so the default
 * builder writes the image layout itself: it copies the base image with skopeo, then adds
 * the model as uncompressed tar layers streamed once through sha256 (weights do not
 * compress). It needs no privileges, no added capability and no second copy of the model.
 * Choose `buildah()` when you need what a container build does (running commands in the
 * image); it needs SETFCAP and writes the model several times (storage, commit, push).
 */
export class ModelcarBuilder {
  /** The OCI layout builder (the default). */
  public static ociLayout(options: OciLayoutBuilderOptions = {}): ModelcarBuilder {
    const threshold = options.largeFileThreshold ?? Size.mebibytes(64);
    const bytes = threshold.toKibibytes() * 1024;
    if (!(Number.isInteger(bytes) && bytes >= 1024)) {
      throw new Error(`oci layout builder: largeFileThreshold must be a whole number of KiB, at least 1 KiB (got ${threshold.toKibibytes()} KiB)`);
    }
    const maxLayers = options.maxLayers ?? DOCKER_MAX_LAYERS;
    if (!(Number.isInteger(maxLayers) && maxLayers >= 2 && maxLayers <= OVERLAY_MAX_LAYERS)) {
      throw new Error(`oci layout builder: maxLayers must be a whole number from 2 (a base layer and a model layer) to ${OVERLAY_MAX_LAYERS} `
        + `(overlayfs stacks no more) (got ${maxLayers}): keep the default ${DOCKER_MAX_LAYERS} for images that also run on Docker`);
    }
    const platforms = options.platforms ?? [ImagePlatform.LINUX_AMD64, ImagePlatform.LINUX_ARM64];
    const names = platforms.map((p) => p.toString());
    if (names.length === 0) {
      throw new Error('oci layout builder: platforms is empty: give at least one, e.g. [ImagePlatform.LINUX_AMD64]');
    }
    const twice = names.filter((n, i) => names.indexOf(n) !== i);
    if (twice.length > 0) {
      throw new Error(`oci layout builder: platform ${twice[0]} is given twice in platforms (${names.join(', ')})`);
    }
    return new ModelcarBuilder(ModelcarBuilderKind.OCI_LAYOUT, options.image ?? ModelcarImages.PYTHON, bytes, maxLayers, platforms);
  }

  /**
   * The buildah builder (SETFCAP, vfs storage in an emptyDir).
   *
   * It builds one platform: the node's, from the base image's manifest for it. For an image
   * that runs on several architectures, use `ociLayout()`.
   */
  public static buildah(options: BuildahBuilderOptions = {}): ModelcarBuilder {
    return new ModelcarBuilder(ModelcarBuilderKind.BUILDAH, options.image ?? ModelcarImages.BUILDAH);
  }

  /** The kind of builder. */
  public readonly kind: ModelcarBuilderKind;
  /** The image of the build step. */
  public readonly image: ImageReference;
  /** For the OCI layout builder: files of at least this many bytes get their own layer. */
  public readonly largeFileBytes?: number;
  /** For the OCI layout builder: the most layers the image may have, the base image's included. */
  public readonly maxLayers?: number;
  private readonly _platforms?: ImagePlatform[];

  private constructor(kind: ModelcarBuilderKind, image: ImageReference, largeFileBytes?: number, maxLayers?: number, platforms?: ImagePlatform[]) {
    this.kind = kind;
    this.image = image;
    this.largeFileBytes = largeFileBytes;
    this.maxLayers = maxLayers;
    this._platforms = platforms ? [...platforms] : undefined;
  }

  /**
   * For the OCI layout builder: the platforms of the image (an image index when more than one).
   * The buildah builder builds the node's platform only: undefined.
   */
  public get platforms(): ImagePlatform[] | undefined {
    return this._platforms ? [...this._platforms] : undefined;
  }
}

/**
 * A platform an image runs on: an operating system and a CPU architecture, in the words of the
 * OCI image index (`platform.os`, `platform.architecture`, `platform.variant`).
 */
export class ImagePlatform {
  /** Linux on x86-64. */
  public static readonly LINUX_AMD64 = new ImagePlatform('linux', 'amd64');
  /** Linux on 64-bit ARM (NVIDIA Grace Hopper and Grace Blackwell nodes, AWS Graviton). */
  public static readonly LINUX_ARM64 = new ImagePlatform('linux', 'arm64');

  /**
   * Any platform, in the OCI image index's words (Go's GOOS and GOARCH values).
   *
   * @param os e.g. `linux`
   * @param architecture e.g. `amd64`, `arm64`, `ppc64le`, `s390x`
   * @param variant e.g. `v8` for arm64; none by default
   */
  public static of(os: string, architecture: string, variant?: string): ImagePlatform {
    for (const [what, value] of [['os', os], ['architecture', architecture], ['variant', variant]] as const) {
      if (value !== undefined && !/^[a-z0-9_]+$/.test(value)) {
        throw new Error(`image platform: ${what} "${value}" is not a lowercase word (letters, digits, _): use the OCI words, e.g. linux/arm64/v8`);
      }
    }
    return new ImagePlatform(os, architecture, variant);
  }

  /** The operating system. */
  public readonly os: string;
  /** The CPU architecture. */
  public readonly architecture: string;
  /** The architecture's variant, if any. */
  public readonly variant?: string;

  private constructor(os: string, architecture: string, variant?: string) {
    this.os = os;
    this.architecture = architecture;
    this.variant = variant;
  }

  /** `os/architecture[/variant]`, as `--platform` takes it. */
  public toString(): string {
    return [this.os, this.architecture, ...(this.variant ? [this.variant] : [])].join('/');
  }
}
