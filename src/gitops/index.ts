export * from './argocd';
export * from './gitops-layout';
export * from './pipeline-page';
