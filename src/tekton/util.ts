import { Duration } from 'cdk8s';

/**
 * Returns `undefined` for an empty list or map, so that empty fields are dropped from
 * the manifest instead of being emitted as `[]` or `{}`.
 *
 * @internal
 */
export function undefinedIfEmpty<T>(value: T[] | undefined): T[] | undefined;
export function undefinedIfEmpty<T extends object>(value: T | undefined): T | undefined;
export function undefinedIfEmpty(value: any): any {
  if (value === undefined) return undefined;
  if (Array.isArray(value)) return value.length === 0 ? undefined : value;
  return Object.keys(value).length === 0 ? undefined : value;
}

/**
 * Renders a Duration as a Go duration string (`1h30m0s`), the format Tekton's
 * `timeout` and `timeouts` fields parse (Kubernetes `metav1.Duration`).
 *
 * @internal
 */
export function goDuration(d: Duration): string {
  const ms = d.toMilliseconds();
  const total = ms / 1000;
  if (!Number.isInteger(total)) {
    throw new Error(`duration ${d.toHumanString()} is not a whole number of seconds: Tekton timeouts are given in seconds or coarser`);
  }
  if (total < 0) throw new Error(`duration ${total}s is negative`);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (h > 0) return `${h}h${m}m${s}s`;
  if (m > 0) return `${m}m${s}s`;
  return `${s}s`;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/**
 * Throws unless `value` is a DNS-1123 label (lowercase alphanumerics and '-', at most
 * 63 characters), the rule Tekton and Kubernetes apply to the names it is used for.
 *
 * @internal
 */
export function validateDnsLabel(what: string, value: string): void {
  if (value.length > 63) {
    throw new Error(`${what} "${value}" is ${value.length} characters long: it must be at most 63`);
  }
  if (!DNS_LABEL.test(value)) {
    throw new Error(`${what} "${value}" is not a DNS-1123 label: use lowercase letters, digits and '-', starting and ending with a letter or digit`);
  }
}

/**
 * Throws unless `value` is a valid object name (DNS-1123 subdomain, at most 63
 * characters: Tekton labels pods with the names of the Task, Pipeline and run, and a
 * label value is limited to 63).
 *
 * @internal
 */
export function validateObjectName(what: string, value: string): void {
  if (value.length > 63) {
    throw new Error(`${what} "${value}" is ${value.length} characters long: it must be at most 63`);
  }
  if (!DNS_SUBDOMAIN.test(value)) {
    throw new Error(`${what} "${value}" is not a DNS-1123 name: use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit`);
  }
}

/**
 * A `$(...)` variable found in a string, e.g. `params.model-repo` from `$(params.model-repo)`.
 *
 * @internal
 */
export interface VariableReference {
  /** The text between `$(` and `)`. */
  readonly expression: string;
  /** The first segment: `params`, `tasks`, `workspaces`, `results`, `context`, `steps`... */
  readonly root: string;
  /** The segments after the root, with `["x"]` and `['x']` brackets read as names. */
  readonly path: string[];
}

const VARIABLE = /\$\(([^()]+)\)/g;

/**
 * Finds the Tekton variables (`$(params.x)`, `$(tasks.t.results.r)`, ...) in a string.
 *
 * Shell command substitutions such as `$(date)` are returned as well, with root `date`:
 * callers look only at the roots they know.
 *
 * @internal
 */
export function findVariables(text: string | undefined): VariableReference[] {
  if (!text) return [];
  const found: VariableReference[] = [];
  for (const match of text.matchAll(VARIABLE)) {
    const expression = match[1].trim();
    const path: string[] = [];
    // params["a.b"], params['x'], params.x[*], params.x[0]
    const re = /([^.[\]]+)|\[\s*["']([^"']+)["']\s*\]|\[[^\]]*\]/g;
    for (const part of expression.matchAll(re)) {
      if (part[1] !== undefined) path.push(part[1]);
      else if (part[2] !== undefined) path.push(part[2]);
    }
    if (path.length === 0) continue;
    found.push({ expression, root: path[0], path: path.slice(1) });
  }
  return found;
}

/**
 * Throws when `name` is already in `existing`.
 *
 * @internal
 */
export function checkUnique(what: string, owner: string, name: string, existing: Iterable<string>): void {
  for (const e of existing) {
    if (e === name) {
      throw new Error(`${owner} already has a ${what} named "${name}": ${what} names must be unique`);
    }
  }
}
