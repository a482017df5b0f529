import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App, Chart } from 'cdk8s';
import { ArtifactFormat, ModelcarBuilder, ModelcarPipeline, PushTarget, RegistryCredentials } from '../../src';
import { IMAGE_COMMANDS, IMAGE_USERS } from '../../src/modelcar/image-inventory';
import { scriptCommands } from '../support/script-commands';

/** Every step of a pipeline against its image's inventory: the commands it calls that the image is not known to have. */
function missingCommands(docs: any[]): string[] {
  const missing: string[] = [];
  for (const t of docs.filter((d) => d.kind === 'Task')) {
    for (const s of t.spec.steps) {
      const inventory = IMAGE_COMMANDS[(s.image as string).split('@')[0]] ?? [];
      for (const cmd of scriptCommands(s.script)) if (!inventory.includes(cmd)) missing.push(`${t.metadata.name}/${s.name}: ${cmd}`);
    }
  }
  return missing;
}

describe('image inventory', () => {
  test('the buildah builder\'s steps call only what their images provide too', () => {
    const app = new App();
    const chart = new Chart(app, 'c');
    new ModelcarPipeline(chart, 'm', {
      builder: ModelcarBuilder.buildah(),
      artifactFormat: ArtifactFormat.OCI_ARCHIVE,
      pushTargets: [PushTarget.registry({ name: 'r', repository: 'registry.example/ns/m', credentials: RegistryCredentials.fromServiceAccount() })],
    });
    const docs = chart.toJson();
    expect(docs.filter((d) => d.kind === 'Task').flatMap((t) => t.spec.steps.map((s: any) => s.name))).toContain('build');
    expect(missingCommands(docs)).toEqual([]);
  });

  test('every image in the inventory has a known user (pipelines-scc runs each container as its image\'s USER)', () => {
    expect(Object.keys(IMAGE_USERS).sort()).toEqual(Object.keys(IMAGE_COMMANDS).sort());
    expect(IMAGE_USERS['registry.access.redhat.com/ubi9/python-312']).toEqual({ uid: 1001, gid: 0 });
  });

  test('the check can fail: a command outside the inventory is reported', () => {
    const docs = [{ kind: 'Task', metadata: { name: 't' }, spec: { steps: [{ name: 's', image: 'registry.access.redhat.com/ubi9/skopeo@sha256:x', script: '#!/bin/sh\n# find in a comment does not count\nls | awk "{ print }"\n' }] } }];
    expect(missingCommands(docs)).toEqual(['t/s: awk']);
  });
});

describe('the buildah step\'s mode check (plain shell, no find), run with /bin/sh', () => {
  const script = fs.readFileSync(path.join(__dirname, '../../src/modelcar/scripts/build-buildah.sh'), 'utf8');
  const fn = script.slice(script.indexOf('check_modes() {'), script.indexOf('check_modes "${MODEL_DIR}"'));
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'modes-'));
    fs.mkdirSync(path.join(dir, 'sub'));
    fs.writeFileSync(path.join(dir, 'sub', 'weights.safetensors'), 'x');
    fs.writeFileSync(path.join(dir, '.hidden'), 'x');
    fs.chmodSync(path.join(dir, 'sub'), 0o2775); // setgid, as on an fsGroup volume
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));
  const check = () => execFileSync('/bin/sh', ['-c', `set -eu\n${fn}\ncheck_modes "$1"`, 'sh', dir], { encoding: 'utf8', stdio: 'pipe' });

  test('passes a world-readable tree (setgid directories included)', () => {
    fs.chmodSync(path.join(dir, 'sub', 'weights.safetensors'), 0o644);
    fs.chmodSync(path.join(dir, '.hidden'), 0o444);
    expect(check()).toBe('');
  });

  test('fails on a file others cannot read, a hidden one included, naming it and its mode', () => {
    fs.chmodSync(path.join(dir, 'sub', 'weights.safetensors'), 0o644);
    fs.chmodSync(path.join(dir, '.hidden'), 0o640);
    expect(check).toThrow(/model file not readable by every uid .*\/\.hidden \(-rw-r-----\)/);
  });

  test('fails on a directory others cannot enter', () => {
    fs.chmodSync(path.join(dir, 'sub'), 0o2770);
    expect(check).toThrow(/model directory not readable by every uid .*\/sub \(drwxrws---\)/);
  });
});
