import * as fs from 'fs';
import * as path from 'path';

/**
 * Reads a step script that lives beside this file in `scripts/` (copied to `lib/` at
 * build time), so each script can be read, shellchecked and run on its own.
 *
 * @internal
 */
export function loadScript(name: string): string {
  return fs.readFileSync(path.join(__dirname, 'scripts', name), 'utf8');
}
