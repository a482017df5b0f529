import { createHash } from 'crypto';

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
