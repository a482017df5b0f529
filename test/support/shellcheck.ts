/**
 * Runs the real `shellcheck` over the scripts of synthesized Tekton manifests.
 *
 * Usage in jest: `expectShellcheckClean(Testing.synth(chart))`.
 *
 * Tekton replaces `$(params.x)`, `$(workspaces.w.path)`, ... textually before the script runs.
 * To shellcheck those would be command substitutions (`$(params.x)` runs a command called
 * `params.x`), so each reference is first mapped to a shell variable such as `${TEKTON_PARAMS_X}`:
 * a textual substitution behaves like an unquoted expansion (it splits on whitespace and globs
 * when unquoted), so shellcheck's quoting advice on the variable applies to the reference too.
 */
import { spawnSync } from 'child_process';

export interface ShellcheckOptions {
  /** Shown in findings instead of `-` (e.g. the step's location). */
  readonly name?: string;
}

/** A script found in a Tekton document. */
export interface TektonScript {
  /** `Kind/name /json/pointer/to/script`. */
  readonly location: string;
  readonly script: string;
}

/**
 * Severity threshold. `style` is the strictest: we own every script the library emits, so every
 * finding can be fixed, or disabled in the script with a `# shellcheck disable=SCxxxx` comment
 * that states why (the comment then ships in the YAML, documenting the intent). A weaker level
 * would miss `info` findings that are real bugs here, notably SC2086 (unquoted expansion,
 * which for a Tekton substitution means word splitting of a parameter value).
 */
const SEVERITY = 'style';

/**
 * Shell dialects by interpreter name. shellcheck 0.9 knows sh, bash, dash and ksh; BusyBox ash is
 * checked as POSIX sh (ash accepts all of POSIX, so sh is the safe, stricter approximation).
 */
const DIALECTS: Record<string, string> = {
  sh: 'sh', bash: 'bash', dash: 'dash', ksh: 'ksh', ksh93: 'ksh', mksh: 'ksh', ash: 'sh', busybox: 'sh',
};
/** Shells shellcheck cannot check: refusing beats silently passing them. */
const UNSUPPORTED_SHELLS = new Set(['zsh', 'fish', 'csh', 'tcsh']);

// ---------------------------------------------------------------------------------------------
// shellcheck binary
// ---------------------------------------------------------------------------------------------

let checkedPath: string | undefined;

/** Fails loudly when shellcheck is missing: the tests must never silently skip the check. */
function assertShellcheckAvailable(): void {
  const currentPath = process.env.PATH ?? '';
  if (checkedPath === currentPath) return;
  // env passed explicitly: under jest, child_process would otherwise see the host process's
  // environment rather than the (possibly modified) sandboxed process.env.
  const probe = spawnSync('shellcheck', ['--version'], { encoding: 'utf8', env: process.env });
  if (probe.error || probe.status !== 0) {
    throw new Error(
      'shellcheck is not available on PATH'
      + (probe.error ? ` (${probe.error.message})` : ` (exit ${probe.status})`)
      + ': run `bash scripts/install-test-tools.sh` to install the test tools',
    );
  }
  checkedPath = currentPath;
}

// ---------------------------------------------------------------------------------------------
// Tekton substitutions
// ---------------------------------------------------------------------------------------------

/**
 * A Tekton variable reference: `$(root.seg.seg)`, with bracket segments like `["a.b"]`, `['x']`,
 * `[0]` or `[*]`. Only Tekton's reference roots match, so `$(date)` stays a command substitution.
 */
const TEKTON_REFERENCE = new RegExp(
  '\\$\\(\\s*(?:params|context|workspaces|results|tasks|steps|step|finally|credentials|artifacts|inputs|outputs|resources)'
  + '(?:\\.[A-Za-z0-9_-]+|\\[\\s*(?:"[^"\\n]*"|\'[^\'\\n]*\'|\\*|\\d+)\\s*\\])+\\s*\\)',
  'g',
);

/** `$(params["model-id"])` -> `TEKTON_PARAMS_MODEL_ID`. */
export function tektonVariableName(reference: string): string {
  const inner = reference.slice(2, -1);
  const words = inner.replace(/\[\s*\*\s*\]/g, '').toUpperCase().split(/[^A-Z0-9]+/).filter((w) => w !== '');
  return `TEKTON_${words.join('_')}`;
}

interface Replacement {
  /** 0-based start column in the original and in the mapped line. */
  readonly original: number;
  readonly mapped: number;
  readonly originalLength: number;
  readonly mappedLength: number;
}

interface MappedScript {
  readonly text: string;
  /** Per line (0-based), the replacements made on it, left to right. */
  readonly replacements: Replacement[][];
  /** Every `${VAR}` placeholder we inserted. */
  readonly placeholders: Set<string>;
}

