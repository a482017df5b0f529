/**
 * The README's examples, read as the tests run them, and the order Argo CD applies objects in.
 */
import * as fs from 'fs';
import * as path from 'path';

const root = path.resolve(__dirname, '..', '..');

/** The first fenced block of `lang` after `heading` in the README, its fence's indentation taken off every line. */
export function readmeBlock(heading: string, lang: string = 'ts'): string {
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  const at = readme.indexOf(heading);
  if (at < 0) throw new Error(`README has no "${heading}"`);
  // A block may be indented (inside a list item).
  const block = new RegExp(`( *)\`\`\`${lang}\\n([\\s\\S]*?)\\1\`\`\``).exec(readme.slice(at));
  if (!block) throw new Error(`no ${lang} block after ${heading}`);
  return block[2].split('\n').map((l) => l.slice(block[1].length)).join('\n');
}

/**
 * Kinds Argo CD applies before custom resources within a wave (argoproj/gitops-engine
 * pkg/sync/sync_tasks.go, kindOrder: a kind not listed, such as Tekton's, sorts after them).
 */
const ARGO_KIND_ORDER = ['Namespace', 'NetworkPolicy', 'ResourceQuota', 'LimitRange', 'PodSecurityPolicy', 'PodDisruptionBudget',
  'ServiceAccount', 'Secret', 'SecretList', 'ConfigMap', 'StorageClass', 'PersistentVolume', 'PersistentVolumeClaim',
  'CustomResourceDefinition', 'ClusterRole', 'ClusterRoleList', 'ClusterRoleBinding', 'ClusterRoleBindingList', 'Role', 'RoleList',
  'RoleBinding', 'RoleBindingList', 'Service', 'DaemonSet', 'Pod', 'ReplicationController', 'ReplicaSet', 'Deployment',
  'HorizontalPodAutoscaler', 'StatefulSet', 'Job', 'CronJob', 'Ingress', 'APIService'];

/**
 * The objects in the order an Argo CD sync applies them (no hooks: one phase): by sync wave,
 * then kind, then name (gitops-engine's syncTasks.Less). Each wave waits for the previous
 * one to be healthy.
 */
export function argoCdSyncOrder(docs: any[]): any[] {
  const wave = (d: any) => Number(d.metadata?.annotations?.['argocd.argoproj.io/sync-wave'] ?? '0');
  const kind = (d: any) => {
    const i = ARGO_KIND_ORDER.indexOf(d.kind);
    return i < 0 ? 0 : i - ARGO_KIND_ORDER.length;
  };
  // Go compares names as bytes: so does this, not localeCompare.
  const name = (a: any, b: any) => (a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0);
  return [...docs].sort((a, b) => wave(a) - wave(b) || kind(a) - kind(b) || name(a, b));
}

/**
 * The runs that would be created before their Pipeline or one of its Tasks (named by
 * taskRef) in `ordered`, and in a wave no later than it (Argo CD waits between waves only),
 * each as `run -> object`.
 */
export function runsBeforeTheirDefinitions(ordered: any[]): string[] {
  const wave = (d: any) => Number(d.metadata?.annotations?.['argocd.argoproj.io/sync-wave'] ?? '0');
  const index = (kind: string, name: string) => ordered.findIndex((d) => d.kind === kind && d.metadata.name === name);
  const out: string[] = [];
  ordered.forEach((run, i) => {
    if (run.kind !== 'PipelineRun') return;
    const pipelineName = run.spec.pipelineRef.name;
    const pipeline = ordered[index('Pipeline', pipelineName)];
    if (!pipeline) throw new Error(`run ${run.metadata.name} names pipeline ${pipelineName}, which is not in the output`);
    const needed = [pipeline, ...[...pipeline.spec.tasks, ...(pipeline.spec.finally ?? [])]
      .filter((t: any) => t.taskRef).map((t: any) => ordered[index('Task', t.taskRef.name)])];
    for (const d of needed) {
      if (!d) throw new Error(`run ${run.metadata.name}: a task of pipeline ${pipelineName} is not in the output`);
      if (ordered.indexOf(d) > i || wave(d) >= wave(run)) out.push(`${run.metadata.name} -> ${d.kind}/${d.metadata.name}`);
    }
  });
  return out;
}
