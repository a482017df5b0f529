import { Testing } from 'cdk8s';
import { ModelcarBuilder, ModelcarPipeline, PodLimits, PushTarget, RegistryCredentials, RegistryTrust } from '../../src';
import { buildDefaultApp } from '../../src/app/main';
import { TaskPodNeeds, taskPodNeeds } from '../support/pod-budget';
import { synth } from '../support/synth';

/**
 * Every shipped Task's pod starts and keeps its results, with room to spare: its place-scripts argument under half
 * the kernel's limit, and the longest termination message any step can write inside both Tekton's 4,096 bytes and
 * the kubelet's share. For the default app, a six-target pipeline with the longest names a registry allows, and the
 * buildah builder (the README's examples are held to the synth budget in test/readme.test.ts).
 */
const HALF_KERNEL_LIMIT = PodLimits.KERNEL_ARG_LIMIT / 2;

function expectRoomy(needs: TaskPodNeeds[]): void {
  expect(needs.length).toBeGreaterThan(0);
  for (const n of needs) {
    expect({ task: n.task, placeScripts: n.placeScriptsBytes }).toEqual({ task: n.task, placeScripts: expect.toBeBelow(HALF_KERNEL_LIMIT) });
    expect({ task: n.task, message: n.messageBytes }).toEqual({ task: n.task, message: expect.toBeBelow(Math.min(4096, n.shareBytes)) });
  }
}

expect.extend({
  toBeBelow(received: number, limit: number) {
    return { pass: received < limit, message: () => `expected ${received} to be below ${limit}` };
  },
});
declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace jest {
    interface Expect { toBeBelow(limit: number): any }
  }
}

/** A repository name of the longest length a registry allows (255 characters, the registry host included). */
function longRepository(host: string, i: number): string {
  const prefix = `${host}/team-${i}/`;
  return prefix + 'm'.repeat(255 - prefix.length);
}

function sixTargets(): PushTarget[] {
  const creds = (i: number) => RegistryCredentials.fromDockerConfigSecret(`push-credentials-${i}`);
  return [
    PushTarget.openshiftInternal({ namespace: 'n'.repeat(63), repository: 'r'.repeat(100) }),
    PushTarget.quay({ organization: 'o'.repeat(60), repository: 'q'.repeat(120), credentials: creds(1) }),
    ...[2, 3, 4, 5].map((i) => PushTarget.registry({
      name: `mirror-${i}-${'x'.repeat(40)}`,
      repository: longRepository(`registry-${i}.${'a'.repeat(50)}.example.com:5000`, i),
      credentials: creds(i),
      trust: RegistryTrust.fromConfigMap(`mirror-${i}-ca`),
    })),
  ];
}

describe('every shipped Task fits its pod with room to spare', () => {
  test('the default app', () => {
    const docs = buildDefaultApp().charts.flatMap((c) => c.toJson());
    expectRoomy(docs.filter((d) => d.kind === 'Task').map(taskPodNeeds));
  });

  test('six push targets with the longest repository names a registry takes', () => {
    const chart = Testing.chart();
    new ModelcarPipeline(chart, 'six', { pushTargets: sixTargets() });
    const tasks = synth(chart).filter((d) => d.kind === 'Task');
    expect(tasks).toHaveLength(6 + 5); // check, download, build, six pushes, report, clean-up
    expectRoomy(tasks.map(taskPodNeeds));
  });

  test('the buildah builder, six targets', () => {
    const chart = Testing.chart();
    new ModelcarPipeline(chart, 'buildah', { pushTargets: sixTargets(), builder: ModelcarBuilder.buildah() });
    expectRoomy(synth(chart).filter((d) => d.kind === 'Task').map(taskPodNeeds));
  });

  test('fails when a result has no known bound, and a report with a share too small for its results is caught', () => {
    // GIVEN: a task with an unknown result, and a made-up task whose results exceed its share
    const unknown = { metadata: { name: 't' }, spec: { steps: [{ name: 's', script: 'echo' }], results: [{ name: 'SOMETHING' }] } };
    expect(() => taskPodNeeds(unknown)).toThrow(/no longest value known for result SOMETHING/);
    const crowded = {
      metadata: { name: 'crowded' },
      spec: { steps: Array.from({ length: 14 }, (_, i) => ({ name: `s${i}`, script: 'echo' })), results: ['IMAGE_URL', 'IMAGE_REF', 'IMAGE_DIGEST'].map((name) => ({ name })) },
    };
    // THEN: 16 containers (prepare, place-scripts, 14 steps) share 12,288 bytes (768 each), the message needs more
    const needs = taskPodNeeds(crowded);
    expect(needs.shareBytes).toBe(768);
    expect(needs.messageBytes).toBeGreaterThan(needs.shareBytes);
  });
});
