import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { GitOpsLayout } from '../../src';
import { buildDefaultApp } from '../../src/app/main';
import { expectShellcheckClean } from '../support/shellcheck';
import { expectValidTektonManifests } from '../support/tekton-schema';

/**
 * The main job: the default app reproduces the team's deployment with every fix of the
 * root-cause analysis. One snapshot of everything it writes, plus one assertion for
 * each numbered point of the modelcar issue.
 */
describe('default app', () => {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'modelcar-dist-'));
  const files = GitOpsLayout.write(buildDefaultApp(), { outdir, namespace: 'private-ai-demo' });
  const read = (f: string) => fs.readFileSync(path.join(outdir, f), 'utf8');
  const docs = buildDefaultApp().charts.flatMap((c) => c.toJson());
  const task = (name: string) => docs.find((d) => d.kind === 'Task' && d.metadata.name === name);
  const pipeline = docs.find((d) => d.kind === 'Pipeline');
  const runs = docs.filter((d) => d.kind === 'PipelineRun');
  const tasks = docs.filter((d) => d.kind === 'Task');
  const steps = tasks.flatMap((t) => t.spec.steps.map((s: any) => ({ task: t.metadata.name, ...s })));
  const env = (step: any, name: string) => step.env?.find((e: any) => e.name === name);
  afterAll(() => fs.rmSync(outdir, { recursive: true, force: true }));

  test('writes the GitOps layout, which matches the snapshot', () => {
    expect(files).toEqual([
      '01-tasks/kustomization.yaml',
      '01-tasks/task-modelcar-pipeline-build-image.yaml',
      '01-tasks/task-modelcar-pipeline-download-model.yaml',
      '01-tasks/task-modelcar-pipeline-push-internal.yaml',
      '01-tasks/task-modelcar-pipeline-push-quay.yaml',
      '02-pipeline/kustomization.yaml',
      '02-pipeline/pipeline-modelcar-pipeline.yaml',
      '03-runs/kustomization.yaml',
      '03-runs/pipelinerun-mistral-small-24b-full.yaml',
      '03-runs/pipelinerun-mistral-small-24b-quantized.yaml',
    ]);
    expect(Object.fromEntries(files.map((f) => [f, read(f)]))).toMatchSnapshot();
    expect(read('03-runs/kustomization.yaml')).toContain('namespace: private-ai-demo');
  });

  test('every manifest passes the Tekton v1 schemas and every script passes shellcheck', () => {
    expectValidTektonManifests(docs);
    expectShellcheckClean(docs);
    expect(docs.every((d) => d.metadata.namespace === 'private-ai-demo')).toBe(true);
  });

  test('1. pushes are serialized: build -> internal -> quay', () => {
    const byName = Object.fromEntries(pipeline.spec.tasks.map((t: any) => [t.name, t]));
    expect(byName['push-internal'].runAfter).toEqual(['build-image']);
    expect(byName['push-quay'].runAfter).toEqual(['push-internal']);
  });

  test('2. every task opens with the debug preamble', () => {
    for (const t of tasks) {
      const first = t.spec.steps[0];
      expect(first.name).toBe('debug');
      for (const cmd of ['id', 'id -G', 'umask', 'ls -la', 'stat', 'df -h']) expect(first.script).toContain(cmd);
      expect(first.script).toContain('================ modelcar debug');
    }
  });

  test('3. the build validates the artifact (every blob, then skopeo) and every push inspects it again', () => {
    const verify = task('modelcar-pipeline-build-image').spec.steps.find((s: any) => s.name === 'verify');
    expect(verify.script).toContain('every size and sha256 as described');
    const publish = task('modelcar-pipeline-build-image').spec.steps.find((s: any) => s.name === 'publish');
    expect(publish.script).toMatch(/skopeo --tmpdir "\$\{TMPDIR\}" inspect "\$\{src\}"/);
    expect(publish.script).toContain('is not a valid image');
    for (const name of ['modelcar-pipeline-push-internal', 'modelcar-pipeline-push-quay']) {
      expect(task(name).spec.steps.find((s: any) => s.name === 'push').script).toContain('inspect "${src}"');
    }
  });

  test('4. the artifact is written under a temporary name, synced, then renamed', () => {
    const build = task('modelcar-pipeline-build-image').spec.steps;
    expect(env(build.find((s: any) => s.name === 'base'), 'ARTIFACT_TMP').value).toMatch(/\/\.image\.partial$/);
    expect(env(build.find((s: any) => s.name === 'layers'), 'LAYOUT').value).toMatch(/\/\.image\.partial$/);
    // The layout builder writes each blob and index.json under a temporary name, fsyncs, renames.
    const layers = build.find((s: any) => s.name === 'layers').script as string;
    expect(layers.indexOf('os.fsync(f.fileno())')).toBeLessThan(layers.indexOf('os.replace(tmp, self.path(digest))'));
    const publish = build.find((s: any) => s.name === 'publish').script as string;
    expect(publish.indexOf('sync')).toBeLessThan(publish.indexOf('mv -T "${ARTIFACT_TMP}" "${ARTIFACT_PATH}"'));
  });

  test('5. one identity: fsGroup on the run, no task sets a user or group, pushes check readability', () => {
    for (const run of runs) {
      expect(run.spec.taskRunTemplate.podTemplate.securityContext).toEqual({ fsGroup: 1000970000, fsGroupChangePolicy: 'OnRootMismatch' });
    }
    for (const t of tasks) {
      expect(t.spec.stepTemplate?.securityContext).toBeUndefined();
      for (const s of t.spec.steps) {
        expect(s.securityContext?.runAsUser).toBeUndefined();
        expect(s.securityContext?.runAsGroup).toBeUndefined();
      }
    }
    for (const name of ['modelcar-pipeline-push-internal', 'modelcar-pipeline-push-quay']) {
      const debug = task(name).spec.steps[0];
      expect(env(debug, 'REQUIRE_READABLE').value).toBe('true');
      expect(debug.script).toContain('Likely fix: run every task under the same fsGroup');
    }
    expect(task('modelcar-pipeline-download-model').spec.steps[1].script).toContain('os.umask(0o002)'); // the fetch writes group-writable files
  });

  test('6. no stale content: per-run path, fresh volume, digest handed from build to every push', () => {
    for (const s of steps) {
      for (const e of s.env ?? []) {
        if (/modelcar-runs/.test(e.value ?? '')) expect(e.value).toContain('/modelcar-runs/$(params.RUN_ID)');
      }
    }
    // Tekton substitutes $(context.pipelineRun.uid) only in the Pipeline: it hands it to every task as RUN_ID.
    for (const t of pipeline.spec.tasks) expect(t.params).toContainEqual({ name: 'RUN_ID', value: '$(context.pipelineRun.uid)' });
    for (const run of runs) expect(run.spec.workspaces[0].volumeClaimTemplate).toBeDefined();
    for (const t of pipeline.spec.tasks.filter((x: any) => x.name.startsWith('push-'))) {
      expect(t.params).toContainEqual({ name: 'IMAGE_DIGEST', value: '$(tasks.build-image.results.IMAGE_DIGEST)' });
    }
    const push = task('modelcar-pipeline-push-quay').spec.steps.find((s: any) => s.name === 'push').script as string;
    expect(push).toContain('refusing to push stale or foreign content');
    expect(push).toContain('--preserve-digests');
    expect(push).toContain('the registry serves ${remote}');
  });

  test('7. the artifact is an oci: layout directory by default', () => {
    for (const s of steps) {
      const format = env(s, 'ARTIFACT_FORMAT');
      if (format) expect(format.value).toBe('oci');
    }
  });

  test('8. pushes emit IMAGE_URL and IMAGE_DIGEST; the pipeline exposes each image by digest', () => {
    for (const name of ['modelcar-pipeline-push-internal', 'modelcar-pipeline-push-quay']) {
      expect(task(name).spec.results.map((r: any) => r.name)).toEqual(['IMAGE_URL', 'IMAGE_DIGEST', 'IMAGE_REF']);
    }
    expect(pipeline.spec.results.map((r: any) => r.name)).toEqual(expect.arrayContaining([
      'INTERNAL_IMAGE_URL', 'INTERNAL_IMAGE_DIGEST', 'INTERNAL_IMAGE_REF', 'QUAY_IMAGE_URL', 'QUAY_IMAGE_DIGEST', 'QUAY_IMAGE_REF',
    ]));
  });

  test('9. download: pinned image without pip, token from an optional secret, SHA256SUMS, size and revision results', () => {
    const download = task('modelcar-pipeline-download-model');
    const fetch = download.spec.steps.find((s: any) => s.name === 'fetch');
    expect(fetch.image).toMatch(/@sha256:[a-f0-9]{64}$/);
    expect(fetch.script).not.toMatch(/pip install/);
    expect(env(fetch, 'HF_TOKEN').valueFrom).toEqual({ secretKeyRef: { name: 'huggingface-token', key: 'token', optional: true } });
    // The fetch writes SHA256SUMS from the digests it checked (no second pass over the model), beside the model
    // directory where no repo file can collide with it; the build reads the same path.
    expect(download.spec.steps.map((s: any) => s.name)).toEqual(['debug', 'fetch']);
    const sums = '$(workspaces.source.path)/modelcar-runs/$(params.RUN_ID)/SHA256SUMS';
    expect(env(fetch, 'SUMS_FILE').value).toBe(sums);
    expect(env(fetch, 'STATE_DIR').value).toBe('$(workspaces.source.path)/modelcar-runs/$(params.RUN_ID)/.download');
    expect(env(fetch, 'HF_CONNECTIONS').value).toBe('8');
    expect(env(fetch, 'HF_DEADLINE_SECONDS').value).toBe('3420'); // 1 h less 5 %: the fetch ends before Tekton stops it
    expect(env(fetch, 'MODEL_SIZE_FILE').value).toBe('$(results.MODEL_SIZE.path)');
    expect(download.spec.results.map((r: any) => r.name)).toEqual(['MODEL_SIZE', 'MODEL_RESOLVED_REVISION']);
    const layers = task('modelcar-pipeline-build-image').spec.steps.find((s: any) => s.name === 'layers');
    expect(env(layers, 'SUMS_FILE').value).toBe(sums);
    expect(layers.script).toContain('does not match SHA256SUMS from the download');
  });

  test('10. safe by default: params only through env, no secrets, TLS on, no privileged container, images pinned', () => {
    for (const s of steps) {
      expect(s.script).not.toMatch(/\$\((params|tasks|context)\./);
      expect(s.securityContext?.privileged).toBeUndefined();
      expect(s.image).toMatch(/@sha256:[a-f0-9]{64}$/);
      expect(env(s, 'TLS_VERIFY')?.value ?? 'true').toBe('true');
    }
    // The default builder needs no capability at all: no step of the default app sets a securityContext.
    expect(steps.filter((s) => s.securityContext !== undefined).map((s) => `${s.task}/${s.name}`)).toEqual([]);
    expect(steps.map((s) => s.name)).not.toContain('build');
    // No Secret objects and no credential as a literal env value: only references.
    expect(docs.filter((d) => d.kind === 'Secret')).toEqual([]);
    for (const s of steps) {
      for (const e of s.env ?? []) {
        if (/TOKEN|PASSWORD|AUTH|CREDENTIAL/.test(e.name) && e.name !== 'AUTHFILE') expect(e.value).toBeUndefined();
      }
    }
    const quay = task('modelcar-pipeline-push-quay');
    expect(quay.spec.volumes).toContainEqual({ name: 'registry-auth', secret: { secretName: 'quay-push-credentials' } });
    const internal = task('modelcar-pipeline-push-internal');
    expect(internal.spec.volumes).toContainEqual({ name: 'registry-ca', configMap: { name: 'openshift-service-ca.crt' } });
  });
});
