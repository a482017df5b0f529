export * from './argocd';
export * from './argocd-sync';
export * from './gitops-layout';
export * from './pipeline-page';
