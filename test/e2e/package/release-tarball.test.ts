/**
 * The package as users get it: the release tarball, installed from scratch into a new cdk8s
 * TypeScript app beside cdk8s-cli and the peers from the npm registry, then `cdk8s synth`.
 *
 * The tarball is built like the release build builds it (projen's compile, post-compile and
 * package tasks: the step scripts reach lib/ only through post-compile), in a copy of the
 * working tree, so the checkout is left as it was and the tests are not run again (the
 * release build runs this test). `MODELCAR_RELEASE_TARBALL=<path>` checks that tarball
 * instead, e.g. the one `npx projen build` wrote to artifacts/js/ (`.ci/run` does).
 *
 * Needs git, tar, npm and the npm registry; it fails, not skips, without them.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as yaml from 'js-yaml';
import { argoCdSyncOrder, readmeBlock, runsBeforeTheirDefinitions } from '../../support/readme';
import { expectShellcheckClean } from '../../support/shellcheck';
import { expectValidTektonManifests } from '../../support/tekton-schema';
import { freshWorkDir, requireTools, run } from '../support/tools';

const root = path.resolve(__dirname, '..', '..', '..');
const PACKAGE = 'cdk8s-modelcar-tekton';

/** What a user needs, and nothing else: npm adds package.json; lib/ holds compiled code and the step scripts. */
const ALLOWED = /^package\/(package\.json|README\.md|LICENSE|API\.md|\.jsii|lib\/.+\.(js|d\.ts)|lib\/modelcar\/scripts\/[^/]+)$/;

/**
 * npm's cache and logs (npm, npx) stay in the work dir, removed with it, not in the user's ~/.npm.
 */
function npmEnv(work: string): NodeJS.ProcessEnv {
  return { ...process.env, npm_config_cache: path.join(work, 'npm-cache'), npm_config_update_notifier: 'false' };
}

/** Copies the working tree as git sees it (tracked and new files, not ignored ones) to `dest`. */
async function copyWorkingTree(dest: string): Promise<void> {
  const listed = await run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: root });
  for (const file of listed.stdout.split('\0').filter(Boolean)) {
    const from = path.join(root, file);
    if (!fs.existsSync(from)) continue; // deleted in the working tree, not yet in git
    fs.mkdirSync(path.dirname(path.join(dest, file)), { recursive: true });
    fs.copyFileSync(from, path.join(dest, file));
  }
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(dest, 'node_modules'));
}

/** Builds the release tarball in a copy of the working tree under `work`; returns its path. */
async function buildTarball(work: string): Promise<string> {
  const source = path.join(work, 'source');
  await copyWorkingTree(source);
  for (const task of ['compile', 'post-compile', 'package']) {
    await run('npx', ['projen', task], { cwd: source, env: npmEnv(work), timeoutMs: 300_000 });
  }
  const dir = path.join(source, 'artifacts', 'js');
  const tarballs = fs.readdirSync(dir).filter((f) => f.endsWith('.tgz'));
  if (tarballs.length !== 1) throw new Error(`expected one tarball in ${dir}, found ${JSON.stringify(tarballs)}`);
  return path.join(dir, tarballs[0]);
}

/** The version of `name` this repository's lock installed: the app gets the same, so only our changes move this test. */
function lockedVersion(name: string): string {
  return JSON.parse(fs.readFileSync(path.join(root, 'node_modules', name, 'package.json'), 'utf8')).version;
}

/** A new cdk8s TypeScript app, as `cdk8s init typescript-app` lays it out, using the public API the README shows. */
function writeApp(dir: string, tarball: string): void {
  fs.mkdirSync(dir, { recursive: true });
  const deps = (names: string[]) => Object.fromEntries(names.map((n) => [n, lockedVersion(n)]));
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({
    name: 'my-modelcars',
    version: '1.0.0',
    private: true,
    scripts: { synth: 'cdk8s synth' },
    dependencies: { ...deps(['cdk8s', 'cdk8s-plus-28', 'constructs']), [PACKAGE]: `file:${tarball}` },
    devDependencies: deps(['cdk8s-cli', 'typescript', 'ts-node', '@types/node']),
  }, null, 2));
  fs.writeFileSync(path.join(dir, 'cdk8s.yaml'), 'language: typescript\napp: npx ts-node main.ts\n');
  writeTsconfig(dir);
  fs.writeFileSync(path.join(dir, 'main.ts'), CONSUMER_MAIN);
}

