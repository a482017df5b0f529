/**
 * Validates synthesized KServe InferenceServices against the openAPIV3Schema of KServe's own CRD (v0.15.2, vendored
 * in third-party/kserve/ with its license), as the API server would with strict field validation: every object of
 * the schema that lists its properties and does not preserve unknown fields is closed (`additionalProperties:
 * false`), so a misspelt or misplaced field fails here, not by being pruned silently on the cluster.
 *
 * Usage in jest: `expectValidKserveManifests(Testing.synth(chart))`; objects of other groups pass untouched.
 */
import * as fs from 'fs';
import * as path from 'path';
import Ajv, { ValidateFunction } from 'ajv';
import * as yaml from 'js-yaml';

export const KSERVE_CRD = path.join(__dirname, '..', '..', 'third-party', 'kserve', 'serving.kserve.io_inferenceservices.yaml');

type Node = { [keyword: string]: any };

function close(node: Node): Node {
  if (Array.isArray(node)) return node.map(close) as any;
  if (typeof node !== 'object' || node === null) return node;
  const out: Node = {};
  for (const [k, v] of Object.entries(node)) {
    // Property names are data, not keywords: recurse into their schemas only.
    out[k] = k === 'properties' ? Object.fromEntries(Object.entries(v as Node).map(([p, s]) => [p, close(s as Node)])) : close(v as Node);
  }
  if (out.type === 'object' && out.properties && out.additionalProperties === undefined && !out['x-kubernetes-preserve-unknown-fields']) {
    out.additionalProperties = false;
  }
  return out;
}

let validator: ValidateFunction | undefined;

/** The validator of `serving.kserve.io/v1beta1` InferenceService (the CRD's only version), closed as above. */
export function inferenceServiceValidator(): ValidateFunction {
  if (validator) return validator;
  const crd = yaml.load(fs.readFileSync(KSERVE_CRD, 'utf8')) as Node;
  const versions = crd.spec.versions.filter((v: Node) => v.name === 'v1beta1');
  if (versions.length !== 1) throw new Error(`${KSERVE_CRD}: expected one v1beta1 version, found ${versions.length}`);
  const schema = close(versions[0].schema.openAPIV3Schema);
  // The API server checks apiVersion and kind itself, and requires a name.
  schema.required = [...new Set([...(schema.required ?? []), 'apiVersion', 'kind', 'metadata', 'spec'])];
  schema.properties.apiVersion = { type: 'string', enum: ['serving.kserve.io/v1beta1'] };
  schema.properties.kind = { type: 'string', enum: ['InferenceService'] };
  schema.properties.metadata = { type: 'object', required: ['name'], properties: { name: { type: 'string', pattern: '^[a-z]([-a-z0-9]*[a-z0-9])?$', maxLength: 63 } } };
  const ajv = new Ajv({ allErrors: true, strict: false, validateFormats: false });
  validator = ajv.compile(schema);
  return validator;
}

/** Errors of one manifest (`[]` when valid or not an InferenceService). */
export function validateKserveManifest(doc: any): string[] {
  if (typeof doc?.apiVersion !== 'string' || !doc.apiVersion.startsWith('serving.kserve.io/')) return [];
  if (doc.apiVersion !== 'serving.kserve.io/v1beta1' || doc.kind !== 'InferenceService') {
    return [`${doc.kind}/${doc.metadata?.name}: only serving.kserve.io/v1beta1 InferenceService is vendored (got ${doc.apiVersion} ${doc.kind})`];
  }
  const validate = inferenceServiceValidator();
  if (validate(doc)) return [];
  return (validate.errors ?? []).map((e) => `InferenceService/${doc.metadata?.name} ${e.instancePath || '/'}: ${e.message}`
    + (e.params && (e.params as any).additionalProperty ? ` (${(e.params as any).additionalProperty})` : ''));
}

/** Throws one Error listing every problem of every document (jest-friendly). */
export function expectValidKserveManifests(docs: any[]): void {
  const problems = docs.flatMap((d, i) => validateKserveManifest(d).map((e) => `  [doc ${i}] ${e}`));
  if (problems.length > 0) throw new Error(`${problems.length} KServe schema error(s):\n${problems.join('\n')}`);
}
