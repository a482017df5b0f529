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
    return new ModelcarBuilder(ModelcarBuilderKind.OCI_LAYOUT, options.image ?? ModelcarImages.PYTHON, bytes, maxLayers);
  }

  /** The buildah builder (SETFCAP, vfs storage in an emptyDir). */
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

  private constructor(kind: ModelcarBuilderKind, image: ImageReference, largeFileBytes?: number, maxLayers?: number) {
    this.kind = kind;
    this.image = image;
    this.largeFileBytes = largeFileBytes;
    this.maxLayers = maxLayers;
  }
}
