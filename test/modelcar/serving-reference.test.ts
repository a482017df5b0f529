import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Size, Testing } from 'cdk8s';
import { ModelcarBuilder, ModelcarPipeline, PushTarget, RegistryCredentials } from '../../src';
import { buildConfigDigest } from '../../src/modelcar/serving-reference';
import { doc, synth } from '../support/synth';

const COMMIT = '0123456789abcdef0123456789abcdef01234567';
const SCRIPT = path.join(__dirname, '..', '..', 'src', 'modelcar', 'scripts', 'build-config.sh');

const pipeline = (chart = Testing.chart(), builder?: ModelcarBuilder) => new ModelcarPipeline(chart, 'm', {
  builder,
  pushTargets: [
    PushTarget.openshiftInternal({ namespace: 'ai', repository: 'mistral' }),
    PushTarget.quay({ organization: 'org', repository: 'mistral', credentials: RegistryCredentials.fromDockerConfigSecret('quay-robot') }),
  ],
});

/** build-config.sh as the check task's config step runs it: BUILD_CONFIG and SERVING_TAG, or its failure. */
function runBuildConfig(env: { spec: string; include: string; exclude: string; commit: string }): { buildConfig: string; servingTag: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'build-config-'));
  try {
    fs.writeFileSync(path.join(dir, 'revision'), env.commit);
    execFileSync('sh', [SCRIPT], {
      env: {
        PATH: process.env.PATH,
        // The script's scratch file goes here, not in the host's /tmp.
        TMPDIR: dir,
        BUILD_CONFIG_SPEC: env.spec,
        MODEL_INCLUDE: env.include,
        MODEL_EXCLUDE: env.exclude,
        RESULT_BUILD_CONFIG: path.join(dir, 'config'),
        RESOLVED_REVISION_FILE: path.join(dir, 'revision'),
        RESULT_SERVING_TAG: path.join(dir, 'tag'),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return { buildConfig: fs.readFileSync(path.join(dir, 'config'), 'utf8'), servingTag: fs.readFileSync(path.join(dir, 'tag'), 'utf8') };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('the serving reference at synth is the tag the run pushes', () => {
  test.each([
    ['every file', [], []],
    ['include and exclude', ['*.safetensors', 'config.json', 'tokenizer/'], ['consolidated.safetensors']],
    ['exclude only', [], ['*.bin', '*.pth']],
  ])('build-config.sh (run with sh) computes the build configuration and tag servingReference() names: %s', (_, include, exclude) => {
    for (const builder of [undefined, ModelcarBuilder.buildah(), ModelcarBuilder.ociLayout({ largeFileThreshold: Size.mebibytes(8) })]) {
      // GIVEN
      const chart = Testing.chart();
      const modelcar = pipeline(chart, builder);
      const run = modelcar.addRun('r', { name: 'r', model: { repo: 'org/model', revision: COMMIT, include, exclude }, tags: ['v1'] });

      // WHEN: the script with the run's own env, as the synthesized check task gives it
      const config = doc(synth(chart), 'Task', 'modelcar-check-published').spec.steps.find((s: any) => s.name === 'config');
      const specEnv = config.env.find((e: any) => e.name === 'BUILD_CONFIG_SPEC').value;
      const got = runBuildConfig({ spec: specEnv, include: include.join(' '), exclude: exclude.join(' '), commit: COMMIT });

      // THEN
      expect(got.buildConfig).toBe(buildConfigDigest(modelcar.buildImage.buildConfigSpec, include.join(' '), exclude.join(' ')));
      expect(got.servingTag).toMatch(new RegExp(`^${COMMIT}-[0-9a-f]{16}$`));
      expect(run.servingTag).toBe(got.servingTag);
      expect(run.servingReference()).toBe(`oci://image-registry.openshift-image-registry.svc:5000/ai/mistral:${got.servingTag}`);
      expect(run.servingReference('quay')).toBe(`oci://quay.io/org/mistral:${got.servingTag}`);
    }
  });

  test('white space in the pattern lists is normalized as the shell splits it', () => {
    const spec = 'modelcar build configuration v1\nbuilder: x';
    const got = runBuildConfig({ spec, include: '  a.json\tb/ \n c* ', exclude: '', commit: COMMIT });
    expect(got.buildConfig).toBe(buildConfigDigest(spec, '  a.json\tb/ \n c* ', ''));
    expect(got.buildConfig).toBe(buildConfigDigest(spec, 'a.json b/ c*', ''));
  });

  test('another build configuration or another commit is another tag', () => {
    const chart = Testing.chart();
    const a = pipeline(chart).addRun('a', { name: 'a', model: { repo: 'org/model', revision: COMMIT }, tags: ['v1'] });
    const b = pipeline(Testing.chart(), ModelcarBuilder.buildah()).addRun('b', { name: 'b', model: { repo: 'org/model', revision: COMMIT }, tags: ['v1'] });
    const c = pipeline(Testing.chart()).addRun('c', { name: 'c', model: { repo: 'org/model', revision: COMMIT, exclude: ['*.bin'] }, tags: ['v1'] });
    const other = 'fedcba9876543210fedcba9876543210fedcba98';
    const d = pipeline(Testing.chart()).addRun('d', { name: 'd', model: { repo: 'org/model', revision: other }, tags: ['v1'] });
    expect(new Set([a.servingTag, b.servingTag, c.servingTag]).size).toBe(3);
    expect(d.servingTag.slice(41)).toBe(a.servingTag.slice(41));
    expect(d.servingTag.startsWith(other)).toBe(true);
  });

  test('the check task\'s script refuses a resolved revision that is not a commit id', () => {
    expect(() => runBuildConfig({ spec: 'x', include: '', exclude: '', commit: 'main' })).toThrow(/the resolved revision "main" is not a commit id/);
  });

  test('fails when the run\'s revision is a branch: it moves', () => {
    const modelcar = pipeline();
    const main = modelcar.addRun('main', { name: 'main', model: { repo: 'org/model' }, tags: ['v1'] });
    expect(() => main.servingReference()).toThrow(
      'modelcar run test/m/main: no serving reference for revision "main": it is a branch or tag, which moves: the image it names tomorrow is not today\'s; '
      + 'pin the run to the commit to serve, model: { revision: \'<40 lower-case hex of the commit>\' } (the hub\'s commit sha)');
    const short = modelcar.addRun('short', { name: 'short', model: { repo: 'org/model', revision: COMMIT.slice(0, 12) }, tags: ['v1'] });
    expect(() => short.servingReference()).toThrow(/no serving reference for revision "0123456789ab": it is a branch or tag, which moves/);
  });

  test('fails when the commit sha is in upper case (the hub would take it for a branch name)', () => {
    const run = pipeline().addRun('r', { name: 'r', model: { repo: 'org/model', revision: COMMIT.toUpperCase() }, tags: ['v1'] });
    expect(() => run.servingReference()).toThrow(/it is a commit sha in upper case, which the hub resolves as a branch or tag name/);
  });

  test('fails when the push target is unknown', () => {
    const run = pipeline().addRun('r', { name: 'r', model: { repo: 'org/model', revision: COMMIT }, tags: ['v1'] });
    expect(() => run.servingReference('docker-hub')).toThrow('modelcar run test/m/r: the pipeline has no push target named "docker-hub": use one of "internal", "quay"');
  });
});
