/**
 * Tekton variable substitution, done in passes like the Tekton controller does it
 * (params, then context, then results, then step exit-code paths, then workspaces).
 * A pass only replaces references it knows; whatever Tekton reference is left at the end is an error.
 * Shell command substitutions such as `$(date)` are not Tekton references and are left alone.
 */

export type ParamValue = string | string[] | Record<string, string>;

/** Returns the value of a reference expression (the text between `$(` and `)`), or undefined if unknown to this pass. */
export type Resolver = (expr: string) => ParamValue | undefined;

export class SubstitutionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SubstitutionError';
  }
}

const REF_RE = /\$\(([^()]*)\)/g;
const EXACT_REF_RE = /^\$\(([^()]*)\)$/;
const TEKTON_REF_RE = /\$\(\s*((?:params|context|workspaces|results|tasks|steps|finally)(?:\.|\[)[^()]*?)\s*\)/g;

export function isArrayValue(v: ParamValue | undefined): v is string[] {
  return Array.isArray(v);
}

export function isObjectValue(v: ParamValue | undefined): v is Record<string, string> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Substitute references in a string; array/object values are an error in a string context. */
export function substString(s: string, resolver: Resolver, where: string): string {
  if (typeof s !== 'string') return s;
  return s.replace(REF_RE, (whole, expr: string) => {
    const v = resolver(expr.trim());
    if (v === undefined) return whole;
    if (typeof v !== 'string') {
      throw new SubstitutionError(`${where}: ${whole} is an ${Array.isArray(v) ? 'array' : 'object'} and cannot be used inside a string`);
    }
    return v;
  });
}

/** Substitute references in a string array; an element that is exactly a whole-array reference expands into several. */
export function substArray(items: string[], resolver: Resolver, where: string): string[] {
  const out: string[] = [];
  for (const item of items ?? []) {
    const m = typeof item === 'string' ? EXACT_REF_RE.exec(item.trim()) : null;
    if (m) {
      const v = resolver(m[1].trim());
      if (Array.isArray(v)) {
        out.push(...v);
        continue;
      }
      if (isObjectValue(v)) {
        throw new SubstitutionError(`${where}: ${item} is an object and cannot be used as an array element`);
      }
    }
    out.push(substString(String(item), resolver, where));
  }
  return out;
}

/** Substitute in a param value: a string that is exactly one array/object reference becomes that array/object. */
export function substParamValue(v: ParamValue, resolver: Resolver, where: string): ParamValue {
  if (Array.isArray(v)) return substArray(v, resolver, where);
  if (isObjectValue(v)) {
    const out: Record<string, string> = {};
    for (const [k, val] of Object.entries(v)) out[k] = substString(String(val), resolver, `${where}.${k}`);
    return out;
  }
  const s = String(v);
  const m = EXACT_REF_RE.exec(s.trim());
  if (m) {
    const r = resolver(m[1].trim());
    if (r !== undefined && typeof r !== 'string') return Array.isArray(r) ? [...r] : { ...r };
  }
  return substString(s, resolver, where);
}

/** Tekton references (params/context/workspaces/results/tasks/steps/finally) still present in a string. */
export function findTektonRefs(s: unknown): string[] {
  if (typeof s !== 'string') return [];
  const out: string[] = [];
  for (const m of s.matchAll(TEKTON_REF_RE)) out.push(m[0]);
  return out;
}

/** All Tekton references in any string of a (JSON-like) value. */
export function collectTektonRefs(value: unknown): string[] {
  const out: string[] = [];
  walkStrings(value, (s) => out.push(...findTektonRefs(s)));
  return out;
}

export function walkStrings(value: unknown, fn: (s: string) => void): void {
  if (typeof value === 'string') fn(value);
  else if (Array.isArray(value)) value.forEach((v) => walkStrings(v, fn));
  else if (value && typeof value === 'object') Object.values(value).forEach((v) => walkStrings(v, fn));
}

/** Parse `params.x`, `params['x']`, `params["x"]` with an optional `[*]`, `[i]` or `.key` suffix. */
export function parseParamRef(expr: string): { name: string; suffix: string } | undefined {
  const m = /^params(?:\.([A-Za-z0-9_-]+)|\['([^']+)'\]|\["([^"]+)"\])((?:\[(?:\*|\d+)\])|(?:\.[^.[\]]+))?$/.exec(expr);
  if (!m) return undefined;
  return { name: m[1] ?? m[2] ?? m[3], suffix: m[4] ?? '' };
}

/** Resolve a value with a `[*]`, `[i]` or `.key` suffix; throws on type mismatches. */
export function selectValue(value: ParamValue, suffix: string, what: string): ParamValue {
  if (suffix === '') {
    if (typeof value !== 'string') {
      throw new SubstitutionError(`${what} is an ${Array.isArray(value) ? 'array' : 'object'}: reference it with [*]${Array.isArray(value) ? ' or [i]' : ' or .key'}`);
    }
    return value;
  }
  if (suffix === '[*]') {
    if (typeof value === 'string') throw new SubstitutionError(`${what} is a string: [*] is only for arrays and objects`);
    return value;
  }
  const idx = /^\[(\d+)\]$/.exec(suffix);
  if (idx) {
    if (!Array.isArray(value)) throw new SubstitutionError(`${what} is not an array: cannot index it with ${suffix}`);
    const i = Number(idx[1]);
    if (i >= value.length) throw new SubstitutionError(`${what}${suffix}: index out of range (length ${value.length})`);
    return value[i];
  }
  const key = suffix.slice(1);
  if (!isObjectValue(value)) throw new SubstitutionError(`${what} is not an object: cannot read key ${key}`);
  if (!(key in value)) throw new SubstitutionError(`${what} has no key ${key}`);
  return value[key];
}

/** Resolver for `$(params...)` from a map of param values. */
export function paramResolver(values: Record<string, ParamValue>, owner: string): Resolver {
  return (expr) => {
    const ref = parseParamRef(expr);
    if (!ref || !(ref.name in values)) return undefined;
    return selectValue(values[ref.name], ref.suffix, `${owner} param "${ref.name}"`);
  };
}

/** Resolver for exact keys (context, workspaces, results paths, step exit-code paths). */
export function mapResolver(map: Record<string, string>): Resolver {
  return (expr) => (Object.prototype.hasOwnProperty.call(map, expr) ? map[expr] : undefined);
}

export function chainResolvers(...resolvers: Resolver[]): Resolver {
  return (expr) => {
    for (const r of resolvers) {
      const v = r(expr);
      if (v !== undefined) return v;
    }
    return undefined;
  };
}

/** Keys for `$(results.<name>.path)` in all three notations. */
export function resultPathKeys(name: string, path: string): Record<string, string> {
  return {
    [`results.${name}.path`]: path,
    [`results['${name}'].path`]: path,
    [`results["${name}"].path`]: path,
  };
}

/** Evaluate Tekton when expressions that are already substituted. */
export interface WhenExpression {
  readonly input?: string;
  readonly operator?: string;
  readonly values?: string[];
  readonly cel?: string;
}

export function evaluateWhen(when: WhenExpression[]): { allowed: boolean; detail?: string } {
  for (const w of when ?? []) {
    if (w.cel !== undefined) throw new SubstitutionError('CEL when expressions are not supported by the local runner');
    const input = w.input ?? '';
    const values = w.values ?? [];
    const contains = values.includes(input);
    const op = w.operator;
    if (op !== 'in' && op !== 'notin') throw new SubstitutionError(`when: unknown operator ${JSON.stringify(op)}`);
    const ok = op === 'in' ? contains : !contains;
    if (!ok) return { allowed: false, detail: `${JSON.stringify(input)} ${op} ${JSON.stringify(values)} is false` };
  }
  return { allowed: true };
}

/** Parse a Go duration ("1h30m", "90s", "1.5h", "300ms", "0") into milliseconds. */
export function parseDuration(d: string | undefined): number | undefined {
  if (d === undefined || d === null || d === '') return undefined;
  const s = String(d).trim();
  if (s === '0') return 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)/gy;
  const unit: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60000, h: 3600000 };
  let total = 0;
  let pos = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) {
    total += Number(m[1]) * unit[m[2]];
    pos = re.lastIndex;
  }
  if (pos !== s.length || pos === 0) throw new SubstitutionError(`invalid duration ${JSON.stringify(d)}`);
  return total;
}
