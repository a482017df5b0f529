export * from './tekton';
export * from './modelcar';
export * from './gitops';
