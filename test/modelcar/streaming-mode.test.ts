/**
 * The streaming publish mode's constructs (PublishMode.streaming(), StreamPublishTask, PushTask from a registry): what
 * they synthesize, what they refuse, and that what they synthesize passes the Tekton schemas, shellcheck, the image
 * inventory and the pod's limits. test/e2e/modelcar/streaming.test.ts runs it.
 */
import { Duration, Size, Testing } from 'cdk8s';
import {
  ModelcarBuilder, ModelcarPipeline, PodLimits, PublishMode, PushTarget, RegistryCredentials, StreamPublishTask, VolumeCleanup,
} from '../../src';
import { IMAGE_COMMANDS } from '../../src/modelcar/image-inventory';
import { taskPodNeeds } from '../support/pod-budget';
import { scriptCommands } from '../support/script-commands';
import { expectShellcheckClean } from '../support/shellcheck';
import { synth } from '../support/synth';
import { expectValidTektonManifests } from '../support/tekton-schema';

const COMMIT = '0123456789abcdef0123456789abcdef01234567';

function targets(): PushTarget[] {
  return [
    PushTarget.openshiftInternal({ namespace: 'models', repository: 'granite' }),
    PushTarget.quay({ organization: 'acme', repository: 'granite', credentials: RegistryCredentials.fromDockerConfigSecret('quay-push') }),
  ];
}

function streamingApp(mode: PublishMode = PublishMode.streaming()) {
  const chart = Testing.chart();
  const modelcar = new ModelcarPipeline(chart, 'modelcar', { pushTargets: targets(), publishMode: mode });
  const run = modelcar.addRun('granite', { model: { repo: 'ibm-granite/granite-3.1-2b-instruct', revision: COMMIT }, tags: ['v1'] });
  return { chart, modelcar, run, docs: synth(chart) };
}