/** Replaces every Tekton reference by `${TEKTON_...}`, remembering where (for column mapping). */
export function mapTektonSubstitutions(script: string): MappedScript {
  const placeholders = new Set<string>();
  const replacements: Replacement[][] = [];
  const lines = script.split('\n').map((line, i) => {
    const onLine: Replacement[] = [];
    let shift = 0;
    const mapped = line.replace(TEKTON_REFERENCE, (match: string, offset: number) => {
      const placeholder = `\${${tektonVariableName(match)}}`;
      placeholders.add(placeholder);
      onLine.push({ original: offset, mapped: offset + shift, originalLength: match.length, mappedLength: placeholder.length });
      shift += placeholder.length - match.length;
      return placeholder;
    });
    replacements[i] = onLine;
    return mapped;
  });
  return { text: lines.join('\n'), replacements, placeholders };
}

/** Maps a 1-based column of the mapped script back to the original script. */
function originalColumn(mapped: MappedScript, line: number, column: number): number {
  let shift = 0;
  for (const r of mapped.replacements[line - 1] ?? []) {
    const c = column - 1;
    if (c < r.mapped) break;
    if (c < r.mapped + r.mappedLength) return r.original + 1; // inside a placeholder: its start
    shift = r.mapped + r.mappedLength - (r.original + r.originalLength);
  }
  return column - shift;
}

