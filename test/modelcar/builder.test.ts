import { Size, Testing } from 'cdk8s';
import { ModelcarBuilder, ModelcarPipeline, PushTarget } from '../../src';
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
