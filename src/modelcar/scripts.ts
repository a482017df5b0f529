import * as fs from 'fs';
import * as path from 'path';

/**
 * A line that sources a shared script from beside the script itself:
 * `. "$(dirname "$0")/registry-errors.sh"`, at the start of a line or indented (inside a
 * function, to run it there). Run on its own, the script sources the file;
 * at synth the line is replaced by the file's text, since Tekton runs one self-contained
 * script per step (it is written to /tekton/scripts/ under a generated name, with
 * nothing beside it).
 */
const SOURCE_LINE = /^(?:[ \t]*# shellcheck [^\n]*source=[\w.-]+\n)?[ \t]*\. "\$\(dirname "\$0"\)\/([\w-]+\.sh)"\n/gm;

/**
 * Reads a step script that lives beside this file in `scripts/` (copied to `lib/` at
 * build time), so each script can be read, shellchecked and run on its own. The shared
 * scripts it sources are embedded in place, so the step's script reads top to bottom.
 *
 * @internal
 */
export function loadScript(name: string): string {
  const text = fs.readFileSync(path.join(__dirname, 'scripts', name), 'utf8');
  return text.replace(SOURCE_LINE, (_line, shared: string) => {
    const body = fs.readFileSync(path.join(__dirname, 'scripts', shared), 'utf8').replace(/^#!.*\n/, '');
    if (new RegExp(SOURCE_LINE.source, 'm').test(body)) {
      throw new Error(`step script ${shared} (embedded in ${name}) sources another script: embed one level only`);
    }
    return `# --- ${shared}, embedded at synth ---\n${body}# --- end of ${shared} ---\n`;
  });
}