/** The text of the mapped script between two 1-based (line, column) positions, end exclusive. */
function textBetween(text: string, line: number, column: number, endLine: number, endColumn: number): string {
  const lines = text.split('\n').slice(line - 1, endLine);
  if (lines.length === 0) return '';
  lines[lines.length - 1] = lines[lines.length - 1].slice(0, endColumn - 1);
  lines[0] = lines[0].slice(column - 1);
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Checking one script
// ---------------------------------------------------------------------------------------------

/**
 * The shell dialect to check a script as, or undefined when the script is not a shell script.
 * Tekton runs a script without `#!` as `/bin/sh` (it prepends `#!/bin/sh\nset -e`), so that is
 * the default; a shebang must be the very first bytes, as Tekton checks `HasPrefix(script, "#!")`.
 */
export function shellDialect(script: string): string | undefined {
  if (!script.startsWith('#!')) return 'sh';
  const words = script.slice(2).split('\n')[0].trim().split(/\s+/);
  let interpreter = words[0] ?? '';
  if (interpreter === 'win') return undefined; // Tekton's `#!win` prefix: a Windows script
  if (interpreter.endsWith('/env')) {
    // `#!/usr/bin/env [-S] [-i] bash -e`: the first word that is not an option or NAME=value.
    interpreter = words.slice(1).find((w) => !w.startsWith('-') && !w.includes('=')) ?? '';
  }
  const base = interpreter.split('/').pop() ?? '';
  if (UNSUPPORTED_SHELLS.has(base)) {
    throw new Error(`shellcheck cannot check ${base} scripts (shebang "${script.split('\n')[0]}")`);
  }
  return DIALECTS[base];
}

interface ShellcheckComment {
  readonly line: number;
  readonly endLine: number;
  readonly column: number;
  readonly endColumn: number;
  readonly level: string;
  readonly code: number;
  readonly message: string;
}

/**
 * Returns shellcheck's findings for one script (empty when clean, or when the shebang names a
 * non-shell interpreter such as python). Each finding reads
 * `name:line:column: level SCcode: message | source line`, with positions in the original script.
 */
export function shellcheckScript(script: string, opts: ShellcheckOptions = {}): string[] {
  const dialect = shellDialect(script);
  if (dialect === undefined) return [];
  assertShellcheckAvailable();
  const mapped = mapTektonSubstitutions(script);
  const result = spawnSync(
    'shellcheck',
    // --norc: no user/project .shellcheckrc, so results do not depend on the machine.
    ['--norc', '--format=json1', `--shell=${dialect}`, `--severity=${SEVERITY}`, '-'],
    { input: mapped.text, encoding: 'utf8', env: process.env, maxBuffer: 64 * 1024 * 1024 },
  );
  if (result.error) throw result.error;
  // 0: clean, 1: findings; anything else is shellcheck failing to run.
  if (result.status !== 0 && result.status !== 1) {
    throw new Error(`shellcheck exited with ${result.status}: ${result.stderr}`);
  }
  const comments = (JSON.parse(result.stdout) as { comments: ShellcheckComment[] }).comments;
  const name = opts.name ?? '-';
  const originalLines = script.split('\n');
  return comments
    .filter((c) => !isTektonSubstitutionInSingleQuotes(mapped, c))
    .map((c) => {
      const source = (originalLines[c.line - 1] ?? '').trim();
      return `${name}:${c.line}:${originalColumn(mapped, c.line, c.column)}: ${c.level} SC${c.code}: ${c.message} | ${source}`;
    });
}

/**
 * SC2016 ("expressions don't expand in single quotes") is noise when the only expansions in the
 * quoted string are our placeholders: Tekton substitutes `'$(params.x)'` textually, inside single
 * quotes too. The finding stays when a real `$var`/backtick is in the string as well.
 */
function isTektonSubstitutionInSingleQuotes(mapped: MappedScript, c: ShellcheckComment): boolean {
  if (c.code !== 2016) return false;
  let quoted = textBetween(mapped.text, c.line, c.column, c.endLine, c.endColumn);
  for (const placeholder of mapped.placeholders) quoted = quoted.split(placeholder).join('');
  return !/[$`]/.test(quoted);
}

// ---------------------------------------------------------------------------------------------
// Walking Tekton documents
// ---------------------------------------------------------------------------------------------

function isObject(value: unknown): value is Record<string, any> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function asList(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

function collectFromTaskSpec(spec: unknown, pointer: string, out: Array<{ pointer: string; script: string }>): void {
  if (!isObject(spec)) return;
  for (const list of ['steps', 'sidecars']) {
    asList(spec[list]).forEach((container, i) => {
      if (isObject(container) && typeof container.script === 'string') {
        out.push({ pointer: `${pointer}/${list}/${i}/script`, script: container.script });
      }
    });
  }
  // v1 StepTemplate has no `script`, but an older/odd document might carry one: check it anyway.
  if (isObject(spec.stepTemplate) && typeof spec.stepTemplate.script === 'string') {
    out.push({ pointer: `${pointer}/stepTemplate/script`, script: spec.stepTemplate.script });
  }
}

function collectFromPipelineSpec(spec: unknown, pointer: string, out: Array<{ pointer: string; script: string }>): void {
  if (!isObject(spec)) return;
  for (const list of ['tasks', 'finally']) {
    asList(spec[list]).forEach((pipelineTask, i) => {
      if (!isObject(pipelineTask)) return;
      collectFromTaskSpec(pipelineTask.taskSpec, `${pointer}/${list}/${i}/taskSpec`, out);
      collectFromPipelineSpec(pipelineTask.pipelineSpec, `${pointer}/${list}/${i}/pipelineSpec`, out);
    });
  }
}

/** Every `script` in the tekton.dev documents: Task/TaskRun steps, sidecars, embedded specs. */
export function collectTektonScripts(docs: any[]): TektonScript[] {
  const scripts: TektonScript[] = [];
  for (const doc of docs) {
    if (!isObject(doc) || typeof doc.apiVersion !== 'string' || !doc.apiVersion.startsWith('tekton.dev/')) continue;
    const meta = isObject(doc.metadata) ? doc.metadata : {};
    const label = `${doc.kind}/${meta.name ?? `${meta.generateName ?? ''}*`}`;
    const found: Array<{ pointer: string; script: string }> = [];
    const spec = doc.spec;
    switch (doc.kind) {
      case 'Task':
        collectFromTaskSpec(spec, '/spec', found);
        break;
      case 'TaskRun':
        collectFromTaskSpec(isObject(spec) ? spec.taskSpec : undefined, '/spec/taskSpec', found);
        break;
      case 'Pipeline':
        collectFromPipelineSpec(spec, '/spec', found);
        break;
      case 'PipelineRun':
        collectFromPipelineSpec(isObject(spec) ? spec.pipelineSpec : undefined, '/spec/pipelineSpec', found);
        break;
      case 'StepAction':
        if (isObject(spec) && typeof spec.script === 'string') found.push({ pointer: '/spec/script', script: spec.script });
        break;
      default:
        break;
    }
    scripts.push(...found.map((f) => ({ location: `${label} ${f.pointer}`, script: f.script })));
  }
  return scripts;
}

/** Shellchecks every script of every tekton.dev document; throws one Error listing all findings. */
export function expectShellcheckClean(docs: any[]): void {
  const problems: string[] = [];
  for (const { location, script } of collectTektonScripts(docs)) {
    const findings = shellcheckScript(script, { name: 'script' });
    if (findings.length > 0) problems.push(`${location}:\n${findings.map((f) => `    ${f}`).join('\n')}`);
  }
  if (problems.length > 0) {
    throw new Error(`shellcheck findings in ${problems.length} script(s):\n  ${problems.join('\n  ')}`);
  }
}
