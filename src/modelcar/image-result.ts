/**
 * One of the results the report task publishes for each push target, set whether the run
 * built the image or found it published: `ModelcarPipeline.imageResult()`.
 */
export enum ImageResult {
  /** `IMAGE_URL`: the image by its first tag, `repository:tag`. */
  URL = 'IMAGE_URL',
  /** `IMAGE_DIGEST`: the manifest digest the target serves, `sha256:...`. */
  DIGEST = 'IMAGE_DIGEST',
  /** `IMAGE_REF`: the image by digest, `repository@sha256:...` (what a deployment should name). */
  REF = 'IMAGE_REF',
}