/** The tsconfig.json `cdk8s init typescript-app` writes (strict). */
function writeTsconfig(dir: string): void {
  fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      target: 'ES2017',
      module: 'CommonJS',
      lib: ['es2016'],
      strict: true,
      alwaysStrict: true,
      noImplicitAny: true,
      noImplicitReturns: true,
      noUnusedLocals: true,
      noUnusedParameters: true,
      declaration: true,
      experimentalDecorators: true,
      resolveJsonModule: true,
    },
    include: ['**/*.ts'],
    exclude: ['node_modules'],
  }, null, 2));
}

const CONSUMER_MAIN = `import { App, Chart, Duration, Size } from 'cdk8s';
import { ImageResult, ModelcarPipeline, ParamValue, PushTarget, RegistryCredentials, RegistryTrust, Task } from '${PACKAGE}';

const app = new App();
const chart = new Chart(app, 'models', { namespace: 'private-ai-demo', disableResourceNameHashes: true });

// Our own task, after the pushes: record the image in the model registry.
const register = new Task(chart, 'register', { name: 'register-model' });
const imageRef = register.addParam('IMAGE_REF', { description: 'The image, by digest' });
register.addStep({
  name: 'register',
  image: 'registry.access.redhat.com/ubi9/ubi-micro@sha256:71c7ec827876417693bd3feb615a5c70753b78667cb27c17cb3a5346a6955da5',
  env: { IMAGE_REF: imageRef.envValue() },
  script: '#!/bin/sh\\nset -eu\\necho "registering \${IMAGE_REF}"\\n',
});

function modelcar(id: string, repository: string): ModelcarPipeline {
  const pipeline = new ModelcarPipeline(chart, id, {
    name: \`\${id}-modelcar\`,
    pushTargets: [
      PushTarget.openshiftInternal({ namespace: 'private-ai-demo', repository }),
      PushTarget.quay({ organization: 'private-ai-demo', repository,
        credentials: RegistryCredentials.fromDockerConfigSecret('quay-push-credentials') }),
      PushTarget.registry({ name: 'mirror', repository: \`registry.example.com:5000/models/\${repository}\`,
        credentials: RegistryCredentials.fromDockerConfigSecret('mirror-push-credentials'),
        trust: RegistryTrust.fromConfigMap('mirror-ca') }),
    ],
    buildTimeout: Duration.minutes(30),
  });
  // The report task's result: set whether the run built the image or found it published.
  pipeline.addTask('register', { task: register, params: { IMAGE_REF: ParamValue.string(pipeline.imageResult('mirror', ImageResult.REF)) } });
  return pipeline;
}

const mistral = modelcar('mistral', 'mistral-small-24b');
mistral.addRun('quantized', {
  name: 'mistral-quantized',
  model: { repo: 'RedHatAI/Mistral-Small-24B-Instruct-2501-quantized.w4a16', include: ['*.safetensors', '*.json'] },
  tags: ['quantized-w4a16'],
  storage: Size.gibibytes(150),
});
mistral.addRun('full', {
  name: 'mistral-full',
  model: { repo: 'mistralai/Mistral-Small-24B-Instruct-2501', exclude: ['consolidated.safetensors'] },
  tags: ['full'],
  existingClaim: 'mistral-cache',
  timeout: Duration.hours(4),
});
const granite = modelcar('granite', 'granite-3-8b');
granite.addRun('granite', {
  name: 'granite',
  model: { repo: 'ibm-granite/granite-3.1-8b-instruct', revision: 'main', exclude: ['*.bin', 'original/*'] },
  tags: ['granite-3.1-8b-instruct'],
  existingClaim: 'granite-cache',
});

app.synth();
`;

let work: string;
let tarball: string;
let entries: string[];
let installed: Promise<string> | undefined;

/** The consumer app, installed once from the tarball (its node_modules serve the README's apps too). */
function consumerApp(): Promise<string> {
  installed ??= (async () => {
    const app = path.join(work, 'app');
    writeApp(app, tarball);
    await run('npm', ['install', '--no-audit', '--no-fund'], { cwd: app, env: npmEnv(work), timeoutMs: 600_000 });
    return app;
  })();
  return installed;
}

