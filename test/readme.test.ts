/**
 * The README's shortest example, run as written: only the package import is pointed at src/ and the App is
 * given an output folder. Its manifests must validate against the Tekton schemas and pass shellcheck.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as yaml from 'js-yaml';
import { expectShellcheckClean } from './support/shellcheck';
import { expectValidTektonManifests } from './support/tekton-schema';

const root = path.resolve(__dirname, '..');

function exampleAfter(heading: string): string {
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  const at = readme.indexOf(heading);
  expect(at).toBeGreaterThanOrEqual(0);
  const block = /```ts\n([\s\S]*?)```/.exec(readme.slice(at));
  if (!block) throw new Error(`no ts block after ${heading}`);
  return block[1];
}

test('the shortest working example synthesizes valid Tekton v1 manifests', () => {
  const source = exampleAfter('## The shortest working example');
  expect(source).toContain("from 'cdk8s-modelcar-tekton'");
  expect(source).toContain('new App()');
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'readme-example-'));
  const dir = path.join(root, '.e2e-work', 'readme');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'example.ts');
  fs.writeFileSync(file, source
    .replace("from 'cdk8s-modelcar-tekton'", `from ${JSON.stringify(path.join(root, 'src'))}`)
    .replace('new App()', `new App({ outdir: ${JSON.stringify(outdir)} })`));
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    jest.isolateModules(() => require(file));
    const docs = fs.readdirSync(outdir).flatMap((f) => yaml.loadAll(fs.readFileSync(path.join(outdir, f), 'utf8')) as any[]);
    expect(docs.map((d) => `${d.kind}/${d.metadata.name}`)).toEqual(['Task/greet', 'Pipeline/hello', 'PipelineRun/hello-run']);
    expectValidTektonManifests(docs);
    expectShellcheckClean(docs);
    const pipeline = docs.find((d) => d.kind === 'Pipeline');
    expect(pipeline.spec.tasks[0].params).toEqual([{ name: 'who', value: '$(params.name)' }]);
  } finally {
    fs.rmSync(outdir, { recursive: true, force: true });
  }
});
