/**
 * End to end: the modelcar runs on every node's architecture (issue #19 part 5). The synthesized pipeline, its
 * layout builder with its default platforms (linux/amd64 and linux/arm64), run by test/e2e/runner against the
 * world's two registries, on the world's base image: an image index of both platforms pinned by its index digest
 * (test/e2e/support/base-image.ts). What the registries serve afterwards is read back with skopeo, as a node's
 * CRI-O would resolve it for its own architecture (`--override-arch`).
 *
 * Missing tools or no root make the suite FAIL, never skip.
 */
import * as fs from 'fs';
import * as path from 'path';
import { Size } from 'cdk8s';
import { repositoryOf, runModelcar, startWorld, stopWorld, synthesizePipeline, World } from './world';
import { ModelcarBuilder } from '../../../src';
import { RunPipelineResult, sandboxSupport } from '../runner/tekton-runner';
import { pushBaseImage } from '../support/base-image';
import { SyntheticModel, writeSyntheticModel } from '../support/model-fixture';
import { LocalRegistry } from '../support/registry';
import { freshWorkDir, run } from '../support/tools';

jest.setTimeout(300_000);

const INDEX = 'application/vnd.oci.image.index.v1+json';

let work: string;
let world: World;
let model: SyntheticModel;

const stepLog = (r: RunPipelineResult, task: string, step: string) => r.tasks[task]?.steps.find((s) => s.name === step)?.log ?? '';
const auth = (registry: LocalRegistry) => ['--cert-dir', registry.certDir, '--authfile', registry.authFile];
const raw = async (registry: LocalRegistry, ref: string) => JSON.parse((await run('skopeo', ['inspect', '--raw', ...auth(registry), `docker://${ref}`])).stdout);
const logTo = (name: string) => (line: string) => fs.appendFileSync(path.join(work, `${name}.log`), `${line}\n`);

beforeAll(async () => {
  const support = sandboxSupport();
  if (!support.ok) throw new Error(`the e2e runner cannot run here: ${support.reason}`);
  work = freshWorkDir('multi-platform');
  world = await startWorld(work);
  // Three shards over the 4 MiB threshold, and the small files: four model layers.
  model = await writeSyntheticModel(path.join(work, 'model'), { totalBytes: 18 * 1024 * 1024, files: 3, seed: 'multi-platform' });
}, 120_000);

afterAll(async () => {
  await stopWorld(world);
});

