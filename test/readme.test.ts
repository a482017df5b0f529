/**
 * The README's examples, run as written: only the package import is pointed at src/ and the App is given an
 * output folder (the modelcar example shows a body only: its imports, App and Chart are added around it).
 * Their manifests must validate against the Tekton schemas and pass shellcheck.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as yaml from 'js-yaml';
import { expectShellcheckClean } from './support/shellcheck';
import { expectValidTektonManifests } from './support/tekton-schema';

const root = path.resolve(__dirname, '..');
const src = JSON.stringify(path.join(root, 'src'));

function exampleAfter(heading: string): string {
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  const at = readme.indexOf(heading);
  if (at < 0) throw new Error(`README has no "${heading}"`);
  // A block may be indented (inside a list item): its fence's indentation is taken off every line.
  const block = /( *)```ts\n([\s\S]*?)\1```/.exec(readme.slice(at));
  if (!block) throw new Error(`no ts block after ${heading}`);
  return block[2].split('\n').map((l) => l.slice(block[1].length)).join('\n');
}

/** Writes `source(outdir)` to a file, runs it, and returns the documents it synthesized, validated. */
function runExample(name: string, source: (outdir: string) => string): any[] {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `readme-${name}-`));
  const outdir = path.join(dir, 'dist');
  // Outside the checkout, the example's own imports (cdk8s) resolve through this link to ours.
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'));
  const file = path.join(dir, `${name}.ts`);
  fs.writeFileSync(file, source(JSON.stringify(outdir)));
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    jest.isolateModules(() => require(file));
    const docs = fs.readdirSync(outdir).flatMap((f) => yaml.loadAll(fs.readFileSync(path.join(outdir, f), 'utf8')) as any[]);
    expectValidTektonManifests(docs);
    expectShellcheckClean(docs);
    return docs;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('the shortest working example synthesizes valid Tekton v1 manifests', () => {
  const example = exampleAfter('## The shortest working example');
  expect(example).toContain("from 'cdk8s-modelcar-tekton'");
  expect(example).toContain('new App()');
  const docs = runExample('example', (outdir) => example
    .replace("from 'cdk8s-modelcar-tekton'", `from ${src}`)
    .replace('new App()', `new App({ outdir: ${outdir} })`));
  expect(docs.map((d) => `${d.kind}/${d.metadata.name}`)).toEqual(['Task/greet', 'Pipeline/hello', 'PipelineRun/hello-run']);
  expect(docs.find((d) => d.kind === 'Pipeline').spec.tasks[0].params).toEqual([{ name: 'who', value: '$(params.name)' }]);
});

test('the modelcar pipeline example synthesizes valid manifests', () => {
  const body = exampleAfter('## The modelcar pipeline');
  const docs = runExample('modelcar', (outdir) => [
    "import { App, Chart, Duration, Size } from 'cdk8s';",
    `import { ModelcarPipeline, PushTarget, RegistryCredentials } from ${src};`,
    `const app = new App({ outdir: ${outdir} });`,
    "const chart = new Chart(app, 'demo');",
    body,
    'app.synth();',
  ].join('\n'));
  expect(docs.filter((d) => d.kind === 'PipelineRun').map((d) => d.spec.timeouts.pipeline)).toEqual(['2h40m0s']);
});

test('the GitOps walk-through\'s synth script writes the folder and the Argo CD Application', () => {
  const example = exampleAfter('### From an empty GitOps repository');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'readme-gitops-'));
  const outdir = path.join(dir, 'dist');
  // Outside the checkout, the example's own imports (cdk8s) resolve through this link to ours.
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'));
  const file = path.join(dir, 'gitops.ts');
  fs.writeFileSync(file, example
    .replace("from 'cdk8s-modelcar-tekton'", `from ${src}`)
    .replace("outdir: 'dist'", `outdir: ${JSON.stringify(outdir)}`));
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    jest.isolateModules(() => require(file));
    const written = fs.readdirSync(outdir, { recursive: true }) as string[];
    expect(written).toEqual(expect.arrayContaining(['kustomization.yaml', 'argocd-application.yaml', '02-pipeline/pipeline-modelcar.md']));
    const runs = fs.readdirSync(path.join(outdir, '03-runs')).filter((f) => f.startsWith('pipelinerun-'));
    expect(runs).toEqual([expect.stringMatching(/^pipelinerun-granite-2b-[0-9a-f]{10}\.yaml$/)]);
    const docs = ['01-tasks', '02-pipeline', '03-runs'].flatMap((d) => fs.readdirSync(path.join(outdir, d))
      .filter((f) => f !== 'kustomization.yaml' && f.endsWith('.yaml'))
      .flatMap((f) => yaml.loadAll(fs.readFileSync(path.join(outdir, d, f), 'utf8')) as any[]));
    expectValidTektonManifests(docs);
    const application = yaml.load(fs.readFileSync(path.join(outdir, 'argocd-application.yaml'), 'utf8')) as any;
    expect(application.spec.source).toEqual({ repoURL: 'https://github.com/acme/gitops.git', path: 'dist', targetRevision: 'main' });
    expect(application.spec.destination.namespace).toBe('private-ai-demo');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