describe('PublishMode', () => {
  test('streaming: defaults, and the memory bound it states', () => {
    const m = PublishMode.streaming();
    expect([m.streams, m.parallelLayers, m.rangesPerLayer, m.chunkBytes, m.retries]).toEqual([true, 4, 2, 16 * 2 ** 20, 0]);
    expect(m.memoryBoundBytes).toBe(4 * 3 * 16 * 2 ** 20);
    expect(m.memoryLimitBytes).toBe(m.memoryBoundBytes + 256 * 2 ** 20);
    expect(PublishMode.volume().streams).toBe(false);
  });

  test('refuses what a pod cannot hold or a step cannot use, with the fix', () => {
    expect(() => PublishMode.streaming({ parallelLayers: 0 })).toThrow(/parallelLayers must be a whole number from 1 to 32 \(got 0\)/);
    expect(() => PublishMode.streaming({ rangesPerLayer: 1.5 })).toThrow(/rangesPerLayer must be a whole number/);
    expect(() => PublishMode.streaming({ chunkSize: Size.kibibytes(512) })).toThrow(/chunkSize must be a whole number of KiB from 1 MiB to 512 MiB/);
    expect(() => PublishMode.streaming({ parallelLayers: 8, rangesPerLayer: 4, chunkSize: Size.mebibytes(64) }))
      .toThrow(/is 2560 MiB, and with the interpreter's 256 MiB the step would need 2816 MiB, over 2048 MiB .*lower one of them/);
    expect(() => PublishMode.streaming({ timeout: Duration.seconds(30) })).toThrow(/timeout must be at least 2 minutes/);
  });
});

describe('a streaming pipeline', () => {
  test('check, stream into the first target, copy to the next, report: no download, no build, no clean-up, no volume', () => {
    const { modelcar, docs } = streamingApp();
    const pipeline = docs.find((d) => d.kind === 'Pipeline');
    const byName = Object.fromEntries(pipeline.spec.tasks.map((t: any) => [t.name, t]));
    expect(Object.keys(byName)).toEqual(['check-published', 'stream-internal', 'push-quay', 'report-published']);
    expect(pipeline.spec.finally).toBeUndefined();
    expect(byName['stream-internal'].runAfter).toBeUndefined();
    expect(byName['push-quay'].runAfter).toEqual(['stream-internal']);
    expect(byName['push-quay'].params.find((p: any) => p.name === 'IMAGE_DIGEST').value).toBe('$(tasks.stream-internal.results.IMAGE_DIGEST)');
    expect(byName['report-published'].runAfter).toEqual(['push-quay']);
    expect(byName['stream-internal'].when).toEqual([{ input: '$(tasks.check-published.results.REBUILD)', operator: 'in', values: ['true'] }]);
    expect(docs.filter((d) => d.kind === 'Task').map((d) => d.metadata.name).sort()).toEqual([
      'modelcar-check-published', 'modelcar-push-quay', 'modelcar-report-published', 'modelcar-stream-publish',
    ]);
    const run = docs.find((d) => d.kind === 'PipelineRun');
    expect(run.spec.workspaces).toEqual([{ name: 'shared', emptyDir: {} }]);
    expect(run.metadata.annotations?.['tekton.dev/auto-cleanup-pvc']).toBeUndefined();
    expect(JSON.stringify(docs)).not.toMatch(/volumeClaimTemplate|persistentVolumeClaim/);
    // The run's timeout covers the check, the stream, the push and the report in a row.
    expect(modelcar.tasksTimeout.toSeconds()).toBe(2 * 300 + 3600 + targets()[1].timeout.toSeconds());
    expect(modelcar.streamTask?.name).toBe('stream-internal');
    expect(modelcar.pushTasks.map((t) => t.name)).toEqual(['push-quay']);
  });

  test('the stream step: its memory request and limit are the stated bound, its env carries no param inline', () => {
    const { docs } = streamingApp(PublishMode.streaming({ parallelLayers: 2, rangesPerLayer: 3, chunkSize: Size.mebibytes(8) }));
    const task = docs.find((d) => d.kind === 'Task' && d.metadata.name === 'modelcar-stream-publish');
    const step = task.spec.steps.find((s: any) => s.name === 'stream');
    expect(step.computeResources).toEqual({ requests: { memory: '320Mi' }, limits: { memory: '320Mi' } });
    const env = Object.fromEntries(step.env.map((e: any) => [e.name, e.value ?? e.valueFrom]));
    expect(env).toMatchObject({
      IMAGE: 'image-registry.openshift-image-registry.svc:5000/models/granite',
      STREAM_LAYERS: '2',
      STREAM_RANGES: '3',
      STREAM_CHUNK_BYTES: String(8 * 2 ** 20),
      PLATFORMS: 'linux/amd64 linux/arm64',
      AUTH_MODE: 'service-account-token',
      BASE_AUTH_MODE: 'service-account',
      HF_REVISION: '$(params.MODEL_REVISION)',
      BUILD_CONFIG: '$(params.BUILD_CONFIG)',
    });
    expect(step.script).not.toContain('$(params.');
  });

  test('the push after the stream copies from the first target by digest, with that target\'s credentials', () => {
    const { docs } = streamingApp();
    const task = docs.find((d) => d.kind === 'Task' && d.metadata.name === 'modelcar-push-quay');
    const push = task.spec.steps.find((s: any) => s.name === 'push');
    const env = Object.fromEntries(push.env.map((e: any) => [e.name, e.value]));
    expect(env).toMatchObject({
      SOURCE_IMAGE: 'image-registry.openshift-image-registry.svc:5000/models/granite',
      SOURCE_AUTH_MODE: 'service-account-token',
      AUTH_MODE: 'secret',
      SOURCE_TLS_VERIFY: 'true',
    });
    // No artifact on a volume to check: the preamble is the plain one.
    expect(task.spec.steps[0].env.find((e: any) => e.name === 'ARTIFACT_PATH')).toBeUndefined();
  });

  test('the same build configuration, and so the same serving tag, as the volume mode', () => {
    const streamed = streamingApp();
    const chart = Testing.chart();
    const volume = new ModelcarPipeline(chart, 'modelcar', { pushTargets: targets() });
    const run = volume.addRun('granite', { model: { repo: 'ibm-granite/granite-3.1-2b-instruct', revision: COMMIT }, tags: ['v1'] });
    expect(streamed.modelcar._buildConfigSpec).toBe(volume._buildConfigSpec);
    expect(streamed.run.servingTag).toBe(run.servingTag);
    expect(streamed.run.servingReference('quay')).toBe(run.servingReference('quay'));
  });

  test('passes the Tekton v1 schemas, shellcheck, and every step calls only what its image has', () => {
    const { docs } = streamingApp();
    expectValidTektonManifests(docs);
    expectShellcheckClean(docs);
    const missing: string[] = [];
    for (const t of docs.filter((d) => d.kind === 'Task')) {
      for (const s of t.spec.steps) {
        const inventory = IMAGE_COMMANDS[(s.image as string).split('@')[0]];
        expect(inventory).toBeDefined();
        for (const cmd of scriptCommands(s.script)) if (!inventory.includes(cmd)) missing.push(`${t.metadata.name}/${s.name}: ${cmd}`);
      }
    }
    expect(missing).toEqual([]);
  });

  test('every Task fits its pod: the stream within the synth budget with 12 KiB to spare, the others under half the kernel\'s limit', () => {
    const { docs } = streamingApp();
    for (const needs of docs.filter((d) => d.kind === 'Task').map(taskPodNeeds)) {
      // The stream step carries the hub client, the registry client and the image writer in one script (one pod:
      // no volume to hand anything to another task): 109,614 bytes of place-scripts when written, 13,266 bytes
      // under the synth budget, which keeps 8 KiB more for Tekton's debug scripts and a sidecar's.
      const limit = needs.task === 'modelcar-stream-publish' ? PodLimits.PLACE_SCRIPTS_BUDGET - 12 * 1024 : PodLimits.KERNEL_ARG_LIMIT / 2;
      expect({ task: needs.task, below: needs.placeScriptsBytes < limit }).toEqual({ task: needs.task, below: true });
      expect(needs.messageBytes).toBeLessThan(Math.min(4096, needs.shareBytes));
    }
  });

  test('refuses the volume mode\'s options, a builder that needs a volume, and a run\'s volume, with the fix', () => {
    const streaming = PublishMode.streaming();
    expect(() => new ModelcarPipeline(Testing.chart(), 'm', { pushTargets: targets(), publishMode: streaming, volumeCleanup: VolumeCleanup.never(), buildTimeout: Duration.hours(2) }))
      .toThrow(/volumeCleanup, buildTimeout configure the volume mode, and publishMode is PublishMode.streaming\(\)/);
    expect(() => new ModelcarPipeline(Testing.chart(), 'm', { pushTargets: targets(), publishMode: streaming, builder: ModelcarBuilder.buildah() }))
      .toThrow(/the streaming mode sends the OCI layout builder's image; builder buildah builds on a volume/);
    const { modelcar } = streamingApp();
    expect(() => modelcar.addRun('x', { model: { repo: 'a/b' }, tags: ['t'], storage: Size.gibibytes(5) }))
      .toThrow(/storage configure the run's volume, and the pipeline streams \(PublishMode.streaming\(\): no volume\): drop them/);
    expect(() => modelcar.buildTask).toThrow(/buildTask exists in the volume mode only, and publishMode is PublishMode.streaming\(\)/);
    expect(() => modelcar.downloadModel).toThrow(/downloadModel exists in the volume mode only/);
    expect(() => new StreamPublishTask(Testing.chart(), 's', { target: targets()[0], mode: PublishMode.volume() })).toThrow(/mode is PublishMode.volume\(\)/);
    expect(() => new StreamPublishTask(Testing.chart(), 's', { target: targets()[0], hubEndpoint: 'http://hub.local' })).toThrow(/is not https/);
  });
});
