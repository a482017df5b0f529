import { Size, Testing } from 'cdk8s';
import * as kplus from 'cdk8s-plus-28';
import { ArgoCdSync, ModelcarInferenceService, ModelcarPipeline, ModelcarPipelineRun, PushTarget, RegistryCredentials } from '../../src';
import { validateKserveManifest } from '../support/kserve-schema';
import { doc, synth } from '../support/synth';

const COMMIT = '0123456789abcdef0123456789abcdef01234567';

function pinnedRun(chart = Testing.chart(), revision: string = COMMIT, argoCdSync?: ArgoCdSync): ModelcarPipelineRun {
  const modelcar = new ModelcarPipeline(chart, 'modelcar', {
    argoCdSync,
    pushTargets: [
      PushTarget.openshiftInternal({ namespace: 'private-ai-demo', repository: 'mistral-small-24b' }),
      PushTarget.quay({ organization: 'private-ai-demo', repository: 'mistral-small-24b', credentials: RegistryCredentials.fromDockerConfigSecret('quay-push') }),
    ],
  });
  return modelcar.addRun('quantized', { model: { repo: 'RedHatAI/Mistral-Small-24B-Instruct-2501-quantized.w4a16', revision }, tags: ['w4a16'] });
}

describe('ModelcarInferenceService', () => {
  test('serves the run\'s image by its serving reference, vLLM on one GPU by default, after the runs; valid against KServe\'s CRD', () => {
    // GIVEN
    const chart = Testing.chart();
    const run = pinnedRun(chart);

    // WHEN
    const isvc = new ModelcarInferenceService(chart, 'Mistral-Quantized', { run });
    const docs = synth(chart); // validates every InferenceService against KServe v0.15.2's openAPIV3Schema, closed

    // THEN
    const served = doc(docs, 'InferenceService');
    expect(served).toMatchSnapshot();
    expect(isvc.name).toBe('mistral-quantized');
    expect(served.apiVersion).toBe('serving.kserve.io/v1beta1');
    expect(served.metadata.annotations).toEqual({ 'argocd.argoproj.io/sync-wave': '3' });
    expect(served.spec.predictor).toEqual({
      minReplicas: 1,
      maxReplicas: 1,
      model: {
        modelFormat: { name: 'vLLM' },
        storageUri: `oci://image-registry.openshift-image-registry.svc:5000/private-ai-demo/mistral-small-24b:${run.servingTag}`,
        resources: { requests: { 'nvidia.com/gpu': 1 }, limits: { 'nvidia.com/gpu': 1 } },
      },
    });
    expect(isvc.storageUri).toBe(run.servingReference());
    // The runs sync before it: a PipelineRun is healthy to Argo CD once it succeeded, so the image is pushed first.
    expect(doc(docs, 'PipelineRun').metadata.annotations['argocd.argoproj.io/sync-wave']).toBe('2');
  });

  test('runtime, format version, resources, replicas, service account, args and annotations from props; another push target', () => {
    const chart = Testing.chart();
    const run = pinnedRun(chart);
    new ModelcarInferenceService(chart, 'isvc', {
      run,
      name: 'mistral-from-quay',
      pushTarget: 'quay',
      runtime: 'vllm-runtime',
      modelFormatVersion: '1',
      resources: {
        cpu: { request: kplus.Cpu.units(2), limit: kplus.Cpu.units(8) },
        memory: { request: Size.gibibytes(24), limit: Size.gibibytes(32) },
      },
      gpus: 2,
      gpuResourceName: 'amd.com/gpu',
      minReplicas: 0,
      maxReplicas: 3,
      serviceAccountName: 'quay-puller',
      args: ['--max-model-len=8192'],
      annotations: { 'serving.kserve.io/deploymentMode': 'RawDeployment' },
    });
    const served = doc(synth(chart), 'InferenceService');
    expect(served.metadata).toMatchObject({
      name: 'mistral-from-quay',
      annotations: { 'serving.kserve.io/deploymentMode': 'RawDeployment', 'argocd.argoproj.io/sync-wave': '3' },
    });
    expect(served.spec.predictor).toEqual({
      minReplicas: 0,
      maxReplicas: 3,
      serviceAccountName: 'quay-puller',
      model: {
        modelFormat: { name: 'vLLM', version: '1' },
        runtime: 'vllm-runtime',
        storageUri: `oci://quay.io/private-ai-demo/mistral-small-24b:${run.servingTag}`,
        args: ['--max-model-len=8192'],
        resources: {
          requests: { 'cpu': '2', 'memory': '24576Mi', 'amd.com/gpu': 2 },
          limits: { 'cpu': '8', 'memory': '32768Mi', 'amd.com/gpu': 2 },
        },
      },
    });
  });

  test('gpus 0 sets no resources; ArgoCdSync.none() on the pipeline writes no annotation', () => {
    const chart = Testing.chart();
    new ModelcarInferenceService(chart, 'cpu-only', { run: pinnedRun(chart, COMMIT, ArgoCdSync.none()), gpus: 0, modelFormat: 'sklearn' });
    const served = doc(synth(chart), 'InferenceService');
    expect(served.metadata.annotations).toBeUndefined();
    expect(served.spec.predictor.model).toEqual({ modelFormat: { name: 'sklearn' }, storageUri: expect.stringMatching(/^oci:\/\//) });
  });

  test('the schema check fails on what the API server would refuse: a misspelt field, a wrong type, a missing required field', () => {
    const chart = Testing.chart();
    new ModelcarInferenceService(chart, 'isvc', { run: pinnedRun(chart) });
    const served = doc(synth(chart), 'InferenceService');
    expect(validateKserveManifest(served)).toEqual([]);
    const typo = structuredClone(served);
    typo.spec.predictor.model.storageURI = typo.spec.predictor.model.storageUri;
    expect(validateKserveManifest(typo)).toEqual(['InferenceService/isvc /spec/predictor/model: must NOT have additional properties (storageURI)']);
    const type = structuredClone(served);
    type.spec.predictor.minReplicas = '1';
    expect(validateKserveManifest(type)).toEqual(['InferenceService/isvc /spec/predictor/minReplicas: must be integer']);
    const format = structuredClone(served);
    delete format.spec.predictor.model.modelFormat.name;
    expect(validateKserveManifest(format)).toEqual(['InferenceService/isvc /spec/predictor/model/modelFormat: must have required property \'name\'']);
  });

  test('fails when the run\'s revision is a branch, saying why', () => {
    const chart = Testing.chart();
    const run = pinnedRun(chart, 'main');
    expect(() => new ModelcarInferenceService(chart, 'isvc', { run })).toThrow(
      'inference service test/isvc: cannot serve run test/modelcar/quantized by a reference that cannot drift: modelcar run test/modelcar/quantized: '
      + 'no serving reference for revision "main": it is a branch or tag, which moves');
  });

  test('fails when the push target, name, gpus, replicas, resources or model format are wrong', () => {
    const chart = Testing.chart();
    const run = pinnedRun(chart);
    const make = (id: string, props: object) => () => new ModelcarInferenceService(chart, id, { run, ...props });
    expect(make('a', { pushTarget: 'docker-hub' })).toThrow(/the pipeline has no push target named "docker-hub": use one of "internal", "quay"/);
    expect(make('b', { name: '9-lives' })).toThrow('inference service test/b: name "9-lives" is not a DNS-1035 label');
    expect(make('c', { name: 'a'.repeat(64) })).toThrow(/is not a DNS-1035 label/);
    expect(make('d', { gpus: 1.5 })).toThrow('inference service test/d: gpus must be a whole number, 0 or more (got 1.5)');
    expect(make('e', { minReplicas: 2, maxReplicas: 1 })).toThrow('inference service test/e: maxReplicas 1 is below minReplicas 2 (or 1): raise maxReplicas');
    expect(make('f', { resources: { cpu: { request: kplus.Cpu.units(4), limit: kplus.Cpu.millis(500) } } }))
      .toThrow('inference service test/f: the CPU request 4 is above its limit 500m');
    expect(make('g', { resources: { memory: { request: Size.gibibytes(2), limit: Size.gibibytes(1) } } }))
      .toThrow('inference service test/g: the memory request 2048Mi is above its limit 1024Mi');
    expect(make('h', { modelFormat: ' ' })).toThrow(/modelFormat is empty/);
    expect(make('i', { resources: { ephemeralStorage: { request: Size.gibibytes(1) } } })).toThrow(/ephemeralStorage is not taken/);
  });
});
