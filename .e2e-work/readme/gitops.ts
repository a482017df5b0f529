import { App, Chart, Duration, Size } from 'cdk8s';
import { GitOpsLayout, ModelcarPipeline, PushTarget, RegistryCredentials } from "/work/main/src";

const app = new App();
const chart = new Chart(app, 'models', { namespace: 'private-ai-demo', disableResourceNameHashes: true });
const modelcar = new ModelcarPipeline(chart, 'modelcar', {
  pushTargets: [
    PushTarget.openshiftInternal({ namespace: 'private-ai-demo', repository: 'granite' }),
    PushTarget.quay({ organization: 'acme', repository: 'granite',
      credentials: RegistryCredentials.fromDockerConfigSecret('quay-push-credentials') }),
  ],
});
modelcar.addRun('granite-2b', {
  model: { repo: 'ibm-granite/granite-3.1-2b-instruct', revision: 'main' },
  tags: ['granite-3.1-2b-instruct'],
  storage: Size.gibibytes(40), fsGroup: 1000970000,
});
GitOpsLayout.write(app, {
  outdir: "/tmp/modelcar-test-lpzW3o/readme-gitops-BJ44E3",
  namespace: 'private-ai-demo',
  argoCdApplication: { repoUrl: 'https://github.com/acme/gitops.git', path: 'dist', targetRevision: 'main' },
});
