import { cdk8s, javascript } from 'projen';
import { UpdateSnapshot } from 'projen/lib/javascript';

const project = new cdk8s.ConstructLibraryCdk8s({
  name: 'cdk8s-modelcar-tekton',
  description: 'Typed cdk8s constructs that generate Tekton v1 pipelines for building and publishing KServe modelcar images',
  author: 'cdk8s-modelcar-tekton maintainers',
  authorAddress: 'maintainers@users.noreply.github.com',
  repositoryUrl: 'https://github.com/cdk8s-modelcar-tekton/cdk8s-modelcar-tekton.git',
  keywords: ['cdk8s', 'tekton', 'kserve', 'modelcar', 'openshift-ai'],
  defaultReleaseBranch: 'main',
  packageManager: javascript.NodePackageManager.NPM,
  projenrcTs: true,
  cdk8sVersion: '2.70.0',
  constructsVersion: '10.4.2',
  peerDeps: ['cdk8s-plus-28@^2.5.6'],
  devDeps: [
    'cdk8s-cli@^2.200.0',
    'ajv@^8.17.1',
    'js-yaml@^4.1.0',
    '@types/js-yaml@^4.0.9',
    'ts-node@^10.9.2',
    '@types/node@^20',
  ],
  // The package artifacts (jsii-pacmak) go to `artifacts/`: `dist/` holds the default app's manifests.
  artifactsDirectory: 'artifacts',
  github: false,
  release: false,
  jestOptions: {
    // CI must never rewrite a snapshot: `npm run test:update` does it on purpose, and the diff is reviewed.
    updateSnapshot: UpdateSnapshot.NEVER,
    jestConfig: {
      testMatch: ['<rootDir>/test/**/*.test.ts'],
      testTimeout: 120_000,
      // Two suites at once on our 2 cores (jest's default is one worker there): the end-to-end suites spend much of
      // their time waiting on registries, processes and the fake hub. Measured side by side on one machine, the
      // whole suite took 643 s with two workers against 972 s with one, every test passing in both.
      maxWorkers: 2,
      // One temp root per run (TMPDIR for every test), removed at the end after checking that no mount or
      // process of the run is left: cdk8s's Testing outdirs, e2e work dirs and the consumer app all go there.
      globalSetup: '<rootDir>/test/support/global-setup.ts',
      globalTeardown: '<rootDir>/test/support/global-teardown.ts',
    },
  },
  tsconfigDev: { compilerOptions: {} },
  gitignore: ['/dist/', '/artifacts/', '__pycache__/'],
  eslintOptions: { dirs: ['src', 'test'], ignorePatterns: ['src/imports/**', '*.js', '*.d.ts', 'node_modules/'] },
});

// L1: typed tekton.dev/v1 classes generated from the Tekton CRDs, and serving.kserve.io/v1beta1 from KServe's
// InferenceService CRD (vendored in third-party/kserve/), never edited by hand.
const importTask = project.addTask('import', {
  description: 'Regenerate src/imports/ from the Tekton v1 CRDs and KServe\'s InferenceService CRD with cdk8s import',
  exec: 'node scripts/import-tekton-crds.js',
});
importTask.exec('node scripts/import-kserve-crds.js');

// The main job: synthesize the embedded default app into dist/.
project.addTask('synth', {
  description: 'Synthesize the embedded default app into dist/ (GitOps layout)',
  exec: 'ts-node --project test/tsconfig.json src/app/main.ts',
});

// Benchmark (not a test): build + two pushes, the analysis's way vs buildah to oci: vs the layout builder.
project.addTask('bench', {
  description: 'Benchmark build + push of a synthetic model for three pipelines side by side (needs root; --size-gib N)',
  exec: 'bash scripts/install-test-tools.sh && ts-node --project test/tsconfig.json test/bench/build-push.bench.ts',
  receiveArgs: true,
});

// What users get: an allow-list, so nothing else in the checkout (a test's work dir, keys, scripts) can reach
// the package. npm adds package.json itself; the step scripts reach lib/ through post-compile.
project.addFields({ files: ['lib', '.jsii', 'API.md', 'README.md', 'LICENSE'] });
// jsii-pacmak appends its outdir to .npmignore unless that exact line is there, which would change a tracked
// file in every release build.
project.npmignore!.exclude('artifacts');

// Step scripts and the Python modules they embed live beside their constructs; the compiled library reads them
// from lib/. Bytecode a local run of a module left in src/ stays out of the package.
project.postCompileTask.prependExec('rm -rf lib/modelcar/scripts && cp -r src/modelcar/scripts lib/modelcar/scripts && rm -rf lib/modelcar/scripts/__pycache__');

// The tests run real tools (shellcheck, buildah, skopeo, docker-registry): install them first.
project.testTask.prependExec('bash scripts/install-test-tools.sh');
project.jest!.addIgnorePattern('/src/imports/');

project.synth();
