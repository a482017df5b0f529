import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App, Chart } from 'cdk8s';
import { ModelcarPipeline, PushTarget, RegistryCredentials } from '../../src';
import { loadScript } from '../../src/modelcar/scripts';

function synth(runOptions: { fsGroup?: number; runAsUser?: number }) {
  const app = new App();
  const chart = new Chart(app, 'c', { namespace: 'ns' });
  const m = new ModelcarPipeline(chart, 'm', {
    pushTargets: [PushTarget.openshiftInternal({ namespace: 'ns', repository: 'r' })],
  });
  m.addRun('r', { name: 'run', model: { repo: 'org/m' }, tags: ['v1'], ...runOptions });
  return chart.toJson();
}

describe('identity of a run', () => {
  test('unset: no fsGroup and no uid, the SCC assigns them; OnRootMismatch stays', () => {
    const run = synth({}).find((d) => d.kind === 'PipelineRun');
    expect(run.spec.taskRunTemplate.podTemplate.securityContext).toEqual({ fsGroupChangePolicy: 'OnRootMismatch' });
  });
  test('set (a cluster without SCCs): used as given, for every task', () => {
    const run = synth({ fsGroup: 2000, runAsUser: 3000 }).find((d) => d.kind === 'PipelineRun');
    expect(run.spec.taskRunTemplate.podTemplate.securityContext).toEqual({ runAsUser: 3000, fsGroup: 2000, fsGroupChangePolicy: 'OnRootMismatch' });
  });
  test('fails when runAsUser is out of range', () => {
    expect(() => synth({ runAsUser: -1 })).toThrow(/securityContext.runAsUser -1 is out of range/);
  });
});

describe('registry credentials without $HOME (scripts/registry-auth.sh, run with /bin/sh)', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'registry-auth-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** Runs the snippet as a step would and returns what it printed and the authfile it chose. */
  function runAuth(env: Record<string, string>, source = ''): { out: string; authfile: string } {
    const script = `set -eu\nauth_source='${source}'\nauth_registry='registry.example:5000'\n${loadScript('registry-auth.sh')}\necho "AUTHFILE=\${authfile}"\n`;
    const out = execFileSync('/bin/sh', ['-c', script], { env: { PATH: process.env.PATH!, HOME: '/nonexistent', TMPDIR: path.join(dir, 'tmp'), ...env }, encoding: 'utf8' });
    return { out, authfile: /AUTHFILE=(.*)/.exec(out)![1] };
  }

  test('token: a private authfile for the target registry only, user serviceaccount, token never printed', () => {
    const token = 'eyJhbGciOiJSUzI1NiJ9.payload.signature';
    fs.writeFileSync(path.join(dir, 'token'), token);
    const { out, authfile } = runAuth({ AUTH_MODE: 'service-account-token', SA_TOKEN_FILE: path.join(dir, 'token') });
    expect(authfile).toBe(path.join(dir, 'tmp', 'registry-auth.json'));
    expect(JSON.parse(fs.readFileSync(authfile, 'utf8'))).toEqual({
      auths: { 'registry.example:5000': { auth: Buffer.from(`serviceaccount:${token}`).toString('base64') } },
    });
    expect(fs.statSync(authfile).mode.toString(8).slice(-3)).toBe('600');
    expect(out).not.toContain(token);
  });

  test('fails when the token is not mounted', () => {
    expect(() => runAuth({ AUTH_MODE: 'service-account-token', SA_TOKEN_FILE: path.join(dir, 'absent') }))
      .toThrow(/cannot read the service account token .*absent: the pod needs automountServiceAccountToken/);
  });

  test('service account docker secrets: $(credentials.path)/.docker/config.json when Tekton wrote it, else none (and says so)', () => {
    const file = path.join(dir, 'config.json');
    expect(runAuth({ AUTH_MODE: 'service-account' }, file)).toMatchObject({ authfile: '' });
    expect(runAuth({ AUTH_MODE: 'service-account' }, file).out).toContain('no docker credentials linked to the service account');
    fs.writeFileSync(file, '{"auths":{}}');
    expect(runAuth({ AUTH_MODE: 'service-account' }, file).authfile).toBe(file);
  });

  test('a docker config secret is used as mounted; an unknown mode fails', () => {
    expect(runAuth({ AUTH_MODE: 'secret' }, '/etc/modelcar/auth/.dockerconfigjson').authfile).toBe('/etc/modelcar/auth/.dockerconfigjson');
    expect(() => runAuth({ AUTH_MODE: 'guess' })).toThrow(/unknown AUTH_MODE "guess"/);
  });

  test('the source of each kind', () => {
    expect(RegistryCredentials.fromServiceAccountToken().source).toBe('service-account-token');
    expect(RegistryCredentials.fromServiceAccount().source).toBe('service-account');
    expect(RegistryCredentials.fromDockerConfigSecret('s').source).toBe('secret');
    expect(PushTarget.openshiftInternal({ namespace: 'ns' }).credentials.source).toBe('service-account-token');
  });
});
