export * from './params';
export * from './results';
export * from './workspaces';
export * from './step';
export * from './task';
export * from './pipeline';
export * from './pipeline-run';
export * from './pipeline-graph';
export { PodLimits } from './pod-limits';
