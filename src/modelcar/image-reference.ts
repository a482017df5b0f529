// The grammar of the distribution reference (github.com/distribution/reference), simplified:
// domain[:port]/path[:tag][@digest].
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = `(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[0-9a-fA-F:]+\\])(?::[0-9]+)?`;
const PATH_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*';
const REPOSITORY = new RegExp(`^(?:${DOMAIN}/)?${PATH_COMPONENT}(?:/${PATH_COMPONENT})*$`);
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;

/**
 * A container image: a repository and either a digest (pinned) or a tag.
 *
 * Images this library chooses are pinned by digest; a tag is accepted where a user
 * asks for one, and `isPinned` says which it is.
 */
export class ImageReference {
  /** An image pinned by its manifest digest: `repository@sha256:...`. */
  public static fromDigest(repository: string, digest: string): ImageReference {
    ImageReference.validateRepository(repository);
    if (!DIGEST.test(digest)) {
      throw new Error(`image digest "${digest}" is invalid: expected sha256: and 64 lowercase hex digits`);
    }
    return new ImageReference(repository, undefined, digest);
  }

  /** An image by tag: `repository:tag`. A tag can move; prefer `fromDigest()`. */
  public static fromTag(repository: string, tag: string): ImageReference {
    ImageReference.validateRepository(repository);
    ImageReference.validateTag(tag);
    return new ImageReference(repository, tag, undefined);
  }

  /** Parses `repository:tag`, `repository@sha256:...` or `repository:tag@sha256:...`. */
  public static parse(reference: string): ImageReference {
    const at = reference.indexOf('@');
    const digest = at >= 0 ? reference.slice(at + 1) : undefined;
    const rest = at >= 0 ? reference.slice(0, at) : reference;
    const slash = rest.lastIndexOf('/');
    const colon = rest.lastIndexOf(':');
    const tag = colon > slash ? rest.slice(colon + 1) : undefined;
    const repository = colon > slash ? rest.slice(0, colon) : rest;
    if (digest === undefined && tag === undefined) {
      throw new Error(`image reference "${reference}" has neither tag nor digest: pin it with @sha256:...`);
    }
    ImageReference.validateRepository(repository);
    if (tag !== undefined) ImageReference.validateTag(tag);
    if (digest !== undefined && !DIGEST.test(digest)) {
      throw new Error(`image reference "${reference}" has an invalid digest "${digest}": expected sha256: and 64 lowercase hex digits`);
    }
    return new ImageReference(repository, tag, digest);
  }

  /**
   * Throws unless `repository` is a valid image repository (`registry[:port]/path`).
   */
  public static validateRepository(repository: string): void {
    if (!REPOSITORY.test(repository) || repository.length > 255) {
      throw new Error(`image repository "${repository}" is invalid: expected registry[:port]/path with lowercase path components, e.g. quay.io/org/model`);
    }
  }

  /** Throws unless `tag` is a valid image tag. */
  public static validateTag(tag: string): void {
    if (!TAG.test(tag)) {
      throw new Error(`image tag "${tag}" is invalid: use letters, digits, '_', '.' and '-' (at most 128, not starting with '.' or '-')`);
    }
  }

  /** The repository, e.g. `quay.io/org/model`. */
  public readonly repository: string;
  /** The tag, if any. */
  public readonly tag?: string;
  /** The digest, if pinned. */
  public readonly digest?: string;

  private constructor(repository: string, tag: string | undefined, digest: string | undefined) {
    this.repository = repository;
    this.tag = tag;
    this.digest = digest;
  }

  /** True when the image is pinned by digest. */
  public get isPinned(): boolean {
    return this.digest !== undefined;
  }

  /** The reference as written in a manifest: `repo@sha256:...` when pinned, else `repo:tag`. */
  public toString(): string {
    return this.digest ? `${this.repository}@${this.digest}` : `${this.repository}:${this.tag}`;
  }
}
