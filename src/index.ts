export * from './tekton';
export * from './modelcar';
