import { Size, Testing } from 'cdk8s';
import { ImageReference, ModelcarBuilder, ModelcarPipeline, ModelcarPipelineRun, PushTarget, RegistryCredentials } from '../../src';
import { doc, synth } from '../support/synth';

const quay = () => PushTarget.quay({ organization: 'org', repository: 'model', credentials: RegistryCredentials.fromDockerConfigSecret('quay-robot') });
const internal = () => PushTarget.openshiftInternal({ namespace: 'ai' });
const REBUILD_WHEN = [{ input: '$(tasks.check-published.results.REBUILD)', operator: 'in', values: ['true'] }];

/** The pipeline task names a value refers to as `$(tasks.<name>.results...)`. */
function resultRefs(value: unknown): string[] {
  return [...JSON.stringify(value ?? null).matchAll(/\$\(tasks\.([^.]+)\.results\./g)].map((m) => m[1]);
}

/**
 * Which pipeline tasks Tekton would skip when `when` expressions are false, by Tekton's rules
 * (pipelinerunresolution.go): a task with a false `when` is skipped for that reason; a task that
 * refers to a result of a skipped task is skipped (missing results); a task that only runs after
 * (runAfter) a task skipped by its `when` still runs, but not one after a task skipped otherwise.
 */
function skippedWhenFalse(tasks: any[]): Set<string> {
  const byWhen = new Set(tasks.filter((t) => (t.when ?? []).length > 0).map((t) => t.name));
  const other = new Set<string>();
  for (let changed = true; changed;) {
    changed = false;
    for (const t of tasks) {
      if (byWhen.has(t.name) || other.has(t.name)) continue;
      const refs = resultRefs(t.params);
      if (refs.some((r) => byWhen.has(r) || other.has(r)) || (t.runAfter ?? []).some((r: string) => other.has(r))) {
        other.add(t.name);
        changed = true;
      }
    }
  }
  return new Set([...byWhen, ...other]);
}

describe('skip what is published', () => {
  test('check first; download, build and pushes guarded by its REBUILD result; the report and every pipeline result survive a skip', () => {
    // GIVEN
    const chart = Testing.chart();
    const modelcar = new ModelcarPipeline(chart, 'm', { pushTargets: [internal(), quay()] });
    modelcar.addRun('run', { name: 'run', model: { repo: 'org/model', revision: 'main', exclude: ['*.bin'] }, tags: ['v1', 'latest'], fsGroup: 1000 });

    // WHEN
    const docs = synth(chart);

    // THEN
    const pipeline = doc(docs, 'Pipeline').spec;
    expect(doc(docs, 'Pipeline')).toMatchSnapshot();
    const tasks = pipeline.tasks;
    expect(tasks.map((t: any) => [t.name, t.runAfter, t.when])).toEqual([
      ['check-published', undefined, undefined],
      ['download-model', undefined, REBUILD_WHEN],
      ['build-image', ['download-model'], REBUILD_WHEN],
      ['push-internal', ['build-image'], REBUILD_WHEN],
      ['push-quay', ['push-internal'], REBUILD_WHEN],
      ['report-published', ['push-quay'], undefined],
    ]);
    const params = (name: string) => Object.fromEntries(tasks.find((t: any) => t.name === name).params.map((p: any) => [p.name, p.value]));
    // The download fetches exactly the commit the check resolved; the build labels it with the check's config digest.
    expect(params('download-model').MODEL_REVISION).toBe('$(tasks.check-published.results.MODEL_RESOLVED_REVISION)');
    expect(params('build-image').BUILD_CONFIG).toBe('$(tasks.check-published.results.BUILD_CONFIG)');
    expect(params('report-published')).toMatchObject({
      MODEL_REVISION: '$(tasks.check-published.results.MODEL_RESOLVED_REVISION)',
      BUILD_CONFIG: '$(tasks.check-published.results.BUILD_CONFIG)',
    });
    expect(params('check-published').FORCE_REBUILD).toBe('$(params.FORCE_REBUILD)');

    // With REBUILD=false Tekton skips exactly the expensive tasks, and no pipeline result refers to one of them
    // (Tekton drops a pipeline result that refers to a skipped task's result).
    const skipped = skippedWhenFalse(tasks);
    expect([...skipped].sort()).toEqual(['build-image', 'download-model', 'push-internal', 'push-quay']);
    expect(pipeline.results.map((r: any) => [r.name, resultRefs(r.value)])).toEqual([
      ['INTERNAL_IMAGE_URL', ['report-published']],
      ['INTERNAL_IMAGE_DIGEST', ['report-published']],
      ['INTERNAL_IMAGE_REF', ['report-published']],
      ['QUAY_IMAGE_URL', ['report-published']],
      ['QUAY_IMAGE_DIGEST', ['report-published']],
      ['QUAY_IMAGE_REF', ['report-published']],
      ['MODEL_RESOLVED_REVISION', ['check-published']],
      ['MODEL_SIZE', ['check-published']],
      ['SERVING_TAG', ['check-published']],
      ['REBUILD', ['check-published']],
    ]);
    // The one finally task, the clean-up, refers to no task's result (Tekton skips a finally task that refers to a
    // skipped task's result): it runs on a skip too, where it finds nothing to remove.
    expect(pipeline.finally.map((t: any) => [t.name, resultRefs(t.params), t.when])).toEqual([['clean-up', [], undefined]]);
    // The serving tag (the check's result) is pushed after the run's tags (never moved) and read back by the report
    // with them: the run passes no param for it (its name, a hash of its params, stays), and the report's first tag
    // stays the run's first.
    for (const t of ['push-internal', 'push-quay']) {
      expect(params(t)).toMatchObject({ IMAGE_TAGS: '$(params.IMAGE_TAGS)', SERVING_TAG: '$(tasks.check-published.results.SERVING_TAG)' });
    }
    expect(params('report-published').IMAGE_TAGS).toBe('$(params.IMAGE_TAGS) $(tasks.check-published.results.SERVING_TAG)');
    expect(params('check-published').IMAGE_TAGS).toBe('$(params.IMAGE_TAGS)');
    // The report has two results whatever the number of targets; the pipeline makes each target's from them.
    expect(doc(docs, 'Task', 'modelcar-report-published').spec.results.map((r: any) => r.name)).toEqual(['IMAGE_DIGEST', 'IMAGE_TAG']);
    const value = (name: string) => pipeline.results.find((r: any) => r.name === name).value;
    expect(value('QUAY_IMAGE_URL')).toBe('quay.io/org/model:$(tasks.report-published.results.IMAGE_TAG)');
    expect(value('QUAY_IMAGE_DIGEST')).toBe('$(tasks.report-published.results.IMAGE_DIGEST)');
    expect(value('INTERNAL_IMAGE_REF')).toBe('image-registry.openshift-image-registry.svc:5000/ai/modelcars@$(tasks.report-published.results.IMAGE_DIGEST)');
  });

  test('the check asks every target with that target\'s own trust and credentials, after the preamble and the revision lookup', () => {
    const chart = Testing.chart();
    new ModelcarPipeline(chart, 'm', { pushTargets: [internal(), quay()] });
    const docs = synth(chart);
    const check = doc(docs, 'Task', 'modelcar-check-published').spec;
    expect(doc(docs, 'Task', 'modelcar-check-published')).toMatchSnapshot();
    expect(check.steps.map((s: any) => s.name)).toEqual(['debug', 'resolve', 'config', 'check']);
    const env = (step: string) => Object.fromEntries(check.steps.find((s: any) => s.name === step).env
      .map((e: any) => [e.name, e.value ?? e.valueFrom]));
    expect(env('resolve')).toMatchObject({ HF_REVISION: '$(params.MODEL_REVISION)', RESOLVED_REVISION_FILE: '$(results.MODEL_RESOLVED_REVISION.path)' });
    expect(env('resolve').MODEL_DIR).toBeUndefined();
    // One step asks every target, each on its line: repository, TLS, retries, CA dir, credentials.
    expect(env('check')).toMatchObject({ MODE: 'check', RESULT_REBUILD: '$(results.REBUILD.path)', SERVING_TAG_FILE: '$(results.SERVING_TAG.path)' });
    // The config step names the serving tag from the commit the resolve step wrote.
    expect(env('config')).toMatchObject({ RESOLVED_REVISION_FILE: '$(results.MODEL_RESOLVED_REVISION.path)', RESULT_SERVING_TAG: '$(results.SERVING_TAG.path)' });
    expect(env('check').TARGETS.split('\n')).toEqual([
      'internal image-registry.openshift-image-registry.svc:5000/ai/modelcars true 3 /etc/modelcar/internal-certs service-account-token -',
      'quay quay.io/org/model true 3 - secret /etc/modelcar/quay-auth/.dockerconfigjson',
    ]);
    expect(env('check').SA_TOKEN_FILE).toBe('/var/run/secrets/kubernetes.io/serviceaccount/token');
    expect(check.volumes).toEqual([
      { name: 'scratch', emptyDir: {} },
      { name: 'internal-ca', configMap: { name: 'openshift-service-ca.crt' } },
      { name: 'quay-auth', secret: { secretName: 'quay-robot' } },
    ]);
    // Only the preamble looks at the volume, read only.
    expect(check.workspaces).toEqual([expect.objectContaining({ name: 'source', readOnly: true })]);
    const report = doc(docs, 'Task', 'modelcar-report-published').spec;
    expect(report.steps.map((s: any) => s.name)).toEqual(['debug', 'report']);
  });

  test('the build writes the build-config label; its configuration text changes with the builder, threshold or base image, not with a mirror', () => {
    const chart = Testing.chart();
    const base = (repo: string, hex: string) => ImageReference.fromDigest(repo, `sha256:${hex.repeat(64)}`);
    const spec = (id: string, props: object) => new ModelcarPipeline(chart, id, { name: id, pushTargets: [internal()], ...props })
      .buildImage.buildConfigSpec;
    const dflt = spec('a', {});
    expect(dflt).toMatch(/^modelcar build configuration v1\nbuilder: oci-layout\nbuilder image: sha256:[0-9a-f]{64}\nbuilder scripts: layout-base.sh@sha256:[0-9a-f]{64} layout-build.py@sha256:[0-9a-f]{64}\nbase image: sha256:[0-9a-f]{64}\nlarge file bytes: 67108864\n/);
    expect(spec('b', { builder: ModelcarBuilder.ociLayout({ largeFileThreshold: Size.mebibytes(4) }) })).not.toBe(dflt);
    expect(spec('c', { builder: ModelcarBuilder.buildah() })).toContain('builder scripts: build-buildah.sh@sha256:');
    expect(spec('d', { baseImage: base('registry.example.com/base', 'c') })).not.toBe(dflt);
    // The same image from a mirror: the same configuration.
    expect(spec('e', { baseImage: base('mirror.example.com/base', 'c') })).toBe(spec('f', { baseImage: base('registry.example.com/base', 'c') }));
    const docs = synth(chart);
    const layers = doc(docs, 'Task', 'a-build-image').spec.steps.find((s: any) => s.name === 'layers');
    expect(layers.env).toContainEqual({ name: 'BUILD_CONFIG', value: '$(params.BUILD_CONFIG)' });
    const config = doc(docs, 'Task', 'a-check-published').spec.steps.find((s: any) => s.name === 'config');
    expect(config.env).toContainEqual({ name: 'BUILD_CONFIG_SPEC', value: dflt });
    expect(doc(docs, 'Task', 'c-build-image').spec.steps.find((s: any) => s.name === 'build').env).toContainEqual({ name: 'BUILD_CONFIG', value: '$(params.BUILD_CONFIG)' });
  });

  test('forceRebuild: the pipeline param\'s default, overridden per run; a forced run is a new run', () => {
    const chart = Testing.chart();
    const normal = new ModelcarPipeline(chart, 'n', { name: 'n', pushTargets: [internal()] });
    const forced = new ModelcarPipeline(chart, 'f', { name: 'f', pushTargets: [internal()], forceRebuild: true });
    const a = normal.addRun('a', { name: 'n-default', model: { repo: 'o/m' }, tags: ['v1'], fsGroup: 1 });
    const b = normal.addRun('b', { name: 'n-forced', model: { repo: 'o/m' }, tags: ['v1'], fsGroup: 1, forceRebuild: true });
    const c = forced.addRun('c', { name: 'f-not', model: { repo: 'o/m' }, tags: ['v1'], fsGroup: 1, forceRebuild: false });
    const d = forced.addRun('d', { name: 'f-inherits', model: { repo: 'o/m' }, tags: ['v1'], fsGroup: 1 });
    const docs = synth(chart);
    const dflt = (name: string) => doc(docs, 'Pipeline', name).spec.params.find((p: any) => p.name === 'FORCE_REBUILD').default;
    expect([dflt('n'), dflt('f')]).toEqual(['false', 'true']);
    const runParam = (run: ModelcarPipelineRun) => doc(docs, 'PipelineRun', run.pipelineRun.name).spec.params
      .find((p: any) => p.name === 'FORCE_REBUILD')?.value;
    expect([runParam(a), runParam(b), runParam(c), runParam(d)]).toEqual([undefined, 'true', 'false', 'true']);
    // The same model and tags, forced or not: different inputs, so a forced run never collides with (or
    // rewrites the spec of) the run it forces again.
    expect(new Set([a, b, c, d].map((r) => r.pipelineRun.inputsDigest)).size).toBe(4);
  });
});
