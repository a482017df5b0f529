import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as yaml from 'js-yaml';
import { GitOpsLayout, ModelcarPipeline, PipelineGraph } from '../../src';
import { buildDefaultApp, DefaultAppOptions } from '../../src/app/main';
import { IMAGE_COMMANDS } from '../../src/modelcar/image-inventory';
import { scriptCommands, shellCommands } from '../support/script-commands';
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
  /** The script's commands as the shell runs them (comments stripped), each with its words joined. */
  const commandLines = (script: string): string[] => script.split('\n')
    .map((l) => l.replace(/(^|\s)#.*$/, '').trim())
    .filter((l) => l !== '' && shellCommands(l).length > 0);
  /** Index of the first command line that starts with the given words (-1 when none): never matches a comment. */
  const lineOf = (script: string, re: RegExp): number => commandLines(script).findIndex((l) => re.test(l));
  afterAll(() => fs.rmSync(outdir, { recursive: true, force: true }));

  test('writes the GitOps layout, which matches the snapshot', () => {
    expect(files).toEqual([
      '01-tasks/kustomization.yaml',
      '01-tasks/task-modelcar-pipeline-build-image.yaml',
      '01-tasks/task-modelcar-pipeline-check-published.yaml',
      '01-tasks/task-modelcar-pipeline-clean-up.yaml',
      '01-tasks/task-modelcar-pipeline-download-model.yaml',
      '01-tasks/task-modelcar-pipeline-push-internal.yaml',
      '01-tasks/task-modelcar-pipeline-push-quay.yaml',
      '01-tasks/task-modelcar-pipeline-register-model.yaml',
      '01-tasks/task-modelcar-pipeline-report-published.yaml',
      '02-pipeline/kustomization.yaml',
      '02-pipeline/pipeline-modelcar-pipeline.md',
      '02-pipeline/pipeline-modelcar-pipeline.yaml',
      '03-runs/kustomization.yaml',
      '03-runs/pipelinerun-mistral-small-24b-full-97e1330e04.yaml',
      '03-runs/pipelinerun-mistral-small-24b-quantized-03a417c02f.yaml',
      'kustomization.yaml',
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
      // The commands the preamble runs (comments stripped): identity, groups, umask, listings, stat, free space.
      expect(shellCommands(first.script)).toEqual(expect.arrayContaining(['id', 'umask', 'ls', 'stat', 'df']));
      for (const cmd of [/^echo "identity: +\$\(id\)"$/, /^echo "groups: +\$\(id -G\)"$/, /^echo "umask: +\$\(umask\)"$/, /^ls -la "\$\{WORKSPACE\}"/, /^df -h "\$\{WORKSPACE\}"/]) {
        expect(lineOf(first.script, cmd)).toBeGreaterThanOrEqual(0);
      }
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
      expect(task(name).spec.steps.find((s: any) => s.name === 'push').script).toMatch(/skopeo --tmpdir "\$\{TMPDIR\}" inspect [^\n]*\\\n\s*"\$\{src\}" > \/dev\/null/);
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
    // Commands in order, comments stripped: sync, the atomic rename, sync again. Each must be there (index >= 0).
    const sync = lineOf(publish, /^sync$/);
    const rename = lineOf(publish, /^mv -T "\$\{ARTIFACT_TMP\}" "\$\{ARTIFACT_PATH\}"$/);
    expect(sync).toBeGreaterThanOrEqual(0);
    expect(rename).toBeGreaterThan(sync);
    expect(commandLines(publish)[rename + 1]).toBe('sync');
    const fsync = layers.indexOf('os.fsync(f.fileno())');
    expect(fsync).toBeGreaterThanOrEqual(0);
  });

  test('5. one identity: the namespace\'s, no task sets a user or group, pushes check readability', () => {
    // No fsGroup and no uid: the namespace's SCC assigns them (its own range on every cluster); the policy stays.
    for (const run of runs) {
      expect(run.spec.taskRunTemplate.podTemplate.securityContext).toEqual({ fsGroupChangePolicy: 'OnRootMismatch' });
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
      expect(debug.script).toContain('check_tree "${ARTIFACT_PATH}"');
      expect(debug.script).toContain('Likely fix: run every task under the same fsGroup');
    }
    // The tasks that do not read the artifact do not carry its check.
    expect(task('modelcar-pipeline-download-model').spec.steps[0].script).not.toContain('check_tree');
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
        // AUTH_MODE names a kind, the others a file: no value of theirs is a credential.
        if (/TOKEN|PASSWORD|AUTH|CREDENTIAL/.test(e.name) && !['AUTHFILE', 'BASE_AUTHFILE', 'AUTH_MODE', 'SA_TOKEN_FILE'].includes(e.name)) expect(e.value).toBeUndefined();
      }
    }
    const quay = task('modelcar-pipeline-push-quay');
    expect(quay.spec.volumes).toContainEqual({ name: 'registry-auth', secret: { secretName: 'quay-push-credentials' } });
    const internal = task('modelcar-pipeline-push-internal');
    expect(internal.spec.volumes).toContainEqual({ name: 'registry-ca', configMap: { name: 'openshift-service-ca.crt' } });
  });

  test('GitOps: synthesizing twice gives byte-identical files; one variant\'s new revision renames exactly that run', () => {
    // GIVEN the default app written twice, and once with the full model pinned to another revision
    const again = writeDefault();
    const changed = writeDefault({ fullModelRevision: '0123456789abcdef0123456789abcdef01234567' });

    // THEN the same bytes, file for file
    expect(again.files).toEqual(files);
    for (const f of files) expect(again.read(f)).toBe(read(f));
    // and only the full model's run has a new name (so Argo CD creates it, and Tekton builds it once)
    const runFiles = (l: string[]) => l.filter((f) => f.startsWith('03-runs/pipelinerun-'));
    expect(runFiles(changed.files)).toEqual([
      '03-runs/pipelinerun-mistral-small-24b-full-ad031c28df.yaml',
      '03-runs/pipelinerun-mistral-small-24b-quantized-03a417c02f.yaml',
    ]);
    const quantized = '03-runs/pipelinerun-mistral-small-24b-quantized-03a417c02f.yaml';
    expect(changed.read(quantized)).toBe(read(quantized));
    for (const f of files.filter((x) => !x.startsWith('03-runs/') && !x.endsWith('.md'))) expect(changed.read(f)).toBe(read(f));
    // The pipeline's page shows the change: the new name, the new revision.
    expect(changed.read('02-pipeline/pipeline-modelcar-pipeline.md')).toContain('| `mistral-small-24b-full-ad031c28df` | mistralai/Mistral-Small-24B-Instruct-2501 | 0123456789abcdef0123456789abcdef01234567 |');
  });

  test('GitOps: Tasks and Pipeline sync before the runs; finished runs are kept; one kustomization over the folders', () => {
    const annotations = (f: string) => (yaml.load(read(f)) as any).metadata.annotations;
    expect(annotations('01-tasks/task-modelcar-pipeline-build-image.yaml')['argocd.argoproj.io/sync-wave']).toBe('1');
    expect(annotations('02-pipeline/pipeline-modelcar-pipeline.yaml')['argocd.argoproj.io/sync-wave']).toBe('1');
    for (const f of files.filter((x) => x.startsWith('03-runs/pipelinerun-'))) {
      expect(annotations(f)).toEqual({
        'argocd.argoproj.io/sync-wave': '2',
        'argocd.argoproj.io/sync-options': 'Prune=false',
        'argocd.argoproj.io/compare-options': 'IgnoreExtraneous',
        // Each run has its own volume, which Tekton 1.11+ deletes when the run ends (the clean-up's default).
        'tekton.dev/auto-cleanup-pvc': 'true',
      });
    }
    expect((yaml.load(read('kustomization.yaml')) as any).resources).toEqual(['01-tasks', '02-pipeline', '03-runs']);
  });

  test('the README\'s graph is the one generated from the default app\'s Pipeline, and so is the page beside it', () => {
    const modelcar = buildDefaultApp().node.findAll().find((c): c is ModelcarPipeline => c instanceof ModelcarPipeline)!;
    const graph = PipelineGraph.mermaid(modelcar.pipeline);
    const readme = fs.readFileSync(path.join(__dirname, '..', '..', 'README.md'), 'utf8');
    const blocks = [...readme.matchAll(/```mermaid\n([\s\S]*?)```/g)].map((m) => m[1]);
    expect(blocks).toEqual([graph]);
    expect(read('02-pipeline/pipeline-modelcar-pipeline.md')).toContain('```mermaid\n' + graph + '```');
  });

  test('11. registry credentials without $HOME: the internal push uses the service account token, quay its secret; skopeo gets a writable HOME', () => {
    const push = (name: string) => task(name).spec.steps.find((s: any) => s.name === 'push');
    const internal = push('modelcar-pipeline-push-internal');
    expect(env(internal, 'AUTH_MODE').value).toBe('service-account-token');
    expect(env(internal, 'SA_TOKEN_FILE').value).toBe('/var/run/secrets/kubernetes.io/serviceaccount/token');
    expect(env(internal, 'AUTHFILE')).toBeUndefined();
    const quay = push('modelcar-pipeline-push-quay');
    expect(env(quay, 'AUTH_MODE').value).toBe('secret');
    expect(env(quay, 'AUTHFILE').value).toBe('/etc/modelcar/auth/.dockerconfigjson');
    // The base image: the service account's docker secrets, as Tekton writes them to $(credentials.path).
    const base = task('modelcar-pipeline-build-image').spec.steps.find((s: any) => s.name === 'base');
    expect(env(base, 'AUTH_MODE').value).toBe('service-account');
    expect(env(base, 'BASE_AUTHFILE').value).toBe('$(credentials.path)/.docker/config.json');
    // Every step that runs skopeo has HOME in an emptyDir it mounts (its blob-info cache lives there).
    for (const s of steps.filter((x) => scriptCommands(x.script).includes('skopeo'))) {
      const home = env(s, 'HOME')?.value as string;
      expect(home).toBeDefined();
      const t = tasks.find((x) => x.metadata.name === s.task);
      const mount = s.volumeMounts.find((m: any) => home.startsWith(`${m.mountPath}/`));
      expect(t.spec.volumes.find((v: any) => v.name === mount.name).emptyDir).toBeDefined();
    }
  });

  test('12. every step calls only commands its image provides (image-inventory.ts; comments stripped)', () => {
    const missing: string[] = [];
    let checked = 0;
    for (const s of steps) {
      const repository = (s.image as string).split('@')[0];
      const inventory = IMAGE_COMMANDS[repository];
      expect(inventory).toBeDefined();
      for (const cmd of scriptCommands(s.script)) {
        checked++;
        if (!inventory.includes(cmd)) missing.push(`${s.task}/${s.name} (${repository}): ${cmd}`);
      }
    }
    expect(missing).toEqual([]);
    expect(checked).toBeGreaterThan(40);
  });
});

function writeDefault(options: DefaultAppOptions = {}): { files: string[]; read: (f: string) => string } {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'modelcar-dist-'));
  try {
    const files = GitOpsLayout.write(buildDefaultApp(options), { outdir, namespace: 'private-ai-demo' });
    const contents = Object.fromEntries(files.map((f) => [f, fs.readFileSync(path.join(outdir, f), 'utf8')]));
    return { files, read: (f) => contents[f] };
  } finally {
    fs.rmSync(outdir, { recursive: true, force: true });
  }
}