/** Writes a cdk8s project (cdk8s.yaml, main.ts) beside the consumer app, with its packages, and runs `cdk8s synth`; returns its dist/. */
async function cdk8sSynth(name: string, cdk8sYaml: string, main: string): Promise<string> {
  const consumer = await consumerApp();
  const dir = path.join(work, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.symlinkSync(path.join(consumer, 'node_modules'), path.join(dir, 'node_modules'));
  fs.writeFileSync(path.join(dir, 'cdk8s.yaml'), cdk8sYaml);
  fs.writeFileSync(path.join(dir, 'main.ts'), main);
  writeTsconfig(dir);
  await run(path.join(consumer, 'node_modules', '.bin', 'cdk8s'), ['synth'], { cwd: dir, env: npmEnv(work), timeoutMs: 300_000 });
  return path.join(dir, 'dist');
}

/** The objects `kubectl kustomize` renders from the YAML files of `dir` (a kustomization listing them is written there). */
async function kustomize(dir: string, files: string[]): Promise<any[]> {
  fs.writeFileSync(path.join(dir, 'kustomization.yaml'), yaml.dump({ apiVersion: 'kustomize.config.k8s.io/v1beta1', kind: 'Kustomization', resources: files }));
  return yaml.loadAll((await run('kubectl', ['kustomize', dir])).stdout) as any[];
}

beforeAll(async () => {
  work = freshWorkDir('release-tarball');
  tarball = process.env.MODELCAR_RELEASE_TARBALL
    ? path.resolve(process.env.MODELCAR_RELEASE_TARBALL)
    : await buildTarball(work);
  entries = (await run('tar', ['tzf', tarball])).stdout.split('\n').filter(Boolean);
}, 600_000);

describe('the release tarball', () => {
  test('holds only what users need: lib (compiled code and step scripts), .jsii, README, LICENSE, API.md', () => {
    expect(entries.filter((e) => !ALLOWED.test(e))).toEqual([]);
    for (const f of ['package.json', 'README.md', 'LICENSE', 'API.md', '.jsii', 'lib/index.js', 'lib/index.d.ts']) {
      expect(entries).toContain(`package/${f}`);
    }
    // The step scripts are read at synth: without them `new ModelcarPipeline` throws ENOENT.
    for (const script of fs.readdirSync(path.join(root, 'src', 'modelcar', 'scripts'))) {
      expect(entries).toContain(`package/lib/modelcar/scripts/${script}`);
    }
  });

  test('installs into a new cdk8s app beside cdk8s-cli, and cdk8s synth of two pipelines gives valid manifests', async () => {
    const app = await consumerApp();
    await run(path.join(app, 'node_modules', '.bin', 'cdk8s'), ['synth'], { cwd: app, env: npmEnv(work), timeoutMs: 300_000 });

    const dist = path.join(app, 'dist');
    const docs = fs.readdirSync(dist).filter((f) => f.endsWith('.yaml'))
      .flatMap((f) => yaml.loadAll(fs.readFileSync(path.join(dist, f), 'utf8')) as any[]);
    expectValidTektonManifests(docs);
    expectShellcheckClean(docs);

    const names = (kind: string) => docs.filter((d) => d.kind === kind).map((d) => d.metadata.name).sort();
    expect(names('Pipeline')).toEqual(['granite-modelcar', 'mistral-modelcar']);
    // Each run is named from its inputs: the variant, then a hash.
    expect(names('PipelineRun')).toEqual([
      expect.stringMatching(/^granite-[0-9a-f]{10}$/), expect.stringMatching(/^mistral-full-[0-9a-f]{10}$/), expect.stringMatching(/^mistral-quantized-[0-9a-f]{10}$/),
    ]);
    expect(names('Task')).toHaveLength(2 * 8 + 1); // check, download, build, three pushes, report, clean-up per pipeline; the user's task
    for (const pipeline of docs.filter((d) => d.kind === 'Pipeline')) {
      const order = pipeline.spec.tasks.map((t: any) => [t.name, t.runAfter?.[0]]);
      expect(order).toEqual([
        ['check-published', undefined], ['download-model', undefined], ['build-image', 'download-model'], ['push-internal', 'build-image'],
        ['push-quay', 'push-internal'], ['push-mirror', 'push-quay'], ['report-published', 'push-mirror'], ['register', 'report-published'],
      ]);
      const register = pipeline.spec.tasks.find((t: any) => t.name === 'register');
      expect(register.taskRef).toEqual({ name: 'register-model', kind: 'Task' });
      expect(register.params).toEqual([{ name: 'IMAGE_REF', value: expect.stringMatching(/^registry\.example\.com:5000\/models\/[\w.-]+@\$\(tasks\.report-published\.results\.IMAGE_DIGEST\)$/) }]);
    }
    const run_ = (variant: string) => docs.find((d) => d.kind === 'PipelineRun' && d.metadata.name.startsWith(`${variant}-`)
      && /^[0-9a-f]{10}$/.test(d.metadata.name.slice(variant.length + 1))).spec;
    const param = (name: string, p: string) => run_(name).params.find((x: any) => x.name === p).value;
    expect(param('mistral-quantized', 'MODEL_INCLUDE')).toBe('*.safetensors *.json');
    expect(param('mistral-full', 'MODEL_EXCLUDE')).toBe('consolidated.safetensors');
    expect(param('granite', 'MODEL_EXCLUDE')).toBe('*.bin original/*');
    expect(run_('mistral-full').workspaces).toEqual([{ name: 'shared', persistentVolumeClaim: { claimName: 'mistral-cache' } }]);
    expect(run_('granite').workspaces).toEqual([{ name: 'shared', persistentVolumeClaim: { claimName: 'granite-cache' } }]);
    expect(run_('mistral-quantized').workspaces[0].volumeClaimTemplate.spec.resources.requests.storage).toBe('150Gi');
  }, 900_000);

  test('the README\'s GitOps example, a cdk8s.yaml project: cdk8s synth writes the waves and options, and Argo CD creates every run after its Pipeline and Tasks', async () => {
    // GIVEN a real kustomize (kubectl's), as Argo CD renders a folder with a kustomization
    requireTools(['kubectl']);
    const main = readmeBlock('### From an empty GitOps repository');

    // WHEN
    const dist = await cdk8sSynth('readme-app', readmeBlock('### From an empty GitOps repository', 'yaml'), main);

    // THEN the synthesized file, rendered by kustomize, holds the Argo CD annotations of every object
    const files = fs.readdirSync(dist).filter((f) => f.endsWith('.k8s.yaml'));
    expect(files).toEqual(['models.k8s.yaml']);
    const docs = await kustomize(dist, files);
    expectValidTektonManifests(docs);
    expect(docs.map((d) => d.kind).sort()).toEqual(['Pipeline', 'PipelineRun', ...Array(7).fill('Task')]);
    for (const d of docs) {
      // The run also asks Tekton (1.11+) to delete its volume when it ends: the default VolumeCleanup.
      expect([d.kind, d.metadata.namespace, d.metadata.annotations]).toEqual([d.kind, 'private-ai-demo', d.kind === 'PipelineRun'
        ? {
          'argocd.argoproj.io/sync-wave': '2',
          'argocd.argoproj.io/sync-options': 'Prune=false',
          'argocd.argoproj.io/compare-options': 'IgnoreExtraneous',
          'tekton.dev/auto-cleanup-pvc': 'true',
        }
        : { 'argocd.argoproj.io/sync-wave': '1' }]);
    }
    // Argo CD applies by wave, then kind, then name, and waits between waves: the run comes after
    // the Pipeline and all its Tasks (by name alone, granite-2b-... would come first).
    const ordered = argoCdSyncOrder(docs);
    expect(runsBeforeTheirDefinitions(ordered)).toEqual([]);
    expect(ordered[ordered.length - 1].metadata.name).toMatch(/^granite-2b-[0-9a-f]{10}$/);
    expect(docs.find((d) => d.kind === 'PipelineRun').spec.taskRunTemplate.podTemplate.securityContext).toEqual({ fsGroupChangePolicy: 'OnRootMismatch' });

    // AND the next step (GitOpsLayout in place of app.synth(), still under cdk8s synth) writes the same objects in its folders
    const layout = await cdk8sSynth('readme-layout', readmeBlock('### From an empty GitOps repository', 'yaml'), main
      .replace('import { ModelcarPipeline,', 'import { GitOpsLayout, ModelcarPipeline,')
      .replace('app.synth();', readmeBlock('### The next step: a folder per kind')));
    const rendered = yaml.loadAll((await run('kubectl', ['kustomize', layout])).stdout) as any[];
    const key = (d: any) => `${d.kind}/${d.metadata.name}`;
    expect(rendered.map(key).sort()).toEqual(docs.map(key).sort());
    for (const d of rendered) expect(d).toEqual(docs.find((o) => key(o) === key(d)));
    for (const f of ['01-tasks/kustomization.yaml', '02-pipeline/pipeline-modelcar.md', 'argocd-application.yaml']) {
      expect(fs.existsSync(path.join(layout, f))).toBe(true);
    }
  }, 900_000);
});
