import { ImageReference } from './image-reference';

/**
 * The images the modelcar tasks run, pinned by digest. Each can be overridden by a
 * prop; these are the defaults.
 *
 * Where each digest comes from: the manifests of public GitOps repositories that pin
 * them (Red Hat's registries publish them; re-check with
 * `skopeo inspect docker://<image>` before a production rollout and mirror them for
 * disconnected clusters).
 *
 * The commands each image provides to the steps, and the evidence for each, are listed in
 * `image-inventory.ts`; steps call nothing else. A mirror given as `toolsImage` or
 * `pythonImage` must provide the same commands.
 */
export class ModelcarImages {
  /** UBI 9 skopeo (skopeo, sh, coreutils, grep): debug preambles, base copy, publish, pushes. */
  public static readonly SKOPEO = ImageReference.fromDigest(
    'registry.access.redhat.com/ubi9/skopeo',
    'sha256:577a988b42ae430f0f9d99bae5232b517ceaea6a7b884ec443fe8e636528e291');

  /** RHEL 9 buildah: builds the image with the buildah builder. */
  public static readonly BUILDAH = ImageReference.fromDigest(
    'registry.redhat.io/rhel9/buildah',
    'sha256:2347646db766dad7d85dfa9226e185e1d4de5defe26e28f4e7ca0d09b19e1bef');

  /**
   * UBI 9 Python 3.12: runs the stdlib-only scripts (no pip at run time): the Hugging Face
   * fetch, the OCI layout builder and the artifact verification; and the download's
   * checksum step, which needs findutils (this image has them, the skopeo image not).
   */
  public static readonly PYTHON = ImageReference.fromDigest(
    'registry.access.redhat.com/ubi9/python-312',
    'sha256:83b01cf47b22e6ce98a0a4802772fb3d4b7e32280e3a1b7ffcd785e01956e1cb');

  /**
   * UBI 9 micro (9.5): the modelcar's base. KServe's modelcar sidecar needs a shell
   * (it runs `sh -c` to link /models), which ubi-micro has.
   *
   * Pinned by its image index digest (amd64, arm64, ppc64le, s390x), so the layout builder
   * takes each platform's manifest from it; its linux/amd64 manifest,
   * sha256:71c7ec827876417693bd3feb615a5c70753b78667cb27c17cb3a5346a6955da5, was this
   * default before the builder made several platforms. Source of the pair: hermeto's test
   * data (a syft SBOM of this index names that amd64 manifest). Re-check with
   * `skopeo inspect --raw docker://registry.access.redhat.com/ubi9/ubi-micro@<digest>`: it must print an
   * image index listing linux/amd64 and linux/arm64.
   */
  public static readonly BASE = ImageReference.fromDigest(
    'registry.access.redhat.com/ubi9/ubi-micro',
    'sha256:a22fffe0256af00176c8b4f22eec5d8ecb1cb1684d811c33b1f2832fd573260f');

  private constructor() {}
}
