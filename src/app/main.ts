// The main job: the reference deployment of the root-cause analysis (Mistral Small 24B,
// quantized and full), synthesized with every fix built in, into dist/ in the team's
// GitOps layout. Run with `npm run synth`.
import * as path from 'path';
import { App, Chart, Duration, Size } from 'cdk8s';
import { GitOpsLayout, ModelcarPipeline, ModelRegistry, PushTarget, RegistryCredentials } from '..';

/** The namespace of the team's deployment. */
export const NAMESPACE = 'private-ai-demo';

/** Variations of the default app, for tests that show what a change does. */
export interface DefaultAppOptions {
  /** The full model's revision. @default 'main' */
  readonly fullModelRevision?: string;
}

/** Builds the default app: one pipeline, two runs. */
export function buildDefaultApp(options: DefaultAppOptions = {}): App {
  const app = new App();
  const chart = new Chart(app, NAMESPACE, { namespace: NAMESPACE, disableResourceNameHashes: true });

  const modelcar = new ModelcarPipeline(chart, 'modelcar', {
    name: 'modelcar-pipeline',
    // The layout builder writes the 14 GB quantized model in minutes: 20 minutes of build
    // leaves room and keeps check 5 min + download 1 h + build + two 30 min pushes + report
    // 5 min + registration 5 min + clean-up 5 min within its 2 h 40 run. (The run's timeout
    // stays as it was: a started run's spec cannot change, and the run's name does not hash
    // its timeout.)
    buildTimeout: Duration.minutes(20),
    pushTargets: [
      PushTarget.openshiftInternal({ namespace: NAMESPACE, repository: 'mistral-small-24b' }),
      PushTarget.quay({
        organization: 'private-ai-demo',
        repository: 'mistral-small-24b',
        credentials: RegistryCredentials.fromDockerConfigSecret('quay-push-credentials'),
      }),
    ],
    // Each variant is registered, as the analysis team's pipeline did: the model version's artifact names the
    // internal registry's image by digest (what in-cluster serving pulls), through the registry's Service.
    modelRegistry: ModelRegistry.fromService({ name: 'private-ai-model-registry' }),
  });

  // No fsGroup and no uid: OpenShift's restricted-v2 SCC gives every pod of the namespace
  // the first value of the namespace's own range (different on every cluster), so all
  // tasks share one identity; a value fixed here would be refused outside the seed cluster.
  modelcar.addRun('mistral-quantized', {
    name: 'mistral-small-24b-quantized',
    model: { repo: 'RedHatAI/Mistral-Small-24B-Instruct-2501-quantized.w4a16' },
    tags: ['mistral-small-24b-instruct-2501-quantized-w4a16'],
    storage: Size.gibibytes(150),
    timeout: Duration.minutes(160),
  });
  // The full model is ~48 GB of bf16 weights: model + image on one volume, with headroom.
  modelcar.addRun('mistral-full', {
    name: 'mistral-small-24b-full',
    model: { repo: 'mistralai/Mistral-Small-24B-Instruct-2501', revision: options.fullModelRevision, exclude: ['consolidated.safetensors'] },
    tags: ['mistral-small-24b-instruct-2501'],
    storage: Size.gibibytes(250),
    timeout: Duration.hours(4),
  });
  return app;
}

if (require.main === module) {
  const outdir = path.resolve(process.env.MODELCAR_OUTDIR ?? 'dist');
  const files = GitOpsLayout.write(buildDefaultApp(), { outdir, namespace: NAMESPACE });
  for (const f of files) console.log(`  ${path.relative(process.cwd(), path.join(outdir, f))}`);
  console.log(`wrote ${files.length} files to ${path.relative(process.cwd(), outdir) || '.'}`);
}
