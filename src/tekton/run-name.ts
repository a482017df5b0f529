import { createHash } from 'crypto';
import type { NameFromInputsOptions } from './pipeline-run';

// Helpers of PipelineRunProps.nameFromInputs; not part of the public API (index.ts does not export them).

/** Characters of the hash in a name. */
export const RUN_NAME_HASH_LENGTH = 10;
/** The longest readable part: 63, less a dash and the hash. */
export const RUN_NAME_MAX_PREFIX = 63 - 1 - RUN_NAME_HASH_LENGTH;

/**
 * The readable part of a name made from any text (a construct id, a variant name):
 * lowercased, every run of other characters than letters, digits and '.' turned into one
 * '-', and shortened to `max` characters; the hash after it is never shortened.
 *
 * @internal
 */
export function readableNamePart(text: string, max: number = RUN_NAME_MAX_PREFIX): string {
  const cleaned = text.toLowerCase().replace(/[^a-z0-9.]+/g, '-').replace(/^[-.]+|[-.]+$/g, '');
  const short = cleaned.slice(0, max).replace(/[-.]+$/, '');
  return short === '' ? 'run' : short;
}

/**
 * JSON with the keys of every object sorted, so the same value gives the same bytes
 * whatever order it was built in.
 *
 * @internal
 */
export function canonicalJson(value: any): string {
  if (value === undefined || value === null) return 'null';
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v)).join(',')}]`;
  if (typeof value === 'object') {
    const keys = Object.keys(value).filter((k) => value[k] !== undefined).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * The sha256 (hex) of a run's inputs. Absent inputs leave no trace, so adding an option
 * to this scheme later does not rename the runs that do not use it.
 *
 * @internal
 */
export function runInputsDigest(inputs: {
  pipeline: string;
  params: { [name: string]: any };
  inputs?: { [key: string]: string };
  nonce?: string;
  pipelineSpec?: any;
}): string {
  const doc: any = { pipeline: inputs.pipeline, params: inputs.params };
  if (inputs.inputs && Object.keys(inputs.inputs).length > 0) doc.inputs = inputs.inputs;
  if (inputs.nonce !== undefined) doc.nonce = inputs.nonce;
  if (inputs.pipelineSpec !== undefined) doc.pipelineSpec = inputs.pipelineSpec;
  return createHash('sha256').update(canonicalJson(doc)).digest('hex');
}

/**
 * Throws unless `options` can name a run: a prefix that fits beside the hash, string
 * inputs, a string nonce.
 *
 * @internal
 */
export function validateNameFromInputs(where: string, options: NameFromInputsOptions): void {
  const prefix: unknown = options.prefix;
  if (typeof prefix !== 'string') {
    throw new Error(`${where}: nameFromInputs.prefix ${JSON.stringify(prefix)} is a ${typeOf(prefix)}: give a string such as the variant's name`);
  }
  if (prefix.length > RUN_NAME_MAX_PREFIX) {
    throw new Error(`${where}: name "${prefix}" is ${prefix.length} characters long: with a dash and the `
      + `${RUN_NAME_HASH_LENGTH}-character hash of the inputs it must be at most ${RUN_NAME_MAX_PREFIX}; shorten it`);
  }
  if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(prefix)) {
    throw new Error(`${where}: name "${prefix}" is not the start of a DNS-1123 name: use lowercase letters, digits, '-' and '.', `
      + 'starting and ending with a letter or digit');
  }
  const nonce: unknown = options.nonce;
  if (nonce !== undefined) {
    if (typeof nonce !== 'string') {
      throw new Error(`${where}: rebuild nonce ${JSON.stringify(nonce)} is a ${typeOf(nonce)}: give a string, for example the date of the rebuild ('2026-12-01')`);
    }
    if (nonce.trim() === '' || nonce.length > 128) {
      throw new Error(`${where}: rebuild nonce ${JSON.stringify(nonce)} must be 1 to 128 characters, not blank: for example the date of the rebuild ('2026-12-01')`);
    }
  }
  for (const [key, value] of Object.entries(options.inputs ?? {})) {
    if (typeof (value as unknown) !== 'string') {
      throw new Error(`${where}: nameFromInputs.inputs["${key}"] ${JSON.stringify(value)} is a ${typeOf(value)}: give a string`);
    }
  }
}

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'list';
  return typeof v;
}
