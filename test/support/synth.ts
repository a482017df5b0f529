import { Chart, Testing } from 'cdk8s';
import { expectValidKserveManifests } from './kserve-schema';
import { expectShellcheckClean } from './shellcheck';
import { expectValidTektonManifests } from './tekton-schema';

/**
 * The messages of every construct validation in the chart (what `app.synth()` would
 * refuse to write), each prefixed with nothing: the messages name their construct.
 */
export function validationErrors(chart: Chart): string[] {
  return chart.node.findAll().flatMap((c) => c.node.validate());
}

/**
 * Synthesizes a chart the way `cdk8s synth` does (construct validations first), then
 * checks every manifest against the Tekton v1 schemas and every InferenceService against
 * KServe's CRD (unknown fields rejected), and every step script with shellcheck. Every test
 * that synthesizes goes through here.
 */
export function synth(chart: Chart): any[] {
  const errors = validationErrors(chart);
  if (errors.length > 0) {
    throw new Error(`validation failed:\n${errors.map((e) => `  ${e}`).join('\n')}`);
  }
  const docs = Testing.synth(chart);
  expectValidTektonManifests(docs);
  expectValidKserveManifests(docs);
  expectShellcheckClean(docs);
  return docs;
}

/** The single document of a kind (and name, if given). */
export function doc(docs: any[], kind: string, name?: string): any {
  const found = docs.filter((d) => d.kind === kind && (name === undefined || d.metadata?.name === name));
  if (found.length !== 1) {
    throw new Error(`expected one ${kind}${name ? ` named ${name}` : ''}, found ${found.length}`);
  }
  return found[0];
}
