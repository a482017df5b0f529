/**
 * Options of the Argo CD `Application` that `GitOpsLayout.write()` writes beside the
 * folder it delivers (`GitOpsLayoutOptions.argoCdApplication`).
 */
export interface ArgoCdApplicationOptions {
  /** The git repository Argo CD reads, e.g. `https://github.com/acme/gitops.git`. */
  readonly repoUrl: string;

  /** The folder of the layout in that repository (where `kustomization.yaml` is), e.g. `modelcars/dist`. */
  readonly path: string;

  /**
   * The branch, tag or commit Argo CD follows.
   *
   * @default 'HEAD'
   */
  readonly targetRevision?: string;

  /**
   * The namespace the objects go to.
   *
   * @default - the layout's namespace (`GitOpsLayoutOptions.namespace`)
   */
  readonly namespace?: string;

  /**
   * The Application's name.
   *
   * @default 'modelcars'
   */
  readonly name?: string;

  /**
   * The namespace Argo CD watches for Applications.
   *
   * @default 'openshift-gitops' (OpenShift GitOps)
   */
  readonly argoCdNamespace?: string;

  /**
   * The Argo CD project.
   *
   * @default 'default'
   */
  readonly project?: string;

  /**
   * The cluster's API server, as Argo CD knows it.
   *
   * @default 'https://kubernetes.default.svc' (the cluster Argo CD runs in)
   */
  readonly server?: string;

  /**
   * Sync every commit without a click (`syncPolicy.automated`, with prune, so a Task or
   * Pipeline removed from git is removed from the cluster; finished runs are kept unless
   * `GitOpsLayoutOptions.pruneFinishedRuns`).
   *
   * @default true
   */
  readonly automatedSync?: boolean;

  /**
   * Let Argo CD undo changes made in the cluster (`selfHeal`). With it, a run still in
   * git that something else deletes (the Tekton pruner) is created again, so runs again:
   * see the README's section on the pruner.
   *
   * @default true
   */
  readonly selfHeal?: boolean;
}