describe('an image index: a manifest per platform, the model layers shared', () => {
  test('the pushed image is an index of linux/amd64 and linux/arm64 with the same model layers; each platform resolves; every result names the index', async () => {
    // GIVEN the default platforms and the world's two-platform base, pinned by its index digest
    const baseIndex = await raw(world.internal, world.base.reference);
    expect(baseIndex.mediaType).toBe(INDEX);
    const manifests = synthesizePipeline(world, path.join(work, 'dist'), {
      builder: ModelcarBuilder.ociLayout({ largeFileThreshold: Size.mebibytes(4) }),
      runs: [{ name: 'multi', tags: ['multi', 'multi-alias'] }],
    });

    // WHEN
    const r = await runModelcar(world, { manifests, pipelineRun: 'multi', workDir: path.join(work, 'runs'), model, log: logTo('multi') });

    // THEN the run succeeded and every digest it reports is the index's
    expect(r.status).toBe('Succeeded');
    const digest = r.tasks['build-image'].results.IMAGE_DIGEST;
    expect(stepLog(r, 'build-image', 'publish')).toContain(`image index ${digest} (2 platform manifests)`);
    expect(r.results).toMatchObject({ INTERNAL_IMAGE_DIGEST: digest, QUAY_IMAGE_DIGEST: digest, QUAY_IMAGE_REF: `${repositoryOf(world.quay)}@${digest}` });
    expect(r.tasks['push-quay'].results.IMAGE_DIGEST).toBe(digest);

    for (const registry of [world.internal, world.quay]) {
      for (const tag of ['multi', 'multi-alias']) {
        const ref = `${repositoryOf(registry)}:${tag}`;
        const { stdout } = await run('skopeo', ['inspect', '--raw', ...auth(registry), `docker://${ref}`]);
        // The registry serves the index under every tag, byte for byte the build's (skopeo copy --all --preserve-digests).
        expect({ ref, digest: (await run('sh', ['-c', 'printf %s "$1" | sha256sum', 'sh', stdout])).stdout.split(' ')[0] }).toEqual({ ref, digest: digest.slice(7) });
        const index = JSON.parse(stdout);
        expect(index.mediaType).toBe(INDEX);
        expect(index.manifests.map((m: any) => `${m.platform.os}/${m.platform.architecture}`)).toEqual(['linux/amd64', 'linux/arm64']);
        const [amd64, arm64] = await Promise.all(index.manifests.map((m: any) => raw(registry, `${repositoryOf(registry)}@${m.digest}`)));
        // Each on its own platform's base (the world's base manifests' layers), the model's layers identical.
        const baseLayers = await Promise.all(baseIndex.manifests.map(async (m: any) => (await raw(world.internal, `${world.base.reference.split('@')[0]}@${m.digest}`)).layers));
        expect(amd64.layers.slice(0, 1)).toEqual(baseLayers[0]);
        expect(arm64.layers.slice(0, 1)).toEqual(baseLayers[1]);
        expect(amd64.layers[0].digest).not.toBe(arm64.layers[0].digest);
        expect(amd64.layers.slice(1)).toHaveLength(4);
        expect(arm64.layers.slice(1)).toEqual(amd64.layers.slice(1));

        // A node of each architecture resolves its own manifest, with the labels the check reads.
        for (const [arch, manifest] of [['amd64', index.manifests[0]], ['arm64', index.manifests[1]]]) {
          const seen = JSON.parse((await run('skopeo', ['--override-os', 'linux', '--override-arch', arch, 'inspect', ...auth(registry), `docker://${ref}`])).stdout);
          const layers = (arch === 'amd64' ? amd64 : arm64).layers.map((l: any) => l.digest);
          expect({ ref, arch, architecture: seen.Architecture, os: seen.Os, layers: seen.Layers, model: seen.Labels['io.kserve.modelcar.model'] })
            .toEqual({ ref, arch, architecture: arch, os: 'linux', layers, model: 'e2e-org/synthetic-model' });
          // skopeo names the image by the index's digest whatever platform it resolved: what the check compares.
          expect(seen.Digest).toBe(digest);
          expect(manifest.digest).not.toBe(digest);
        }
      }
    }
    // The model's layers were written once (one line per layer in the build's log), and the report names the index.
    expect(stepLog(r, 'build-image', 'layers').match(/^layer \d+\/4: /gm)).toHaveLength(4);
    expect(stepLog(r, 'report-published', 'report')).toContain(`every target serves ${digest} under multi multi-alias`);
  });

  test('fails when the base image has one platform: the build names the platform it lacks, nothing is pushed', async () => {
    // GIVEN a single-platform base (this host's) pinned by its manifest digest
    const single = await pushBaseImage(world.internal, { workDir: path.join(work, 'single-base'), repository: 'base/single' });
    const manifests = synthesizePipeline(world, path.join(work, 'dist-single'), {
      baseImage: single.reference,
      runs: [{ name: 'single', tags: ['single'] }],
    });

    // WHEN
    const r = await runModelcar(world, { manifests, pipelineRun: 'single', workDir: path.join(work, 'runs-single'), model, log: logTo('single') });

    // THEN
    expect(r.status).toBe('Failed');
    expect(r.tasks['build-image'].status).toBe('Failed');
    const other = process.arch === 'arm64' ? 'amd64' : 'arm64';
    expect(stepLog(r, 'build-image', 'layers')).toMatch(new RegExp(`layout build failed: the base image for linux/${other} \\(sha256:[0-9a-f]{64}\\) is built for linux/${process.arch === 'arm64' ? 'arm64' : 'amd64'}: `
      + 'the base image must be an image index with a manifest for every platform \\(pin it by the index digest\\), or build for the platforms it has'));
    for (const registry of [world.internal, world.quay]) {
      const got = await run('skopeo', ['inspect', '--raw', ...auth(registry), `docker://${repositoryOf(registry)}:single`], { allowFailure: true });
      expect(got.code).not.toBe(0);
      expect(got.stderr).toMatch(/manifest unknown|name unknown/);
    }
  });
});
