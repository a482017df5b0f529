import { ApiObject } from 'cdk8s';
import { IConstruct } from 'constructs';
import { ARGOCD } from './argocd-render';
import { Pipeline } from '../tekton/pipeline';
import { PipelineRun } from '../tekton/pipeline-run';
import { Task } from '../tekton/task';

/**
 * Options for `ArgoCdSync.annotations()`.
 */
export interface ArgoCdSyncOptions {
  /**
   * Let Argo CD delete a finished run once it leaves git. By default a run is kept
   * (`argocd.argoproj.io/sync-options: Prune=false`, with
   * `argocd.argoproj.io/compare-options: IgnoreExtraneous` so that it does not make the
   * Application OutOfSync): its logs, results and TaskRuns stay for the Tekton pruner
   * or a person to remove.
   *
   * @default false
   */
  readonly pruneFinishedRuns?: boolean;
}

/**
 * The Argo CD annotations Tekton objects carry, so that an Application syncing them (the
 * output of `cdk8s synth` or of `GitOpsLayout.write()` alike) creates every run after its
 * Pipeline and Tasks, and keeps finished runs.
 *
 * `ModelcarPipeline` applies `ArgoCdSync.annotations()` to its objects unless given
 * another choice (its `argoCdSync` prop). For Tekton objects of your own, call
 * `ArgoCdSync.annotations().applyTo(chart)` once they are added.
 */
export class ArgoCdSync {
  /**
   * Tasks and Pipelines in sync wave 1, PipelineRuns in wave 2, KServe InferenceServices in
   * wave 3 (Argo CD applies a wave once the earlier ones are in sync and healthy, and a
   * PipelineRun is healthy once it succeeded: what is served is pushed first; wave 0 is left
   * to what runs need, such as Secrets and ConfigMaps), and finished runs kept when they leave
   * git unless `pruneFinishedRuns`.
   */
  public static annotations(options: ArgoCdSyncOptions = {}): ArgoCdSync {
    return new ArgoCdSync(true, options.pruneFinishedRuns ?? false);
  }

  /**
   * No Argo CD annotation: for objects delivered another way (`kubectl apply`, Flux, a
   * script). Tekton fails a run whose Pipeline or Tasks do not exist a few seconds after
   * it was created, so that way must create them first.
   */
  public static none(): ArgoCdSync {
    return new ArgoCdSync(false, false);
  }

  /** Whether objects get the annotations (false for `none()`). */
  public readonly enabled: boolean;
  /** Whether Argo CD may prune a finished run that left git. */
  public readonly pruneFinishedRuns: boolean;

  private constructor(enabled: boolean, pruneFinishedRuns: boolean) {
    this.enabled = enabled;
    this.pruneFinishedRuns = pruneFinishedRuns;
  }

  /**
   * Applies this choice to every Task, Pipeline, PipelineRun and KServe InferenceService in
   * `scope` (itself included) that has none yet: an object keeps the first choice made for it, so the
   * modelcar constructs' own (`argoCdSync` prop) is never overridden. Objects added to
   * `scope` afterwards are not covered: call it once they are all added.
   */
  public applyTo(scope: IConstruct): void {
    for (const c of scope.node.findAll()) {
      if (c instanceof Task && c.apiObject) this.choose(c.apiObject, DEFINITION_WAVE);
      else if (c instanceof Pipeline) this.choose(c.apiObject, DEFINITION_WAVE);
      else if (c instanceof PipelineRun) this.choose(c.apiObject, RUN_WAVE);
      else if (c instanceof ApiObject && c.kind === 'InferenceService' && c.apiVersion.startsWith('serving.kserve.io/')) this.choose(c, SERVING_WAVE);
    }
  }

  private choose(object: ApiObject, wave: string): void {
    if (CHOSEN.has(object)) return;
    CHOSEN.add(object);
    if (!this.enabled) return;
    // Tasks and Pipelines before runs: a run created before them fails at once.
    object.metadata.addAnnotation(ARGOCD.SYNC_WAVE, wave);
    if (wave === RUN_WAVE && !this.pruneFinishedRuns) {
      object.metadata.addAnnotation(ARGOCD.SYNC_OPTIONS, 'Prune=false');
      object.metadata.addAnnotation(ARGOCD.COMPARE_OPTIONS, 'IgnoreExtraneous');
    }
  }
}

const DEFINITION_WAVE = '1';
const RUN_WAVE = '2';
const SERVING_WAVE = '3';

/** The objects some ArgoCdSync has decided for (annotated or not). */
const CHOSEN = new WeakSet<ApiObject>();
