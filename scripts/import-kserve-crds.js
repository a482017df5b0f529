#!/usr/bin/env node
// Regenerates src/imports/serving.kserve.io.ts from KServe's InferenceService CRD (third-party/kserve/) with
// `cdk8s import`.
//
// The full CRD is 1 MB (a pod spec for each of predictor, explainer and transformer, and a container spec for
// every framework) and its import 2.9 MB of TypeScript. Only the predictor's fields that ModelcarInferenceService
// can set are kept for the import (about 100 KB); the tests still validate against the full, unreduced schema.
// Run through `npx projen import`; never edit the output by hand.
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');
const yaml = require('js-yaml');

const root = path.resolve(__dirname, '..');
const crdFile = path.join(root, 'third-party', 'kserve', 'serving.kserve.io_inferenceservices.yaml');
// The predictor's fields ModelcarInferenceService sets or may set later; the model is kept whole.
const PREDICTOR_FIELDS = ['model', 'minReplicas', 'maxReplicas', 'serviceAccountName', 'nodeSelector', 'tolerations',
  'timeout', 'containerConcurrency', 'scaleMetric', 'scaleTarget', 'annotations', 'labels', 'deploymentStrategy'];

const crd = yaml.load(fs.readFileSync(crdFile, 'utf8'));
const versions = crd.spec.versions.filter((v) => v.name === 'v1beta1');
if (versions.length !== 1) throw new Error(`${crdFile}: expected one v1beta1 version, found ${versions.length}`);
const schema = versions[0].schema.openAPIV3Schema;
const spec = schema.properties.spec;
const predictor = spec.properties.predictor;
for (const field of PREDICTOR_FIELDS) {
  if (!predictor.properties[field]) throw new Error(`${crdFile}: the predictor has no field ${field}`);
}
predictor.properties = Object.fromEntries(PREDICTOR_FIELDS.map((f) => [f, predictor.properties[f]]));
spec.properties = { predictor };
delete schema.properties.status;
crd.spec.versions = versions;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kserve-crds-'));
const input = path.join(tmp, 'kserve-inferenceservice-crd.yaml');
fs.writeFileSync(input, yaml.dump(crd, { noRefs: true, lineWidth: -1 }));
try {
  execFileSync('cdk8s', ['import', input, '--output', path.join(root, 'src', 'imports'), '--language', 'typescript', '--class-prefix', 'Kserve'], {
    stdio: 'inherit', cwd: root,
  });
} finally {
  fs.rmSync(tmp, { recursive: true, force: true });
}
