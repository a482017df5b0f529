import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadScript } from '../../src/modelcar/scripts';

const EMBEDDED = /^# --- (\w+\.py), embedded at synth ---$/gm;
const embeddedModules = (script: string) => [...script.matchAll(EMBEDDED)].map((m) => m[1]);

let dir: string;

/** Writes Python files into the test's own scripts directory. */
function files(texts: Record<string, string>): void {
  for (const [name, text] of Object.entries(texts)) fs.writeFileSync(path.join(dir, name), text);
}

/** Runs a Python file with python3 (no bytecode written) and returns what it printed. */
function python(file: string): string {
  return execFileSync('python3', [file], { env: { PATH: process.env.PATH, PYTHONDONTWRITEBYTECODE: '1' }, encoding: 'utf8' });
}

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'embed-'));
});

afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('loadScript embeds the Python modules a step script imports', () => {
  test('each module once, after the modules it needs, and the result runs alone as the source runs beside its modules', () => {
    // GIVEN a step script that embeds b and a, where b embeds a
    files({
      'base.py': '"""a."""\nimport os\n\nGREETING = "hello"\n\n\ndef greet(name):\n    return "%s %s" % (GREETING, name)\n',
      'shout.py': '"""b."""\nimport os\n\nfrom base import *\n\n\ndef shout(name):\n    return greet(name).upper() if os.sep else ""\n',
      'step.py': '#!/usr/bin/env python3\nimport sys\n\nfrom shout import *\nfrom base import *\n\nprint(shout("x"), greet("y"))\n',
    });
    // WHEN
    const script = loadScript('step.py', dir);
    // THEN base comes first, once; the lines that named it are gone
    expect(embeddedModules(script)).toEqual(['base.py', 'shout.py']);
    expect(script).not.toMatch(/^from \w+ import \*$/m);
    expect(script.match(/^GREETING = /gm)).toHaveLength(1);
    expect(script.match(/^import os$/gm)).toHaveLength(1); // imported again by shout.py: a no-op, dropped
    expect(script.startsWith('#!/usr/bin/env python3\nimport sys\n\n# --- base.py, embedded at synth ---\n"""a."""\nimport os\n')).toBe(true);
    // Alone in a directory, it prints what the source prints with its modules beside it.
    const alone = fs.mkdtempSync(path.join(os.tmpdir(), 'embedded-'));
    try {
      fs.writeFileSync(path.join(alone, 'step.py'), script);
      expect(python(path.join(alone, 'step.py'))).toBe('HELLO X hello y\n');
    } finally {
      fs.rmSync(alone, { recursive: true, force: true });
    }
    expect(python(path.join(dir, 'step.py'))).toBe('HELLO X hello y\n');
    expect(fs.existsSync(path.join(dir, '__pycache__'))).toBe(false);
  });

  test('fails when a module is unknown, naming the file that embeds it', () => {
    files({ 'a.py': 'from nowhere import *\n', 'step.py': 'from a import *\n' });
    expect(() => loadScript('step.py', dir)).toThrow('step script step.py: a.py embeds unknown module nowhere: there is no nowhere.py beside it; add it or fix the line "from nowhere import *"');
  });

  test('fails when modules embed each other in a circle', () => {
    files({ 'a.py': 'from b import *\n', 'b.py': 'from c import *\n', 'c.py': 'from a import *\n', 'step.py': 'from a import *\n' });
    expect(() => loadScript('step.py', dir)).toThrow('step script step.py: circular embed a.py -> b.py -> c.py -> a.py');
  });

  test.each([
    ['an embed line inside a block', 'try:\n    from a import *\nexcept ImportError:\n    pass\n', '"from a import *" is inside a block: embed modules at the top level only'],
    ['a module imported by name', 'import a\n', '"import a" imports a other than by a top-level "from a import *" line'],
    ['names imported from a module', 'from a import helper\n', '"from a import helper" imports a other than by a top-level "from a import *" line'],
  ])('fails on %s in the step script', (_what, step, message) => {
    files({ 'a.py': 'def helper():\n    return 1\n', 'step.py': step });
    expect(() => loadScript('step.py', dir)).toThrow(`step script step.py: ${message}`);
  });

  test.each([
    ['runs code when loaded', 'if __name__ == "__main__":\n    print(1)\n', 'runs code when loaded as the main script'],
    ['rebinds a global', 'STATE = None\n\n\ndef set_state(v):\n    global STATE\n    STATE = v\n', 'rebinds a global'],
    ['has a __future__ import', 'from __future__ import annotations\n', 'has a __future__ import'],
    ['defines a name the step script defines', 'def main():\n    pass\n', 'step script step.py: step.py and a.py both define main'],
  ])('fails when a module %s', (_what, module, message) => {
    files({ 'a.py': module, 'step.py': 'from a import *\n\n\ndef main():\n    pass\n' });
    expect(() => loadScript('step.py', dir)).toThrow(message);
  });
});

describe('the hub step scripts as the Tasks embed them', () => {
  test('the download embeds hub access, the tree, the files and the transfer, each once and in that order', () => {
    const script = loadScript('hf-fetch.py');
    expect(embeddedModules(script)).toEqual(['ca_trust.py', 'hf_hub.py', 'hf_tree.py', 'hf_files.py', 'hf_transfer.py']);
    expect(script).toMatch(/^class DownloadConfig\(Config\):$/m);
  });

  test('the registration embeds the CA trust it shares with the hub steps, and nothing of the hub', () => {
    const script = loadScript('register-model.py');
    expect(embeddedModules(script)).toEqual(['ca_trust.py']);
    expect(script).toMatch(/^def tls_context\(ca_dir, variable\):$/m);
    expect(script).not.toContain('class Config');
  });

  test('the resolve step embeds hub access and the tree, none of the download', () => {
    const script = loadScript('hf-resolve.py');
    expect(embeddedModules(script)).toEqual(['ca_trust.py', 'hf_hub.py', 'hf_tree.py']);
    expect(script).toMatch(/^def resolve_files\(cfg\):$/m);
    for (const download of ['class FileState', 'class Transfer', 'class Progress', 'def check_space', 'def write_sums', 'class DownloadConfig']) {
      expect(script).not.toContain(download);
    }
  });
});
