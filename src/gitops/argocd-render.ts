// Internal to src/gitops (index.ts does not export it): the Argo CD objects and annotations.
import type { ArgoCdApplicationOptions } from './argocd';
import { validateDnsLabel, validateObjectName } from '../tekton/util';

/**
 * The annotations Argo CD reads (argo-cd docs: user-guide/sync-waves, sync-options, compare-options).
 * A wave is applied once the earlier waves are in sync and healthy. Prune=false keeps an object that
 * left git, but Argo CD would then report the Application OutOfSync; IgnoreExtraneous takes such an
 * object out of the sync status (not out of the health: a failed run kept still degrades it).
 */
export const ARGOCD = {
  SYNC_WAVE: 'argocd.argoproj.io/sync-wave',
  SYNC_OPTIONS: 'argocd.argoproj.io/sync-options',
  COMPARE_OPTIONS: 'argocd.argoproj.io/compare-options',
};

/**
 * The Application object. Argo CD applies a folder with a `kustomization.yaml` through
 * kustomize, so this file (not listed there) is applied once by hand, or by an
 * app-of-apps, and never by the Application itself.
 *
 * @internal
 */
export function argoCdApplication(options: ArgoCdApplicationOptions, layoutNamespace: string | undefined): any {
  const where = 'gitops layout: argoCdApplication';
  if (!/^(https:\/\/|ssh:\/\/|git@)[^\s]+$/.test(options.repoUrl)) {
    throw new Error(`${where}.repoUrl "${options.repoUrl}" is not a git URL Argo CD can clone: give https://..., ssh://... or git@host:org/repo.git`);
  }
  const p = options.path.replace(/\/+$/, '');
  if (p === '' || p.startsWith('/') || p.split('/').includes('..')) {
    throw new Error(`${where}.path "${options.path}" must be a folder relative to the repository root, e.g. "modelcars/dist"`);
  }
  const namespace = options.namespace ?? layoutNamespace;
  if (namespace === undefined) {
    throw new Error(`${where} has no namespace: pass namespace to argoCdApplication or to GitOpsLayout.write()`);
  }
  validateDnsLabel(`${where}.namespace`, namespace);
  const name = options.name ?? 'modelcars';
  validateObjectName(`${where}.name`, name);
  const argoCdNamespace = options.argoCdNamespace ?? 'openshift-gitops';
  validateDnsLabel(`${where}.argoCdNamespace`, argoCdNamespace);
  const automated = options.automatedSync ?? true;
  // Through JSON: absent fields (automated when off) are dropped, not written as null.
  return JSON.parse(JSON.stringify({
    apiVersion: 'argoproj.io/v1alpha1',
    kind: 'Application',
    metadata: { name, namespace: argoCdNamespace },
    spec: {
      project: options.project ?? 'default',
      source: { repoURL: options.repoUrl, path: p, targetRevision: options.targetRevision ?? 'HEAD' },
      destination: { server: options.server ?? 'https://kubernetes.default.svc', namespace },
      // Tekton fills in a run's spec (defaults) and refuses changes to it once started: Argo CD
      // must neither report that as drift nor try to apply it. A changed run is a new name, created whole.
      ignoreDifferences: [{ group: 'tekton.dev', kind: 'PipelineRun', jsonPointers: ['/spec'] }],
      syncPolicy: {
        automated: automated ? { prune: true, selfHeal: options.selfHeal ?? true } : undefined,
        syncOptions: ['RespectIgnoreDifferences=true'],
      },
    },
  }));
}
