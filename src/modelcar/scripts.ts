import * as fs from 'fs';
import * as path from 'path';

/** Where the step scripts live: beside this file in `scripts/` (copied to `lib/` at build time). */
const SCRIPTS_DIR = path.join(__dirname, 'scripts');

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
 * A Python line that embeds a module from beside the script: `from hf_hub import *`, at the
 * top level (column 0). Run from the source tree, Python finds the module beside the script
 * (the script's directory is the first entry of `sys.path`); at synth the line is replaced
 * by the module's text.
 */
const EMBED_LINE = /^from (\w+) import \*\n/gm;
/** Any import line, to refuse a module imported some other way (it would not exist in the pod). */
const IMPORT_LINE = /^[ \t]*(?:from|import)[ \t]+([\w.]+)(.*)$/gm;
/** A name defined at the top level of a module: def, class or assignment. */
const TOP_LEVEL_NAME = /^(?:(?:async[ \t]+)?def[ \t]+(\w+)|class[ \t]+(\w+)|(\w+)[ \t]*(?::[^=\n]*)?=(?!=))/gm;

/**
 * Reads a step script that lives beside this file in `scripts/` (copied to `lib/` at
 * build time), so each script can be read, shellchecked and run on its own. What it shares
 * with other scripts is embedded in place, so the step's script reads top to bottom:
 *
 * - shell: each `. "$(dirname "$0")/x.sh"` line is replaced by the text of `x.sh` (one
 *   level: a sourced script sources nothing);
 * - Python: each `from x import *` line is replaced by the modules `x.py` needs (its own
 *   `from y import *` lines), then `x.py` itself, in dependency order, each module once.
 *   A standard module imported again (`import os`) is imported once, at its first line.
 *   Embedded, every module shares the step script's namespace; run from the source tree,
 *   `import *` gives the script the module's public names. The two behave alike as long as
 *   no two files define the same top-level name, no module runs code when loaded
 *   (`if __name__`), rebinds a global or is imported other than by `from x import *`, and
 *   nothing is embedded from inside a block: each of these fails here, at synth.
 *
 * @internal
 */
export function loadScript(name: string, dir: string = SCRIPTS_DIR): string {
  const text = fs.readFileSync(path.join(dir, name), 'utf8');
  if (name.endsWith('.py')) return embedModules(name, text, dir);
  return text.replace(SOURCE_LINE, (_line, shared: string) => {
    const body = fs.readFileSync(path.join(dir, shared), 'utf8').replace(/^#!.*\n/, '');
    if (new RegExp(SOURCE_LINE.source, 'm').test(body)) {
      throw new Error(`step script ${shared} (embedded in ${name}) sources another script: embed one level only`);
    }
    return `# --- ${shared}, embedded at synth ---\n${body}# --- end of ${shared} ---\n`;
  });
}

/** The Python step script `name` with its modules embedded (see `loadScript`). */
function embedModules(name: string, text: string, dir: string): string {
  const modules = new Map<string, string>(); // module -> its text, in dependency order
  const read = (module: string, chain: string[]): void => {
    if (modules.has(module)) return;
    const file = `${module}.py`;
    if (chain.includes(module)) {
      throw new Error(`step script ${name}: circular embed ${[...chain, module].map((m) => `${m}.py`).join(' -> ')}: a module cannot embed what embeds it, move the shared part into a module of its own`);
    }
    if (!fs.existsSync(path.join(dir, file))) {
      throw new Error(`step script ${name}: ${chain.length ? `${chain[chain.length - 1]}.py` : name} embeds unknown module ${module}: there is no ${file} beside it; add it or fix the line "from ${module} import *"`);
    }
    const body = fs.readFileSync(path.join(dir, file), 'utf8');
    checkEmbeddable(name, file, body, dir);
    for (const dep of embedsOf(body)) read(dep, [...chain, module]);
    modules.set(module, body.replace(EMBED_LINE, ''));
  };
  checkEmbeddable(name, name, text, dir);
  const embedded = text.replace(EMBED_LINE, (_line, module: string) => {
    const before = new Set(modules.keys());
    read(module, []);
    return [...modules].filter(([m]) => !before.has(m))
      .map(([m, body]) => `# --- ${m}.py, embedded at synth ---\n${body}# --- end of ${m}.py ---\n`).join('');
  });
  checkNamesOnce(name, [[name, text], ...[...modules].map(([m, body]): [string, string] => [`${m}.py`, body])]);
  // A module imported again at the top level is a no-op: keep its first import only.
  const imported = new Set<string>();
  return embedded.replace(/^import [\w.]+\n/gm, (line) => {
    if (imported.has(line)) return '';
    imported.add(line);
    return line;
  });
}

/** The modules a Python file embeds, in the order of its lines. */
function embedsOf(text: string): string[] {
  return [...text.matchAll(EMBED_LINE)].map((m) => m[1]);
}

/** Fails on what `embedModules` cannot reproduce faithfully in `file` (embedded into step script `name`). */
function checkEmbeddable(name: string, file: string, text: string, dir: string): void {
  const where = file === name ? `step script ${name}` : `module ${file} (embedded in ${name})`;
  for (const m of text.matchAll(IMPORT_LINE)) {
    const [line, module] = m;
    const top = module.split('.')[0];
    if (/^from \w+ import \*$/.test(line)) continue;
    if (/^[ \t]/.test(line) && /^[ \t]*from \w+ import \*/.test(line)) {
      throw new Error(`${where}: "${line.trim()}" is inside a block: embed modules at the top level only`);
    }
    if (/ import \*/.test(line) || fs.existsSync(path.join(dir, `${top}.py`))) {
      throw new Error(`${where}: "${line.trim()}" imports ${top} other than by a top-level "from ${top} import *" line, the only import embedded at synth`);
    }
  }
  if (file === name) return;
  const refusals: Array<[RegExp, string]> = [
    [/^if __name__\b/m, 'runs code when loaded as the main script ("if __name__ ..."): embedded, it would run in the step'],
    [/^from __future__ /m, 'has a __future__ import: embedded, it would not be at the top of the step script'],
    [/^[ \t]+global[ \t]/m, 'rebinds a global: embedded and imported, other files would see different values; keep state in an object'],
  ];
  for (const [re, why] of refusals) {
    if (re.test(text)) throw new Error(`${where} ${why}`);
  }
}

/** Fails if two embedded files define the same top-level name: embedded, the later would replace the other. */
function checkNamesOnce(name: string, files: Array<[string, string]>): void {
  const owner = new Map<string, string>();
  for (const [file, text] of files) {
    const own = new Set([...text.matchAll(TOP_LEVEL_NAME)].map((m) => m[1] ?? m[2] ?? m[3]));
    for (const n of own) {
      const other = owner.get(n);
      if (other) throw new Error(`step script ${name}: ${other} and ${file} both define ${n}: embedded into one script, one would replace the other; rename one`);
      owner.set(n, file);
    }
  }
}
