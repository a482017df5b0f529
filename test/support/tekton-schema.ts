/**
 * Validates synthesized manifests against the Tekton v1 CRD schemas (Tekton v1.15).
 *
 * The CRD schemas alone are too lenient to catch generator mistakes: every object is open
 * (unknown fields pass) and several parts are `x-kubernetes-preserve-unknown-fields`
 * (embedded taskSpec/pipelineSpec, param values, Task.spec.volumes, podTemplate.securityContext,
 * volumeClaimTemplate, metadata). The Tekton admission webhook is much stricter (it rejects
 * unknown fields and validates the embedded specs), so this module:
 *
 * 1. closes every structural object schema (`additionalProperties: false`),
 * 2. replaces the open parts with real schemas (the Task spec for embedded task specs, the
 *    Pipeline spec for embedded pipeline specs, hand-written ParamValue / ObjectMeta / Volume /
 *    PodSecurityContext / PVC-template schemas),
 * 3. adds a few webhook rules the CRD does not express (required names, DNS-1123 names,
 *    param default vs. declared type, a Task needs steps, a run needs a ref or a spec).
 *
 * Usage in jest: `expectValidTektonManifests(Testing.synth(chart))`.
 */
import * as fs from 'fs';
import * as path from 'path';
import Ajv, { ErrorObject, SchemaValidateFunction, ValidateFunction } from 'ajv';
import * as yaml from 'js-yaml';

/** A JSON-schema node as we manipulate it (parsed from YAML, so loosely typed). */
type SchemaNode = { [keyword: string]: unknown };

/** The tekton.dev/v1 kinds with a CRD in the reference data. */
export const TEKTON_V1_KINDS = ['Task', 'Pipeline', 'TaskRun', 'PipelineRun'] as const;
export type TektonV1Kind = typeof TEKTON_V1_KINDS[number];

const CRD_FILES: Record<TektonV1Kind, string> = {
  Task: '300-task.yaml',
  Pipeline: '300-pipeline.yaml',
  TaskRun: '300-taskrun.yaml',
  PipelineRun: '300-pipelinerun.yaml',
};

/**
 * The Tekton reference data (CRDs + examples), shared by all projects of the workspace and
 * kept outside this repository. `TEKTON_REFERENCE_DIR` overrides the location (e.g. in CI).
 */
export function tektonReferenceDir(): string {
  // test/support -> project root -> its parent, which holds shared/tekton.
  const dir = process.env.TEKTON_REFERENCE_DIR ?? path.resolve(__dirname, '..', '..', '..', 'shared', 'tekton');
  if (!fs.existsSync(path.join(dir, 'crds'))) {
    throw new Error(
      `Tekton reference data not found at ${dir} (expected ${path.join(dir, 'crds')}); `
      + 'set TEKTON_REFERENCE_DIR to the directory holding crds/ and examples-v1/',
    );
  }
  return dir;
}

// ---------------------------------------------------------------------------------------------
// Small schema helpers
// ---------------------------------------------------------------------------------------------

