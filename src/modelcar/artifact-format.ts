/**
 * How the built image is stored on the shared volume between build and pushes.
 */
export enum ArtifactFormat {
  /**
   * An OCI image layout directory (`oci:`). skopeo reads it in place: inspecting or
   * copying it reads only what it needs.
   */
  OCI_LAYOUT = 'oci',
  /**
   * An OCI archive, one tar file (`oci-archive:`). skopeo unpacks the whole archive to a
   * temporary directory on every inspect and copy, so each push writes the image's size
   * to node-local disk once more. Kept for compatibility with existing tooling.
   */
  OCI_ARCHIVE = 'oci-archive',
}
