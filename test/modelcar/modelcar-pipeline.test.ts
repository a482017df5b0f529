import { Duration, Size, Testing } from 'cdk8s';
import { ArtifactFormat, ImageReference, ImageResult, ModelcarBuilder, ModelcarPipeline, ParamValue, PipelineRun, PushTarget, RegistryCredentials, RegistryTrust, Task, VolumeCleanup } from '../../src';
import { doc, synth } from '../support/synth';

const quay = () => PushTarget.quay({ organization: 'org', repository: 'model', credentials: RegistryCredentials.fromDockerConfigSecret('quay-robot') });
const internal = () => PushTarget.openshiftInternal({ namespace: 'ai' });

describe('ModelcarPipeline', () => {
  test('three targets in the given order, buildah writing an oci-archive artifact, and a task of the user\'s after the pushes', () => {
    // GIVEN
    const chart = Testing.chart();
    const custom = PushTarget.registry({
      name: 'mirror',
      repository: 'registry.example.com:5000/team/models',
      credentials: RegistryCredentials.fromDockerConfigSecret('mirror-auth'),
      trust: RegistryTrust.fromSecret('mirror-ca'),
    });
    const modelcar = new ModelcarPipeline(chart, 'm', { pushTargets: [quay(), custom, internal()], artifactFormat: ArtifactFormat.OCI_ARCHIVE, builder: ModelcarBuilder.buildah() });
    const register = new Task(chart, 'register', { name: 'register-model' });
    const ref = register.addParam('IMAGE_REF');
    register.addStep({ name: 'register', image: ImageReference.fromDigest('quay.io/org/registrar', `sha256:${'a'.repeat(64)}`).toString(), env: { REF: ref.envValue() }, script: 'echo "registering $REF"' });

    // WHEN
    modelcar.addTask('register', { task: register, params: { IMAGE_REF: ParamValue.string(modelcar.imageResult('quay', ImageResult.REF)) } });
    modelcar.addRun('run', { model: { repo: 'org/model', revision: 'v1', include: ['*.safetensors', '*.json'] }, tags: ['v1', 'latest'], fsGroup: 1000, storage: Size.gibibytes(20), timeout: Duration.hours(4), existingClaim: 'models' });

    // THEN
    const docs = synth(chart);
    expect(docs).toMatchSnapshot();
    const p = doc(docs, 'Pipeline').spec.tasks;
    expect(p.map((t: any) => [t.name, t.runAfter])).toEqual([
      ['check-published', undefined], ['download-model', undefined], ['build-image', ['download-model']], ['push-quay', ['build-image']],
      ['push-mirror', ['push-quay']], ['push-internal', ['push-mirror']], ['report-published', ['push-internal']], ['register', ['report-published']],
    ]);
    // The user's task takes the report's result, which exists whether the pushes ran or not.
    expect(p.find((t: any) => t.name === 'register').params).toEqual([{ name: 'IMAGE_REF', value: 'quay.io/org/model@$(tasks.report-published.results.IMAGE_DIGEST)' }]);
    const run = doc(docs, 'PipelineRun').spec;
    expect(run.params).toContainEqual({ name: 'MODEL_INCLUDE', value: '*.safetensors *.json' });
    expect(run.params).toContainEqual({ name: 'IMAGE_TAGS', value: 'v1 latest' });
    expect(run.workspaces).toEqual([{ name: 'shared', persistentVolumeClaim: { claimName: 'models' } }]);
    const mirror = doc(docs, 'Task', 'modelcar-push-mirror').spec;
    expect(mirror.volumes).toContainEqual({ name: 'registry-ca', secret: { secretName: 'mirror-ca' } });
    expect(mirror.steps[1].env).toContainEqual({ name: 'ARTIFACT_PATH', value: '$(workspaces.source.path)/modelcar-runs/$(params.RUN_ID)/image.tar' });
  });

  test('parallel pushes only on explicit opt-in', () => {
    const chart = Testing.chart();
    const modelcar = new ModelcarPipeline(chart, 'm', { pushTargets: [internal(), quay()], parallelPushes: true });
    const p = doc(synth(chart), 'Pipeline').spec.tasks;
    expect(p.filter((t: any) => t.name.startsWith('push-')).map((t: any) => t.runAfter)).toEqual([['build-image'], ['build-image']]);
    expect(modelcar.parallelPushes).toBe(true);
  });

  test('a run\'s timeout defaults to the tasks in a row: check, download, build, then the pushes (the longest when parallel), report, clean-up', () => {
    const chart = Testing.chart();
    const slow = () => PushTarget.registry({ name: 'mirror', repository: 'r.example.com/m', credentials: RegistryCredentials.fromServiceAccount(), timeout: Duration.minutes(45) });
    const serial = new ModelcarPipeline(chart, 's', { name: 's', pushTargets: [internal(), slow()] });
    const parallel = new ModelcarPipeline(chart, 'p', {
      name: 'p',
      parallelPushes: true,
      buildTimeout: Duration.minutes(20),
      pushTargets: [internal(), slow()],
    });
    serial.addRun('r', { name: 'rs', model: { repo: 'org/m' }, tags: ['v1'], fsGroup: 1 });
    parallel.addRun('r', { name: 'rp', model: { repo: 'org/m' }, tags: ['v1'], fsGroup: 1 });
    // check, report and clean-up: 5 minutes each
    expect(serial.tasksTimeout.toMinutes()).toBe(5 + 60 + 60 + 30 + 45 + 5 + 5);
    expect(parallel.tasksTimeout.toMinutes()).toBe(5 + 60 + 20 + 45 + 5 + 5);
    const runs = synth(chart).filter((d: any) => d.kind === 'PipelineRun');
    expect(runs.map((r: any) => r.spec.timeouts.pipeline)).toEqual(['3h30m0s', '2h20m0s']);
  });

  test('toolsImage and pythonImage reach every step (a mirror for a disconnected cluster)', () => {
    const chart = Testing.chart();
    const mirror = (name: string) => ImageReference.fromDigest(`mirror.example.com/${name}`, `sha256:${'b'.repeat(64)}`);
    new ModelcarPipeline(chart, 'm', { pushTargets: [internal()], toolsImage: mirror('skopeo'), pythonImage: mirror('python') });
    const images = new Set(synth(chart).filter((d: any) => d.kind === 'Task').flatMap((t: any) => t.spec.steps.map((st: any) => st.image.split('@')[0])));
    expect([...images].sort()).toEqual(['mirror.example.com/python', 'mirror.example.com/skopeo']);
  });

  test('an insecure registry turns TLS verification off for that target only', () => {
    const chart = Testing.chart();
    new ModelcarPipeline(chart, 'm', {
      pushTargets: [internal(), PushTarget.registry({ name: 'lab', repository: 'lab.local/m', credentials: RegistryCredentials.fromServiceAccount(), trust: RegistryTrust.insecureSkipVerify() })],
    });
    const docs = synth(chart);
    const tls = (name: string) => doc(docs, 'Task', name).spec.steps[1].env.find((e: any) => e.name === 'TLS_VERIFY').value;
    expect(tls('modelcar-push-lab')).toBe('false');
    expect(tls('modelcar-push-internal')).toBe('true');
  });

  test('a hub mirror with its own CA: the fetch step trusts the ConfigMap\'s certificates besides the system CAs', () => {
    const chart = Testing.chart();
    new ModelcarPipeline(chart, 'm', { pushTargets: [internal()], huggingFaceEndpoint: 'https://hf-mirror.example.com', huggingFaceTrust: RegistryTrust.fromConfigMap('hf-mirror-ca') });
    const task = doc(synth(chart), 'Task', 'modelcar-download-model').spec;
    expect(task.volumes).toContainEqual({ name: 'hub-ca', configMap: { name: 'hf-mirror-ca' } });
    const fetch = task.steps.find((s: any) => s.name === 'fetch');
    expect(fetch.volumeMounts).toEqual([{ name: 'hub-ca', mountPath: '/etc/modelcar/hub-certs', readOnly: true }]);
    expect(fetch.env).toContainEqual({ name: 'HF_CA_DIR', value: '/etc/modelcar/hub-certs' });
    expect(fetch.env).toContainEqual({ name: 'HF_ENDPOINT', value: 'https://hf-mirror.example.com' });
  });

  test('download props: connections, range size, a deadline inside the task timeout, Tekton retries counted in tasksTimeout', () => {
    const chart = Testing.chart();
    const m = new ModelcarPipeline(chart, 'm', {
      pushTargets: [internal()],
      downloadConnections: 16,
      downloadChunkSize: Size.mebibytes(64),
      downloadTimeout: Duration.hours(2),
      downloadRetries: 2,
      builder: ModelcarBuilder.buildah(),
    });
    const docs = synth(chart);
    const fetch = doc(docs, 'Task', 'modelcar-download-model').spec.steps.find((s: any) => s.name === 'fetch');
    const value = (name: string) => fetch.env.find((e: any) => e.name === name)?.value;
    expect([value('HF_CONNECTIONS'), value('HF_CHUNK_BYTES'), value('HF_DEADLINE_SECONDS'), value('BUILDER')]).toEqual(['16', String(64 * 1024 * 1024), '6840', 'buildah']);
    expect(doc(docs, 'Pipeline').spec.tasks.find((t: any) => t.name === 'download-model')).toMatchObject({ retries: 2, timeout: '2h0m0s' });
    // Tekton gives each attempt the task's full timeout: check 5 min + 3 x 2 h + build 1 h + push 30 min + report 5 min + clean-up 5 min.
    expect(m.tasksTimeout.toMinutes()).toBe(5 + 3 * 120 + 60 + 30 + 5 + 5);
  });

  describe('volume clean-up', () => {
    const AUTO_CLEANUP = 'tekton.dev/auto-cleanup-pvc';
    /** The pipeline's finally tasks and each run's clean-up annotation, for one choice. */
    const cleanUp = (volumeCleanup?: VolumeCleanup) => {
      const chart = Testing.chart();
      const m = new ModelcarPipeline(chart, 'm', { pushTargets: [internal()], volumeCleanup });
      m.addRun('fresh', { model: { repo: 'org/m' }, tags: ['v1'] });
      m.addRun('claim', { model: { repo: 'org/m' }, tags: ['v2'], existingClaim: 'models' });
      const docs = synth(chart);
      const runs = docs.filter((d: any) => d.kind === 'PipelineRun');
      return {
        m,
        docs,
        finally: doc(docs, 'Pipeline').spec.finally,
        annotations: runs.map((r: any) => r.metadata.annotations?.[AUTO_CLEANUP]),
      };
    };

    test('by default a finally task removes the run\'s directory, succeeded or failed, and a run on its own volume asks Tekton to delete it', () => {
      const { m, docs, finally: fin, annotations } = cleanUp();
      expect(m.volumeCleanup.afterFailure).toBe(true);
      expect(fin).toEqual([{
        name: 'clean-up',
        taskRef: { kind: 'Task', name: 'modelcar-clean-up' },
        params: [{ name: 'RUN_ID', value: '$(context.pipelineRun.uid)' }, { name: 'RUN_STATUS', value: '$(tasks.status)' }],
        workspaces: [{ name: 'source', workspace: 'shared' }],
        timeout: '5m0s',
      }]);
      // The user's claim is never deleted: only the run with a volumeClaimTemplate carries the annotation.
      expect(annotations).toEqual(['true', undefined]);
      const task = doc(docs, 'Task', 'modelcar-clean-up').spec;
      expect(task.steps.map((s: any) => s.name)).toEqual(['debug', 'clean-up']);
      const env = Object.fromEntries(task.steps[1].env.map((e: any) => [e.name, e.value]));
      expect(env).toEqual({
        WORKSPACE: '$(workspaces.source.path)',
        RUN_ID: '$(params.RUN_ID)',
        RUN_DIR: '$(workspaces.source.path)/modelcar-runs/$(params.RUN_ID)',
        RUN_STATUS: '$(params.RUN_STATUS)',
      });
    });

    test('keepFailed() removes only when every task succeeded or was skipped, and asks Tekton for nothing', () => {
      const { finally: fin, annotations } = cleanUp(VolumeCleanup.keepFailed());
      expect(fin.map((t: any) => [t.name, t.when])).toEqual([['clean-up', [{ input: '$(tasks.status)', operator: 'in', values: ['Succeeded', 'Completed'] }]]]);
      // Tekton deletes an annotated run's volume whatever the run's status: a failed run's bytes would go with it.
      expect(annotations).toEqual([undefined, undefined]);
    });

    test('never() keeps everything: no finally task, no clean-up Task, no annotation, and the timeout without it', () => {
      const { m, docs, finally: fin, annotations } = cleanUp(VolumeCleanup.never());
      expect(fin).toBeUndefined();
      expect(docs.filter((d: any) => d.kind === 'Task').map((d: any) => d.metadata.name)).not.toContain('modelcar-clean-up');
      expect(annotations).toEqual([undefined, undefined]);
      expect(m.tasksTimeout.toMinutes()).toBe(cleanUp().m.tasksTimeout.toMinutes() - 5);
    });
  });

  describe('fails when', () => {
    test('fails when there are no push targets', () => {
      expect(() => new ModelcarPipeline(Testing.chart(), 'm', { pushTargets: [] })).toThrow(/has no push targets: pass pushTargets/);
    });
    test('fails when a task of the user\'s takes a push task\'s result (skipped when the image is published)', () => {
      const chart = Testing.chart();
      const m = new ModelcarPipeline(chart, 'm', { pushTargets: [quay()] });
      const user = new Task(chart, 'user', { name: 'user' });
      user.addParam('REF');
      expect(() => m.addTask('register', { task: user, params: { REF: ParamValue.string(m.pushTasks[0].result('IMAGE_REF')) } }))
        .toThrow(/task "register" takes a result of "push-quay", which is skipped when every target already serves the image .*use imageResult\(target, ImageResult\.REF\)/);
      // The report's result is the one to take: set whether the run built the image or found it published.
      expect(m.addTask('register', { task: user, params: { REF: ParamValue.string(m.imageResult('quay', ImageResult.REF)) } }).name).toBe('register');
    });
    test('fails when two push targets share a name', () => {
      expect(() => new ModelcarPipeline(Testing.chart(), 'm', { pushTargets: [quay(), quay()] })).toThrow(/two push targets named "quay"/);
    });
    test('fails when an image reference is invalid', () => {
      expect(() => ImageReference.fromDigest('quay.io/Org/Model', `sha256:${'a'.repeat(64)}`)).toThrow(/image repository "quay.io\/Org\/Model" is invalid/);
      expect(() => ImageReference.fromDigest('quay.io/org/model', 'sha256:abc')).toThrow(/image digest "sha256:abc" is invalid/);
      expect(() => ImageReference.parse('quay.io/org/model')).toThrow(/has neither tag nor digest: pin it/);
      expect(() => ImageReference.fromTag('quay.io/org/model', '-bad')).toThrow(/image tag "-bad" is invalid/);
    });
    test('fails when a push target name or repository is invalid', () => {
      expect(() => PushTarget.registry({ name: 'My_Registry', repository: 'r.io/a', credentials: RegistryCredentials.fromServiceAccount() })).toThrow(/push target name "My_Registry" is not a DNS-1123 label/);
      expect(() => PushTarget.quay({ organization: 'Org', repository: 'm', credentials: RegistryCredentials.fromServiceAccount() })).toThrow(/image repository "quay.io\/Org\/m" is invalid/);
      expect(() => PushTarget.openshiftInternal({ namespace: 'Bad_NS' })).toThrow(/namespace "Bad_NS" is not a DNS-1123 label/);
    });
    test('fails when retries are out of range', () => {
      expect(() => PushTarget.openshiftInternal({ namespace: 'ai', retries: 50 })).toThrow(/retries 50 must be a whole number from 0 to 10/);
    });
    test('fails when fsGroup is out of range', () => {
      const m = new ModelcarPipeline(Testing.chart(), 'm', { pushTargets: [internal()] });
      expect(() => m.addRun('r', { model: { repo: 'org/m' }, tags: ['v1'], fsGroup: -5 })).toThrow(/securityContext.fsGroup -5 is out of range/);
    });
    test('fails when the volume size is not positive', () => {
      const m = new ModelcarPipeline(Testing.chart(), 'm', { pushTargets: [internal()] });
      expect(() => m.addRun('r', { model: { repo: 'org/m' }, tags: ['v1'], fsGroup: 1, storage: Size.mebibytes(0) })).toThrow(/storage 0Mi must be positive/);
    });
    test('fails when the model repo, a tag, a pattern or the revision is invalid', () => {
      const m = new ModelcarPipeline(Testing.chart(), 'm', { pushTargets: [internal()] });
      expect(() => m.addRun('a', { model: { repo: 'just-a-name' }, tags: ['v1'], fsGroup: 1 })).toThrow(/model repo "just-a-name" is invalid: expected org\/name/);
      expect(() => m.addRun('b', { model: { repo: 'o/m' }, tags: [], fsGroup: 1 })).toThrow(/has no tags/);
      expect(() => m.addRun('c', { model: { repo: 'o/m' }, tags: ['a b'], fsGroup: 1 })).toThrow(/image tag "a b" is invalid/);
      expect(() => m.addRun('d', { model: { repo: 'o/m' }, tags: ['v1', 'v1'], fsGroup: 1 })).toThrow(/lists a tag twice/);
      expect(() => m.addRun('e', { model: { repo: 'o/m', include: ['a b'] }, tags: ['v1'], fsGroup: 1 })).toThrow(/pattern "a b" is empty or contains white space/);
      expect(() => m.addRun('f', { model: { repo: 'o/m', revision: '$(rm -rf)' }, tags: ['v1'], fsGroup: 1 })).toThrow(/revision "\$\(rm -rf\)" is invalid/);
    });
    test('fails when a run\'s timeout is shorter than the tasks in a row', () => {
      const m = new ModelcarPipeline(Testing.chart(), 'm', { pushTargets: [internal(), quay()] });
      expect(() => m.addRun('r', { model: { repo: 'org/m' }, tags: ['v1'], fsGroup: 1, timeout: Duration.minutes(180) })).toThrow(
        'modelcar run test/m/r: timeout 3 hours is shorter than the pipeline\'s tasks in a row (3 hours 15 minutes: check, download, build, pushes, report, clean-up), '
        + 'so Tekton could stop a task before its own timeout: raise the run\'s timeout or lower downloadTimeout, buildTimeout or the push targets\' timeout');
    });
    test('fails when a published image result names an unknown target or result', () => {
      const m = new ModelcarPipeline(Testing.chart(), 'm', { pushTargets: [internal(), quay()] });
      expect(() => m.imageResult('mirror', ImageResult.REF)).toThrow('modelcar pipeline test/m has no push target named "mirror": use one of "internal", "quay"');
      // What JavaScript, without the type, can still pass.
      expect(() => m.imageResult('quay', 'DIGEST' as ImageResult))
        .toThrow('modelcar pipeline test/m: result "DIGEST" is not an ImageResult: use ImageResult.URL, ImageResult.DIGEST or ImageResult.REF');
    });
    test('each ImageResult is made from the report task\'s two results and that target\'s repository', () => {
      const m = new ModelcarPipeline(Testing.chart(), 'm', { pushTargets: [internal(), quay()] });
      expect([ImageResult.URL, ImageResult.DIGEST, ImageResult.REF].map((r) => m.imageResult('quay', r))).toEqual([
        'quay.io/org/model:$(tasks.report-published.results.IMAGE_TAG)', '$(tasks.report-published.results.IMAGE_DIGEST)',
        'quay.io/org/model@$(tasks.report-published.results.IMAGE_DIGEST)',
      ]);
    });
    test('fails when the hub endpoint is not https', () => {
      expect(() => new ModelcarPipeline(Testing.chart(), 'm', { pushTargets: [internal()], huggingFaceEndpoint: 'http://mirror.example.com' })).toThrow(/is not https/);
    });
    test('fails when a download prop is out of range', () => {
      expect(() => new ModelcarPipeline(Testing.chart(), 'm', { pushTargets: [internal()], downloadConnections: 0 })).toThrow(
        'download task test/m/DownloadModel: connections must be a whole number from 1 to 64 (got 0)');
      expect(() => new ModelcarPipeline(Testing.chart(), 'm', { pushTargets: [internal()], downloadChunkSize: Size.kibibytes(512) })).toThrow(
        'download task test/m/DownloadModel: chunkSize must be a whole number of KiB from 1 MiB to 1 GiB (got 524288 bytes)');
      expect(() => new ModelcarPipeline(Testing.chart(), 'm', { pushTargets: [internal()], downloadRetries: 11 })).toThrow(
        'modelcar pipeline test/m: downloadRetries must be a whole number from 0 to 10 (got 11)');
    });
    test('fails when the hub trust turns TLS verification off', () => {
      expect(() => new ModelcarPipeline(Testing.chart(), 'm', { pushTargets: [internal()], huggingFaceTrust: RegistryTrust.insecureSkipVerify() })).toThrow(
        'download task test/m/DownloadModel: hubTrust must verify TLS (the model and the token would be open to anyone on the path): give the CA with RegistryTrust.fromConfigMap() or fromSecret()');
    });
  });

  describe('run names from their inputs', () => {
    const run = { model: { repo: 'org/model', revision: 'v1' }, tags: ['v1'], fsGroup: 1000 };
    const nameOf = (change: (m: ModelcarPipeline) => void, targets = () => [internal(), quay()]) => {
      const chart = Testing.chart();
      const m = new ModelcarPipeline(chart, 'm', { pushTargets: targets() });
      change(m);
      return chart.node.findAll().filter((c): c is PipelineRun => c instanceof PipelineRun).map((r) => r.name);
    };

    test('the variant, then a hash of model, revision, files, tags, targets and the pipeline; not of storage or timeouts', () => {
      const [base] = nameOf((m) => m.addRun('Small Model', run));
      expect(base).toMatch(/^small-model-[0-9a-f]{10}$/);
      expect(nameOf((m) => m.addRun('Small Model', { ...run, storage: Size.gibibytes(500), timeout: Duration.hours(9) }))).toEqual([base]);
      const renamed = [
        nameOf((m) => m.addRun('Small Model', { ...run, model: { ...run.model, revision: 'v2' } })),
        nameOf((m) => m.addRun('Small Model', { ...run, model: { ...run.model, repo: 'org/other' } })),
        nameOf((m) => m.addRun('Small Model', { ...run, model: { ...run.model, include: ['*.json'] } })),
        nameOf((m) => m.addRun('Small Model', { ...run, model: { ...run.model, exclude: ['*.bin'] } })),
        nameOf((m) => m.addRun('Small Model', { ...run, tags: ['v1', 'latest'] })),
        nameOf((m) => m.addRun('Small Model', { ...run, rebuildNonce: '2026-12-01' })),
        nameOf((m) => m.addRun('Small Model', run), () => [internal()]),
        nameOf((m) => m.addRun('Small Model', run), () => [quay(), internal()]),
      ].map(([n]) => n);
      expect(new Set([base, ...renamed]).size).toBe(renamed.length + 1);
      expect(renamed.every((n) => n.startsWith('small-model-'))).toBe(true);
      // name sets the readable part
      expect(nameOf((m) => m.addRun('x', { ...run, name: 'mistral-v1' }))[0]).toBe(`mistral-v1-${base.slice(-10)}`);
    });

    test('a pipeline change renames runs only with rebuildOnPipelineChange', () => {
      const names = (rebuild: boolean, toolsImage?: string) => {
        const chart = Testing.chart();
        const m = new ModelcarPipeline(chart, 'm', {
          pushTargets: [internal()],
          rebuildOnPipelineChange: rebuild,
          toolsImage: toolsImage ? ImageReference.fromDigest(toolsImage, `sha256:${'b'.repeat(64)}`) : undefined,
        });
        return m.addRun('r', run).pipelineRun.name;
      };
      expect(names(false, 'mirror.example.com/skopeo')).toBe(names(false));
      expect(names(true, 'mirror.example.com/skopeo')).not.toBe(names(true));
      expect(names(true)).not.toBe(names(false));
    });

    test('fails when two variants have the same inputs, naming both', () => {
      const chart = Testing.chart();
      const m = new ModelcarPipeline(chart, 'm', { pushTargets: [internal()] });
      m.addRun('one', run);
      m.addRun('two', run);
      expect(() => synth(chart)).toThrow(/pipelinerun test\/m\/two\/Resource and pipelinerun test\/m\/one\/Resource have the same inputs .*: they would build the same thing twice; remove one, or change what it builds/);
    });

    test('fails when the readable name is too long, or the rebuild nonce is not a string', () => {
      const m = new ModelcarPipeline(Testing.chart(), 'm', { pushTargets: [internal()] });
      expect(() => m.addRun('long', { ...run, name: 'a'.repeat(53) }))
        .toThrow(/^pipelinerun test\/m\/long\/Resource: name "a{53}" is 53 characters long: with a dash and the 10-character hash of the inputs it must be at most 52; shorten it$/);
      expect(() => m.addRun('nonce', { ...run, rebuildNonce: 1 as any }))
        .toThrow("pipelinerun test/m/nonce/Resource: rebuild nonce 1 is a number: give a string, for example the date of the rebuild ('2026-12-01')");
      // An id too long for a name is shortened, never the hash.
      expect(m.addRun('v'.repeat(70), run).pipelineRun.name).toMatch(/^v{52}-[0-9a-f]{10}$/);
    });
  });
});

