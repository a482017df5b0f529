import { createHash } from 'crypto';
import { ArtifactFormat } from './artifact-format';
import { ModelcarBuilder, ModelcarBuilderKind } from './builder';
import { ImageReference } from './image-reference';
import { loadScript } from './scripts';

/**
 * The build configuration's digest as `build-config.sh` computes it at run time: the spec, then the include and
 * exclude patterns with their white space normalized (the shell's word splitting, joined by one space). @internal
 */
export function buildConfigDigest(spec: string, include: string, exclude: string): string {
  const words = (s: string) => s.split(/[ \t\n]+/).filter((w) => w !== '').join(' ');
  const text = `${spec}\ninclude: ${words(include)}\nexclude: ${words(exclude)}\n`;
  return `sha256:${createHash('sha256').update(text).digest('hex')}`;
}

/**
 * The serving tag as `build-config.sh` names it: `<commit>-<first 16 hex of the build configuration's digest>`.
 * The commit and the configuration decide the image's bytes (the build is reproducible), so the pipeline only ever
 * pushes that image under this tag. @internal
 */
export function servingTag(commit: string, buildConfig: string): string {
  if (!/^[0-9a-f]{40}$/.test(commit)) throw new Error(`"${commit}" is not a 40-hex commit sha`);
  if (!/^sha256:[0-9a-f]{64}$/.test(buildConfig)) throw new Error(`"${buildConfig}" is not a sha256 digest`);
  return `${commit}-${buildConfig.slice('sha256:'.length, 'sha256:'.length + 16)}`;
}

/** The scripts that write the image's bytes, per builder: a change to one is a change of build. */
const BUILDER_SCRIPTS: Record<ModelcarBuilderKind, string[]> = {
  [ModelcarBuilderKind.OCI_LAYOUT]: ['layout-base.sh', 'layout-build.py'],
  [ModelcarBuilderKind.BUILDAH]: ['build-buildah.sh'],
};

/**
 * The text behind the build configuration digest. It names everything of the library that
 * changes the bytes of the image for a given model commit and file selection. The library's
 * version number is not in it (a release that leaves the builder alone must not rebuild every
 * model); the builder's scripts are, by their sha256, so a release that changes them does
 * rebuild. The tools image of the layout builder is left out: skopeo only copies the base's
 * blobs there, and layout-build.py writes every manifest and config itself.
 *
 * The streaming mode has the same configuration (its step writes the same bytes from the same
 * oci_image.py, which the end-to-end tests check digest for digest), so either mode finds the
 * other's image published, under the same serving tag.
 *
 * @internal
 */
export function buildConfigSpec(builder: ModelcarBuilder, base: ImageReference, format: ArtifactFormat): string {
  const byDigest = (image: ImageReference) => image.digest ?? image.toString();
  const scripts = BUILDER_SCRIPTS[builder.kind].map((name) => `${name}@sha256:${createHash('sha256').update(loadScript(name)).digest('hex')}`);
  return [
    'modelcar build configuration v1',
    `builder: ${builder.kind}`,
    `builder image: ${byDigest(builder.image)}`,
    `builder scripts: ${scripts.join(' ')}`,
    `base image: ${byDigest(base)}`,
    ...(builder.largeFileBytes !== undefined ? [`large file bytes: ${builder.largeFileBytes}`] : []),
    ...(builder.maxLayers !== undefined ? [`max layers: ${builder.maxLayers}`] : []),
    ...(builder.platforms !== undefined ? [`platforms: ${builder.platforms.map((p) => p.toString()).join(' ')}`] : []),
    `artifact format: ${format}`,
    'models path: /models',
  ].join('\n');
}