function isObject(value: unknown): value is SchemaNode {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function clone<T>(value: T): T {
  return structuredClone(value);
}

/** `node.properties[name]`, failing loudly when the CRD layout is not what we expect. */
function prop(node: unknown, ...names: string[]): SchemaNode {
  let current = node;
  const walked: string[] = [];
  for (const name of names) {
    walked.push(name);
    if (name === '[]') {
      current = isObject(current) ? current.items : undefined;
    } else {
      const props = isObject(current) ? current.properties : undefined;
      current = isObject(props) ? props[name] : undefined;
    }
    if (!isObject(current)) {
      throw new Error(`unexpected CRD schema layout: no ${walked.join('.')}`);
    }
  }
  return current as SchemaNode;
}

/** Replaces `node.properties[name]` (which must exist) by `replacement`. */
function setProp(node: SchemaNode, name: string, replacement: SchemaNode): void {
  prop(node, name); // asserts existence
  (node.properties as SchemaNode)[name] = replacement;
}

const DEFS_ID = 'https://tekton-v1-defs.invalid/defs.json';
function ref(def: string): SchemaNode {
  return { $ref: `${DEFS_ID}#/$defs/${def}` };
}

// Kubernetes name rules. Tekton's webhook additionally limits resource names to 63 characters
// and forbids dots (ValidateObjectMetadata), so a Tekton name is effectively a DNS-1123 label.
const DNS1123_LABEL = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
// generateName is a prefix: it may end with '-'. The API server appends 5 random characters and
// truncates the prefix to 58 characters to stay within 63; we reject longer prefixes rather than
// let our output be silently truncated.
const GENERATE_NAME = '^[a-z0-9][-a-z0-9]*$';
// Label/annotation keys: optional DNS-subdomain prefix and '/', then a 63-char name.
const QUALIFIED_NAME = '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?'
  + '[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$';
const LABEL_VALUE = '^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$';

const PRESERVE_UNKNOWN = 'x-kubernetes-preserve-unknown-fields';
/** An object deliberately left open (see assertNothingLeftOpen for the list). */
const openObject = (): SchemaNode => ({ type: 'object', [PRESERVE_UNKNOWN]: true });
const dnsLabel = (): SchemaNode => ({ type: 'string', maxLength: 63, pattern: DNS1123_LABEL });
const stringMap = (): SchemaNode => ({ type: 'object', additionalProperties: { type: 'string' } });

function objectMetaSchema(): SchemaNode {
  return {
    type: 'object',
    properties: {
      name: dnsLabel(),
      generateName: { type: 'string', maxLength: 58, pattern: GENERATE_NAME },
      namespace: dnsLabel(),
      labels: {
        type: 'object',
        propertyNames: { maxLength: 317, pattern: QUALIFIED_NAME },
        additionalProperties: { type: 'string', maxLength: 63, pattern: LABEL_VALUE },
      },
      annotations: {
        type: 'object',
        propertyNames: { maxLength: 317, pattern: QUALIFIED_NAME },
        additionalProperties: { type: 'string' },
      },
      // The rest of ObjectMeta is server-populated; allowed (so round-tripped objects validate)
      // but only with the right shapes.
      uid: { type: 'string' },
      resourceVersion: { type: 'string' },
      generation: { type: 'integer' },
      creationTimestamp: { type: ['string', 'null'] },
      deletionTimestamp: { type: 'string' },
      deletionGracePeriodSeconds: { type: 'integer' },
      finalizers: { type: 'array', items: { type: 'string' } },
      ownerReferences: { type: 'array', items: openObject() },
      managedFields: { type: 'array', items: openObject() },
      selfLink: { type: 'string' },
    },
  };
}

/**
 * Tekton's ParamValue (also used for result values): a string, an array of strings or a map of
 * strings. Tekton's own unmarshaller stringifies anything else (a number, a nested array), which
 * is never what a generator meant, so we reject it.
 */
function paramValueSchema(): SchemaNode {
  return {
    anyOf: [
      { type: 'string' },
      { type: 'array', items: { type: 'string' } },
      { type: 'object', additionalProperties: { type: 'string' } },
    ],
  };
}

/** The Kubernetes PodSecurityContext (core/v1), which the CRD leaves open. */
function podSecurityContextSchema(containerSecurityContext: SchemaNode): SchemaNode {
  return {
    type: 'object',
    properties: {
      appArmorProfile: clone(prop(containerSecurityContext, 'appArmorProfile')),
      fsGroup: { type: 'integer', format: 'int64' },
      fsGroupChangePolicy: { type: 'string', enum: ['OnRootMismatch', 'Always'] },
      runAsGroup: { type: 'integer', format: 'int64' },
      runAsNonRoot: { type: 'boolean' },
      runAsUser: { type: 'integer', format: 'int64' },
      seLinuxChangePolicy: { type: 'string' },
      seLinuxOptions: clone(prop(containerSecurityContext, 'seLinuxOptions')),
      seccompProfile: clone(prop(containerSecurityContext, 'seccompProfile')),
      supplementalGroups: { type: 'array', items: { type: 'integer', format: 'int64' } },
      supplementalGroupsPolicy: { type: 'string', enum: ['Merge', 'Strict'] },
      sysctls: {
        type: 'array',
        items: {
          type: 'object',
          required: ['name', 'value'],
          properties: { name: { type: 'string' }, value: { type: 'string' } },
        },
      },
      windowsOptions: clone(prop(containerSecurityContext, 'windowsOptions')),
    },
  };
}

// Every volume source of core/v1 Volume. Those that a TaskRun workspace binding also offers are
// validated with the CRD's schema for them; the others are only checked to be objects.
const VOLUME_SOURCES = [
  'awsElasticBlockStore', 'azureDisk', 'azureFile', 'cephfs', 'cinder', 'configMap', 'csi',
  'downwardAPI', 'emptyDir', 'ephemeral', 'fc', 'flexVolume', 'flocker', 'gcePersistentDisk',
  'gitRepo', 'glusterfs', 'hostPath', 'image', 'iscsi', 'nfs', 'persistentVolumeClaim',
  'photonPersistentDisk', 'portworxVolume', 'projected', 'quobyte', 'rbd', 'scaleIO', 'secret',
  'storageos', 'vsphereVolume',
];

/**
 * core/v1 Volume list: a name plus at most one source (Kubernetes defaults a volume without a
 * source to an emptyDir, so zero is fine).
 */
function volumesSchema(workspaceBinding: SchemaNode): SchemaNode {
  const properties: SchemaNode = { name: dnsLabel() };
  for (const source of VOLUME_SOURCES) {
    const known = (workspaceBinding.properties as SchemaNode)[source];
    properties[source] = isObject(known) ? clone(known) : openObject();
  }
  return {
    type: 'array',
    items: { type: 'object', required: ['name'], properties, maxProperties: 2 },
  };
}

/** A PersistentVolumeClaim template (core/v1), which the CRD leaves open. */
function pvcTemplateSchema(resourceRequirements: SchemaNode): SchemaNode {
  const quantities = clone(prop(resourceRequirements, 'requests'));
  return {
    type: 'object',
    required: ['spec'],
    properties: {
      apiVersion: { type: 'string' },
      kind: { type: 'string', enum: ['PersistentVolumeClaim'] },
      metadata: ref('objectMeta'),
      spec: {
        type: 'object',
        properties: {
          accessModes: {
            type: 'array',
            items: { type: 'string', enum: ['ReadWriteOnce', 'ReadOnlyMany', 'ReadWriteMany', 'ReadWriteOncePod'] },
          },
          dataSource: openObject(),
          dataSourceRef: openObject(),
          resources: { type: 'object', properties: { limits: quantities, requests: clone(quantities) } },
          selector: openObject(),
          storageClassName: { type: 'string' },
          volumeAttributesClassName: { type: 'string' },
          volumeMode: { type: 'string', enum: ['Filesystem', 'Block'] },
          volumeName: { type: 'string' },
        },
      },
      status: openObject(),
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Structural schema walk: close objects, translate Kubernetes extensions
// ---------------------------------------------------------------------------------------------

/** Keywords whose value is a single subschema. */
const SUBSCHEMA_KEYWORDS = ['additionalProperties', 'items', 'not', 'if', 'then', 'else', 'propertyNames'];
/** Keywords whose value is an array of subschemas. */
const SUBSCHEMA_ARRAY_KEYWORDS = ['allOf', 'anyOf', 'oneOf'];
/** Keywords whose value is a map of name -> subschema (the map keys are data, not keywords). */
const SUBSCHEMA_MAP_KEYWORDS = ['properties', '$defs'];

/**
 * Visits every schema node exactly where JSON Schema puts subschemas. This matters: ParamSpec
 * has a real *field* named `properties`, so `properties.properties` is a schema (the field's
 * schema), not a keyword; a naive "find every key called properties" walk would corrupt it.
 */
function walkSchema(node: SchemaNode, visit: (schema: SchemaNode, pointer: string) => void, pointer = ''): void {
  visit(node, pointer);
  for (const keyword of SUBSCHEMA_KEYWORDS) {
    const sub = node[keyword];
    if (isObject(sub)) walkSchema(sub, visit, `${pointer}/${keyword}`);
  }
  for (const keyword of SUBSCHEMA_ARRAY_KEYWORDS) {
    const subs = node[keyword];
    if (Array.isArray(subs)) subs.forEach((sub, i) => isObject(sub) && walkSchema(sub, visit, `${pointer}/${keyword}/${i}`));
  }
  for (const keyword of SUBSCHEMA_MAP_KEYWORDS) {
    const map = node[keyword];
    if (isObject(map)) {
      for (const [name, sub] of Object.entries(map)) {
        if (isObject(sub)) walkSchema(sub, visit, `${pointer}/${keyword}/${name}`);
      }
    }
  }
}

/**
 * Prepares a CRD (or hand-written) schema for ajv:
 * - closes every `type: object` node that lists `properties` and does not say
 *   `x-kubernetes-preserve-unknown-fields: true` (only typed nodes: the hand-written
 *   `if`/`then` fragments list `properties` without a type and must stay open);
 * - `x-kubernetes-int-or-string` becomes `anyOf: [integer, string]` when not already spelt out;
 * - `x-kubernetes-list-type: set` becomes `uniqueItems`; `map` keeps its keys in the
 *   `listMapKeys` keyword registered below (the API server rejects duplicate keys);
 * - `nullable` (OpenAPI) becomes a `null` type; every other `x-kubernetes-*` is dropped;
 * - descriptions are dropped (they are most of the CRD's bytes and ajv keeps schemas alive).
 */
function normalizeSchema(root: SchemaNode): void {
  walkSchema(root, (node) => {
    const preserveUnknown = node[PRESERVE_UNKNOWN] === true;
    if (node.type === 'object' && isObject(node.properties) && !preserveUnknown && node.additionalProperties === undefined) {
      node.additionalProperties = false;
    }
    if (node['x-kubernetes-int-or-string'] === true && node.anyOf === undefined) {
      node.anyOf = [{ type: 'integer' }, { type: 'string' }];
    }
    if (node['x-kubernetes-list-type'] === 'set') node.uniqueItems = true;
    if (node['x-kubernetes-list-type'] === 'map' && Array.isArray(node['x-kubernetes-list-map-keys'])) {
      node.listMapKeys = node['x-kubernetes-list-map-keys'];
    }
    if (node.nullable === true && typeof node.type === 'string') node.type = [node.type, 'null'];
    delete node.nullable;
    delete node.description;
    for (const keyword of Object.keys(node)) {
      if (keyword.startsWith('x-kubernetes-')) delete node[keyword];
    }
  });
}

/** All object-schema nodes (by walking only the `properties` maps) whose property is `name`. */
function replacePropertySchemas(root: SchemaNode, name: string, when: (s: SchemaNode) => boolean, by: () => SchemaNode): number {
  let replaced = 0;
  walkSchema(root, (node) => {
    const props = node.properties;
    if (isObject(props) && isObject(props[name]) && when(props[name] as SchemaNode)) {
      props[name] = by();
      replaced++;
    }
  });
  return replaced;
}

const isPreserveUnknownOnly = (s: SchemaNode): boolean =>
  s[PRESERVE_UNKNOWN] === true && s.type === undefined && s.properties === undefined;

// ---------------------------------------------------------------------------------------------
// Assembling the schemas
// ---------------------------------------------------------------------------------------------

function loadV1Schema(referenceDir: string, kind: TektonV1Kind): SchemaNode {
  const file = path.join(referenceDir, 'crds', CRD_FILES[kind]);
  const crd = yaml.load(fs.readFileSync(file, 'utf8'));
  const versions = isObject(crd) && isObject(crd.spec) ? crd.spec.versions : undefined;
  const v1 = Array.isArray(versions) ? versions.find((v) => isObject(v) && v.name === 'v1') : undefined;
  const schema = isObject(v1) && isObject(v1.schema) ? v1.schema.openAPIV3Schema : undefined;
  if (!isObject(schema)) throw new Error(`${file}: no spec.versions[name=v1].schema.openAPIV3Schema`);
  return schema;
}

/** Webhook rules the CRD does not state, added to the pipeline task schema. */
function tightenPipelineTask(pipelineTask: SchemaNode): void {
  // Tekton requires a DNS-1123 label name and exactly one of taskRef/taskSpec/pipelineRef/pipelineSpec
  // (we check "at least one"; "more than one" is rare and the webhook's message is clear).
  pipelineTask.required = ['name'];
  setProp(pipelineTask, 'name', dnsLabel());
  pipelineTask.anyOf = ['taskRef', 'taskSpec', 'pipelineRef', 'pipelineSpec'].map((r) => ({ required: [r] }));
}

/** Webhook rules for the Task spec (shared by Task, TaskRun.spec.taskSpec and embedded specs). */
function tightenTaskSpec(taskSpec: SchemaNode): void {
  for (const list of ['steps', 'sidecars']) {
    const container = prop(taskSpec, list, '[]');
    // Step and sidecar names are DNS-1123 labels (the CRD only says "string"). The CRD lists
    // `name` as required only because the Go field lacks omitempty (Tekton itself accepts unnamed
    // steps); we keep it required anyway: this project always names its steps.
    setProp(container, 'name', dnsLabel());
    // Same Go artefact for a step's/sidecar's workspace usage, but here omitting `mountPath` is
    // documented Tekton usage (the workspace is mounted at its declared path), so we drop it.
    prop(container, 'workspaces', '[]').required = ['name'];
  }
  for (const list of ['params']) {
    const paramSpec = prop(taskSpec, list, '[]');
    tightenParamSpec(paramSpec);
  }
}

/** ParamSpec: known type names, and a default that matches the declared type. */
function tightenParamSpec(paramSpec: SchemaNode): void {
  prop(paramSpec, 'properties'); // the *field* named properties (object params), see walkSchema
  setProp(paramSpec, 'type', { type: 'string', enum: ['string', 'array', 'object'] });
  paramSpec.allOf = [
    ['string', 'string'],
    ['array', 'array'],
    ['object', 'object'],
  ].map(([declared, jsonType]) => ({
    if: { required: ['type', 'default'], properties: { type: { const: declared } } },
    then: { properties: { default: { type: jsonType } } },
  }));
}

interface AssembledSchemas {
  readonly defs: SchemaNode;
  readonly roots: Record<TektonV1Kind, SchemaNode>;
}

function assembleSchemas(referenceDir: string): AssembledSchemas {
  const task = loadV1Schema(referenceDir, 'Task');
  const pipeline = loadV1Schema(referenceDir, 'Pipeline');
  const taskRun = loadV1Schema(referenceDir, 'TaskRun');
  const pipelineRun = loadV1Schema(referenceDir, 'PipelineRun');

  // Shared building blocks taken from the CRDs themselves.
  const stepSchema = prop(task, 'spec', 'steps', '[]');
  const containerSecurityContext = prop(stepSchema, 'securityContext');
  const resourceRequirements = prop(stepSchema, 'computeResources');
  const workspaceBinding = prop(taskRun, 'spec', 'workspaces', '[]');

  // Task spec: the CRD's, with Task.spec.volumes filled in.
  const taskSpec = clone(prop(task, 'spec'));
  setProp(taskSpec, 'volumes', ref('volumes'));
  tightenTaskSpec(taskSpec);
  // A Task must have steps (webhook: "expected at least one, got none"); only an embedded custom
  // task (below) may omit them.
  prop(taskSpec, 'steps').minItems = 1;
  const taskSpecWithSteps: SchemaNode = { allOf: [ref('taskSpec')], required: ['steps'] };

  // Embedded task spec (Pipeline tasks/finally): TaskSpec fields, plus `metadata`
  // (labels/annotations for the TaskRun) and apiVersion/kind/spec for custom tasks.
  const embeddedTask = clone(taskSpec);
  Object.assign(embeddedTask.properties as SchemaNode, {
    apiVersion: { type: 'string' },
    kind: { type: 'string' },
    spec: openObject(),
    metadata: { type: 'object', properties: { labels: stringMap(), annotations: stringMap() } },
  });
  // A custom task (apiVersion + kind) has no steps; a regular one must have them.
  embeddedTask.anyOf = [{ required: ['steps'] }, { required: ['apiVersion', 'kind'] }];

  // Pipeline spec: the CRD's, with embedded task/pipeline specs filled in (recursively by $ref).
  const pipelineSpec = clone(prop(pipeline, 'spec'));
  for (const list of ['tasks', 'finally']) {
    const pipelineTask = prop(pipelineSpec, list, '[]');
    setProp(pipelineTask, 'taskSpec', ref('embeddedTask'));
    setProp(pipelineTask, 'pipelineSpec', ref('pipelineSpec'));
    tightenPipelineTask(pipelineTask);
  }
  tightenParamSpec(prop(pipelineSpec, 'params', '[]'));

  // Pod template (TaskRun.spec.podTemplate, PipelineRun taskRunTemplate/taskRunSpecs).
  const fillPodTemplate = (podTemplate: SchemaNode): void => {
    setProp(podTemplate, 'securityContext', ref('podSecurityContext'));
    setProp(podTemplate, 'volumes', ref('volumes'));
  };

  const defs: SchemaNode = {
    objectMeta: objectMetaSchema(),
    paramValue: paramValueSchema(),
    podSecurityContext: podSecurityContextSchema(containerSecurityContext),
    volumes: volumesSchema(workspaceBinding),
    pvcTemplate: pvcTemplateSchema(resourceRequirements),
    taskSpec,
    embeddedTask,
    pipelineSpec,
  };

  // Roots: each CRD's top level with `metadata` and its open parts filled in.
  const roots: Record<TektonV1Kind, SchemaNode> = { Task: task, Pipeline: pipeline, TaskRun: taskRun, PipelineRun: pipelineRun };
  setProp(task, 'spec', taskSpecWithSteps);
  setProp(pipeline, 'spec', { allOf: [ref('pipelineSpec')], required: ['tasks'] });
  prop(pipelineSpec, 'tasks').minItems = 1;

  const taskRunSpec = prop(taskRun, 'spec');
  setProp(taskRunSpec, 'taskSpec', taskSpecWithSteps);
  fillPodTemplate(prop(taskRunSpec, 'podTemplate'));
  setProp(prop(taskRunSpec, 'workspaces', '[]'), 'volumeClaimTemplate', ref('pvcTemplate'));
  taskRunSpec.anyOf = [{ required: ['taskRef'] }, { required: ['taskSpec'] }];

  const pipelineRunSpec = prop(pipelineRun, 'spec');
  setProp(pipelineRunSpec, 'pipelineSpec', ref('pipelineSpec'));
  fillPodTemplate(prop(pipelineRunSpec, 'taskRunTemplate', 'podTemplate'));
  fillPodTemplate(prop(pipelineRunSpec, 'taskRunSpecs', '[]', 'podTemplate'));
  setProp(prop(pipelineRunSpec, 'workspaces', '[]'), 'volumeClaimTemplate', ref('pvcTemplate'));
  pipelineRunSpec.anyOf = [{ required: ['pipelineRef'] }, { required: ['pipelineSpec'] }];

  for (const [kind, root] of Object.entries(roots)) {
    setProp(root, 'metadata', ref('objectMeta'));
    setProp(root, 'apiVersion', { type: 'string', const: 'tekton.dev/v1' });
    setProp(root, 'kind', { type: 'string', const: kind });
    root.required = ['apiVersion', 'kind', 'metadata', 'spec'];
    // Something must name the object (generateName is the usual choice for runs).
    root.allOf = [{ properties: { metadata: { anyOf: [{ required: ['name'] }, { required: ['generateName'] }] } } }];
  }

  // Param values, param defaults and result values are Tekton ParamValues wherever they appear
  // (params, matrix params, ref params, step params, results, also under status).
  for (const schema of [...Object.values(roots), { $defs: defs }]) {
    for (const field of ['value', 'default']) {
      replacePropertySchemas(schema, field, isPreserveUnknownOnly, () => ref('paramValue'));
    }
  }

  const defsSchema: SchemaNode = { $id: DEFS_ID, $defs: defs };
  normalizeSchema(defsSchema);
  for (const root of Object.values(roots)) normalizeSchema(root);
  assertNothingLeftOpen(defsSchema, roots);
  return { defs: defsSchema, roots };
}

/**
 * Guards the assembly: after filling in, the only open (preserve-unknown) parts left must be the
 * ones we deliberately keep open. A Tekton upgrade that opens something new fails here loudly.
 */
function assertNothingLeftOpen(defs: SchemaNode, roots: Record<TektonV1Kind, SchemaNode>): void {
  // Deliberately open: custom-task specs, affinity (huge k8s type, not generated by us), exotic
  // volume sources, PVC selectors/data sources, ObjectMeta bookkeeping, and run status.
  const allowed = /\/(spec|affinity|dataSource|dataSourceRef|selector|status|ownerReferences\/items|managedFields\/items)$|\/properties\/status\/|\/properties\/(awsElasticBlockStore|azureDisk|azureFile|cephfs|cinder|downwardAPI|ephemeral|fc|flexVolume|flocker|gcePersistentDisk|gitRepo|glusterfs|hostPath|image|iscsi|nfs|photonPersistentDisk|portworxVolume|quobyte|rbd|scaleIO|storageos|vsphereVolume)$/;
  const open: string[] = [];
  const check = (name: string, schema: SchemaNode): void => walkSchema(schema, (node, pointer) => {
    // if/then/else fragments only add constraints on top of a closed node.
    if (/\/(if|then|else)\//.test(pointer)) return;
    if (node.type === 'object' && node.additionalProperties === undefined && node.properties === undefined && !allowed.test(pointer)) {
      open.push(`${name}${pointer}`);
    }
    if (node.type === undefined && node.$ref === undefined && Object.keys(node).length === 0 && !allowed.test(pointer)) {
      open.push(`${name}${pointer}`);
    }
  });
  check('defs', defs);
  for (const [kind, root] of Object.entries(roots)) check(kind, root);
  if (open.length > 0) {
    throw new Error(`tekton-schema: unexpected open schema nodes (extend the fill-ins or the allow-list):\n  ${open.join('\n  ')}`);
  }
}

// ---------------------------------------------------------------------------------------------
// ajv
// ---------------------------------------------------------------------------------------------

const INT32 = { min: -(2 ** 31), max: 2 ** 31 - 1 };
// RFC 3339 date-time, as Kubernetes metav1.Time serialises it.
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** `x-kubernetes-list-type: map`: the key tuple of every item must be unique. */
const listMapKeys: SchemaValidateFunction = (keys: string[], data: unknown, _parent, dataCxt): boolean => {
  if (!Array.isArray(data)) return true;
  const seen = new Set<string>();
  for (const item of data) {
    if (!isObject(item)) continue;
    const tuple = JSON.stringify(keys.map((k) => item[k] ?? null));
    if (seen.has(tuple)) {
      listMapKeys.errors = [{
        keyword: 'listMapKeys',
        instancePath: dataCxt?.instancePath ?? '',
        params: { keys },
        message: `must not contain two items with the same ${keys.join('+')} (${tuple})`,
      }];
      return false;
    }
    seen.add(tuple);
  }
  return true;
};

let compiled: Record<TektonV1Kind, ValidateFunction> | undefined;

/** Compiles the four validators once per process (jest: once per test file). */
function validators(): Record<TektonV1Kind, ValidateFunction> {
  if (compiled) return compiled;
  const { defs, roots } = assembleSchemas(tektonReferenceDir());
  const ajv = new Ajv({
    allErrors: true,
    // strictSchema stays on so an unhandled (e.g. new x-kubernetes-*) keyword fails compilation
    // instead of being silently ignored. The type/required strictness checks are about schema
    // style and do not fit CRD schemas (e.g. `required` in an anyOf branch), so they are off.
    strictSchema: true,
    strictTypes: false,
    strictTuples: false,
    strictRequired: false,
  });
  ajv.addFormat('int32', { type: 'number', validate: (n: number) => Number.isInteger(n) && n >= INT32.min && n <= INT32.max });
  ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isInteger(n) });
  ajv.addFormat('date-time', DATE_TIME);
  ajv.addFormat('byte', BASE64);
  ajv.addKeyword({ keyword: 'listMapKeys', type: 'array', schemaType: 'array', errors: true, validate: listMapKeys });
  ajv.addSchema(defs);
  const result: Partial<Record<TektonV1Kind, ValidateFunction>> = {};
  for (const kind of TEKTON_V1_KINDS) result[kind] = ajv.compile(roots[kind]);
  compiled = result as Record<TektonV1Kind, ValidateFunction>;
  return compiled;
}

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

function docLabel(doc: SchemaNode): string {
  const meta = isObject(doc.metadata) ? doc.metadata : {};
  const name = typeof meta.name === 'string' ? meta.name
    : typeof meta.generateName === 'string' ? `${meta.generateName}*` : '<unnamed>';
  return `${typeof doc.kind === 'string' ? doc.kind : '<no kind>'}/${name}`;
}

function describeError(error: ErrorObject): string {
  let detail = error.message ?? error.keyword;
  if (error.keyword === 'additionalProperties') {
    detail = `unknown field "${String(error.params.additionalProperty)}"`;
  } else if (error.keyword === 'enum') {
    detail += `: ${JSON.stringify(error.params.allowedValues)}`;
  } else if (error.keyword === 'const') {
    detail += `: ${JSON.stringify(error.params.allowedValue)}`;
  }
  return detail;
}

/**
 * Turns ajv errors into `/json/pointer: message` lines. ajv reports an anyOf failure as the
 * anyOf error plus one error per failed branch; those are folded into a single line
 * ("must match one of: must be string | must be array | ...") so one mistake reads as one error.
 */
function formatErrors(errors: ErrorObject[]): string[] {
  const folded = new Set<ErrorObject>();
  const lines: string[] = [];
  const pointer = (p: string): string => (p === '' ? '/' : p);
  for (const error of errors) {
    if (error.keyword !== 'anyOf') continue;
    const branchPrefix = `${error.schemaPath}/`;
    const branches = errors.filter((e) => e.schemaPath.startsWith(branchPrefix));
    branches.forEach((e) => folded.add(e));
    const alternatives = branches.map((e) => {
      const below = e.instancePath.slice(error.instancePath.length);
      return below === '' ? describeError(e) : `${below}: ${describeError(e)}`;
    });
    lines.push(`${pointer(error.instancePath)}: must match one of: ${[...new Set(alternatives)].join(' | ')}`);
    folded.add(error);
  }
  for (const error of errors) {
    if (!folded.has(error)) lines.push(`${pointer(error.instancePath)}: ${describeError(error)}`);
  }
  // allErrors can report the same failure more than once (e.g. through shared $refs).
  return [...new Set(lines)];
}

/**
 * Validates one manifest. Returns [] when valid or not a Tekton object at all (Kubernetes core
 * objects, kustomizations, ...); otherwise human-readable errors `Kind/name /json/pointer: message`.
 */
export function validateTektonManifest(doc: any): string[] {
  if (!isObject(doc)) return [];
  const apiVersion = doc.apiVersion;
  if (typeof apiVersion !== 'string' || !apiVersion.startsWith('tekton.dev/')) return [];
  const label = docLabel(doc);
  if (apiVersion !== 'tekton.dev/v1') {
    return [`${label}: apiVersion ${apiVersion} is not allowed; emit tekton.dev/v1 only`];
  }
  const kind = doc.kind;
  if (!TEKTON_V1_KINDS.includes(kind as TektonV1Kind)) {
    return [`${label}: tekton.dev/v1 kind ${JSON.stringify(kind)} is not one of ${TEKTON_V1_KINDS.join(', ')}`];
  }
  const validate = validators()[kind as TektonV1Kind];
  if (validate(doc)) return [];
  return formatErrors(validate.errors ?? []).map((m) => `${label} ${m}`);
}

/** Throws one Error listing every problem of every document (jest-friendly). */
export function expectValidTektonManifests(docs: any[]): void {
  const problems = docs.flatMap((doc, i) => validateTektonManifest(doc).map((e) => `  [doc ${i}] ${e}`));
  if (problems.length > 0) {
    throw new Error(`${problems.length} Tekton schema error(s):\n${problems.join('\n')}`);
  }
}
