import { Size, Testing } from 'cdk8s';
import { ImagePlatform, ModelcarBuilder, ModelcarPipeline, PushTarget } from '../../src';
import { doc, synth } from '../support/synth';

describe('ModelcarBuilder.ociLayout', () => {
  test('the layer cap: 125 by default (Docker\'s), passed to the layers step and part of the build configuration', () => {
    // GIVEN
    const chart = Testing.chart();
    const pipeline = (id: string, builder?: ModelcarBuilder) => new ModelcarPipeline(chart, id, {
      name: id, builder, pushTargets: [PushTarget.openshiftInternal({ namespace: 'ai' })],
    });

    // WHEN
    const dflt = pipeline('a');
    const capped = pipeline('b', ModelcarBuilder.ociLayout({ maxLayers: 500 }));

    // THEN
    expect(ModelcarBuilder.ociLayout().maxLayers).toBe(125);
    expect(ModelcarBuilder.buildah().maxLayers).toBeUndefined();
    expect(dflt.buildImage.buildConfigSpec).toContain('\nmax layers: 125\n');
    expect(capped.buildImage.buildConfigSpec).toContain('\nmax layers: 500\n');
    const docs = synth(chart);
    const layers = (task: string) => doc(docs, 'Task', task).spec.steps.find((s: any) => s.name === 'layers').env;
    expect(layers('a-build-image')).toContainEqual({ name: 'MAX_LAYERS', value: '125' });
    expect(layers('b-build-image')).toContainEqual({ name: 'MAX_LAYERS', value: '500' });
    // The buildah builder has no cap: buildah writes one layer for the model.
    expect(pipeline('c', ModelcarBuilder.buildah()).buildImage.buildConfigSpec).not.toContain('max layers');
  });

  test.each([1, 0, -3, 501, 2.5, NaN])('fails when maxLayers is %p', (maxLayers) => {
    expect(() => ModelcarBuilder.ociLayout({ maxLayers })).toThrow(
      `oci layout builder: maxLayers must be a whole number from 2 (a base layer and a model layer) to 500 (overlayfs stacks no more) (got ${maxLayers}): `
      + 'keep the default 125 for images that also run on Docker');
  });

  test('the bounds themselves are accepted', () => {
    expect(ModelcarBuilder.ociLayout({ maxLayers: 2 }).maxLayers).toBe(2);
    expect(ModelcarBuilder.ociLayout({ maxLayers: 500, largeFileThreshold: Size.mebibytes(1) }).maxLayers).toBe(500);
  });
});

describe('platforms of the OCI layout builder', () => {
  const pipeline = (chart: any, id: string, builder?: ModelcarBuilder) => new ModelcarPipeline(chart, id, {
    name: id, builder, pushTargets: [PushTarget.openshiftInternal({ namespace: 'ai' })],
  });
  const stepEnv = (docs: any[], task: string, step: string) => doc(docs, 'Task', task).spec.steps.find((s: any) => s.name === step).env;

  test('linux/amd64 and linux/arm64 by default, passed to the base and layers steps and part of the build configuration', () => {
    // GIVEN
    const chart = Testing.chart();

    // WHEN
    const dflt = pipeline(chart, 'a');
    const one = pipeline(chart, 'b', ModelcarBuilder.ociLayout({ platforms: [ImagePlatform.LINUX_ARM64] }));
    const docs = synth(chart);

    // THEN
    expect(ModelcarBuilder.ociLayout().platforms!.map(String)).toEqual(['linux/amd64', 'linux/arm64']);
    for (const step of ['base', 'layers']) {
      expect(stepEnv(docs, 'a-build-image', step)).toContainEqual({ name: 'PLATFORMS', value: 'linux/amd64 linux/arm64' });
      expect(stepEnv(docs, 'b-build-image', step)).toContainEqual({ name: 'PLATFORMS', value: 'linux/arm64' });
    }
    expect(dflt.buildImage.buildConfigSpec).toContain('\nplatforms: linux/amd64 linux/arm64\n');
    expect(one.buildImage.buildConfigSpec).toContain('\nplatforms: linux/arm64\n');
    // The default base is pinned by an image index digest (each platform's manifest comes from it).
    expect(stepEnv(docs, 'a-build-image', 'base')).toContainEqual({
      name: 'BASE_IMAGE', value: 'registry.access.redhat.com/ubi9/ubi-micro@sha256:a22fffe0256af00176c8b4f22eec5d8ecb1cb1684d811c33b1f2832fd573260f',
    });
  });

  test('the buildah builder builds the node\'s platform: no platforms, nothing in its build configuration', () => {
    const chart = Testing.chart();
    const b = pipeline(chart, 'c', ModelcarBuilder.buildah());
    expect(ModelcarBuilder.buildah().platforms).toBeUndefined();
    expect(b.buildImage.buildConfigSpec).not.toContain('platforms');
    expect(JSON.stringify(doc(synth(chart), 'Task', 'c-build-image'))).not.toContain('PLATFORMS');
  });

  test('platforms are copied in and out: changing the given or the returned array changes nothing', () => {
    const given = [ImagePlatform.LINUX_AMD64];
    const builder = ModelcarBuilder.ociLayout({ platforms: given });
    given.push(ImagePlatform.LINUX_ARM64);
    builder.platforms!.push(ImagePlatform.LINUX_ARM64);
    expect(builder.platforms!.map(String)).toEqual(['linux/amd64']);
  });

  test('ImagePlatform.of: os, architecture and variant in the OCI words', () => {
    expect(ImagePlatform.of('linux', 'arm64', 'v8').toString()).toBe('linux/arm64/v8');
    expect(ImagePlatform.of('linux', 'ppc64le').toString()).toBe('linux/ppc64le');
    expect(() => ImagePlatform.of('linux', 'ARM64')).toThrow(
      'image platform: architecture "ARM64" is not a lowercase word (letters, digits, _): use the OCI words, e.g. linux/arm64/v8');
    expect(() => ImagePlatform.of('linux/arm64', 'v8')).toThrow('image platform: os "linux/arm64" is not a lowercase word');
    expect(() => ImagePlatform.of('linux', 'arm64', '')).toThrow('image platform: variant "" is not a lowercase word');
  });

  test('fails when platforms is empty', () => {
    expect(() => ModelcarBuilder.ociLayout({ platforms: [] })).toThrow(
      'oci layout builder: platforms is empty: give at least one, e.g. [ImagePlatform.LINUX_AMD64]');
  });

  test('fails when a platform is given twice', () => {
    expect(() => ModelcarBuilder.ociLayout({ platforms: [ImagePlatform.LINUX_ARM64, ImagePlatform.LINUX_AMD64, ImagePlatform.of('linux', 'arm64')] })).toThrow(
      'oci layout builder: platform linux/arm64 is given twice in platforms (linux/arm64, linux/amd64, linux/arm64)');
  });
});
