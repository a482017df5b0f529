import * as fs from 'fs';
import * as path from 'path';
import { App, Chart, Yaml } from 'cdk8s';
import { ArgoCdApplicationOptions } from './argocd';
import { argoCdApplication } from './argocd-render';
import { ArgoCdSync } from './argocd-sync';
import { PipelinePage } from './pipeline-page';
import { Pipeline } from '../tekton/pipeline';
import { PipelineRun } from '../tekton/pipeline-run';

/**
 * Options for `GitOpsLayout.write()`.
 */
export interface GitOpsLayoutOptions {
  /** The folder to write into (emptied first). */
  readonly outdir: string;

  /**
   * The namespace set in each `kustomization.yaml`.
   *
   * @default - none
   */
  readonly namespace?: string;

  /**
   * The Argo CD annotations of the Tekton objects that have none chosen yet (your own
   * Tasks, Pipelines and runs; the modelcar constructs choose with their `argoCdSync`
   * prop, which this does not override).
   *
   * @default ArgoCdSync.annotations()
   */
  readonly argoCdSync?: ArgoCdSync;

  /**
   * Moved: the annotations are the objects' own. Pass
   * `argoCdSync: ArgoCdSync.annotations({ pruneFinishedRuns: true })` to `ModelcarPipeline`
   * (and here, for Tekton objects of your own).
   *
   * @deprecated use `ArgoCdSync.annotations({ pruneFinishedRuns: true })`
   * @default false
   */
  readonly pruneFinishedRuns?: boolean;

  /**
   * Also write `argocd-application.yaml`: an Argo CD Application that delivers the
   * folder (apply it once; it is not part of the folder's kustomization).
   *
   * @default - no Application
   */
  readonly argoCdApplication?: ArgoCdApplicationOptions;
}

/** The folder of each kind: the names sort in the order the objects must exist. */
const FOLDERS: Record<string, string> = {
  Task: '01-tasks',
  Pipeline: '02-pipeline',
  PipelineRun: '03-runs',
  InferenceService: '04-serving',
};

/**
 * Writes synthesized Tekton objects in the layout GitOps repositories use for
 * pipelines: `01-tasks/`, `02-pipeline/`, `03-runs/`, `04-serving/` (KServe InferenceServices; anything
 * else in `00-other/`),
 * one file per object and a `kustomization.yaml` in each folder and over them all, so
 * `kubectl apply -k` or one Argo CD Application delivers the folder.
 *
 * The Argo CD annotations (sync waves, finished runs kept) are the objects' own
 * (`ArgoCdSync`), the same as `cdk8s synth` writes; objects without a choice get
 * `argoCdSync` (by default `ArgoCdSync.annotations()`). Beside each Pipeline, a Markdown
 * page shows its task graph and its runs.
 */
export class GitOpsLayout {
  /**
   * Validates the app (as `cdk8s synth` does) and writes every chart's objects.
   * Returns the files written, relative to outdir.
   */
  public static write(app: App, options: GitOpsLayoutOptions): string[] {
    if (options.pruneFinishedRuns) {
      throw new Error('gitops layout: pruneFinishedRuns moved to the objects: pass argoCdSync: ArgoCdSync.annotations({ pruneFinishedRuns: true }) '
        + 'to ModelcarPipeline (and to GitOpsLayout.write() for Tekton objects of your own)');
    }
    (options.argoCdSync ?? ArgoCdSync.annotations()).applyTo(app);
    // synthYaml() runs every construct validation and throws on the first failures.
    app.synthYaml();
    // The Application is checked before anything is removed or written.
    const application = options.argoCdApplication ? argoCdApplication(options.argoCdApplication, options.namespace) : undefined;
    const docs = app.charts.flatMap((c: Chart) => c.toJson());
    fs.rmSync(options.outdir, { recursive: true, force: true });
    const written: string[] = [];
    const byFolder = new Map<string, string[]>();
    const write = (file: string, text: string) => {
      fs.mkdirSync(path.dirname(path.join(options.outdir, file)), { recursive: true });
      fs.writeFileSync(path.join(options.outdir, file), text);
      written.push(file);
    };
    for (const d of docs) {
      const folder = FOLDERS[d.kind] ?? '00-other';
      const name = d.metadata?.name ?? d.metadata?.generateName?.replace(/-$/, '');
      const file = `${d.kind.toLowerCase()}-${name}.yaml`;
      write(`${folder}/${file}`, Yaml.stringify(d));
      byFolder.set(folder, [...(byFolder.get(folder) ?? []), file]);
    }
    const kustomization = (resources: string[], namespace?: string) => Yaml.stringify(JSON.parse(JSON.stringify({
      apiVersion: 'kustomize.config.k8s.io/v1beta1',
      kind: 'Kustomization',
      namespace,
      resources,
    })));
    const folders = [...byFolder.keys()].sort();
    for (const folder of folders) {
      write(`${folder}/kustomization.yaml`, kustomization([...byFolder.get(folder)!].sort(), options.namespace));
    }
    // One kustomization over the folders: `kubectl kustomize <outdir>` renders every object.
    write('kustomization.yaml', kustomization(folders));

    const pipelines = app.node.findAll().filter((c): c is Pipeline => c instanceof Pipeline);
    const runs = app.node.findAll().filter((c): c is PipelineRun => c instanceof PipelineRun);
    for (const p of pipelines) {
      const page = PipelinePage.markdown(p, runs.filter((r) => r.pipeline === p).sort((a, b) => a.name.localeCompare(b.name)));
      write(`${FOLDERS.Pipeline}/pipeline-${p.name}.md`, page);
    }
    if (application) write('argocd-application.yaml', Yaml.stringify(application));
    return written.sort();
  }

  private constructor() {}
}
