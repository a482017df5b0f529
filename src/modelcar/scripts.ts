import * as fs from 'fs';
import * as path from 'path';

/** A script line that loadScript replaces with a shared snippet of `scripts/`. */
const INCLUDE = /^# @include ([a-z0-9-]+\.sh)$/m;

/**
 * Reads a step script that lives beside this file in `scripts/` (copied to `lib/` at
 * build time), so each script can be read, shellchecked and run on its own. A line
 * `# @include <snippet>.sh` is replaced by that snippet (shared shell code, e.g. the
 * registry credentials), so every step carries all its code in its own script.
 *
 * @internal
 */
export function loadScript(name: string): string {
  let text = fs.readFileSync(path.join(__dirname, 'scripts', name), 'utf8');
  for (let m = INCLUDE.exec(text); m; m = INCLUDE.exec(text)) {
    const snippet = fs.readFileSync(path.join(__dirname, 'scripts', m[1]), 'utf8').replace(/\n$/, '');
    text = text.replace(m[0], snippet);
  }
  return text;
}
