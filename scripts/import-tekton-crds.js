#!/usr/bin/env node
// Regenerates src/imports/tekton.dev.ts from the Tekton CRDs with `cdk8s import`.
//
// The CRDs serve v1beta1 and v1. We emit v1 only, so each CRD is reduced to its v1
// version before the import: the generated classes are then the v1 ones, and half the
// size. Run through `npx projen import`; never edit the output by hand.
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');
const yaml = require('js-yaml');

const root = path.resolve(__dirname, '..');
const crdDir = path.resolve(process.env.TEKTON_REFERENCE_DIR ?? path.join(root, '..', 'shared', 'tekton'), 'crds');
const files = ['300-task.yaml', '300-pipeline.yaml', '300-pipelinerun.yaml'];

const docs = files.map((file) => {
  const crd = yaml.load(fs.readFileSync(path.join(crdDir, file), 'utf8'));
  const v1 = crd.spec.versions.filter((v) => v.name === 'v1');
  if (v1.length !== 1) throw new Error(`${file}: expected one v1 version, found ${v1.length}`);
  crd.spec.versions = v1.map((v) => ({ ...v, storage: true }));
  return yaml.dump(crd, { noRefs: true, lineWidth: -1 });
});

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tekton-crds-'));
const input = path.join(tmp, 'tekton-v1-crds.yaml');
fs.writeFileSync(input, docs.join('---\n'));
execFileSync('cdk8s', ['import', input, '--output', path.join(root, 'src', 'imports'), '--language', 'typescript', '--class-prefix', 'Tekton'], {
  stdio: 'inherit', cwd: root,
});
fs.rmSync(tmp, { recursive: true, force: true });
