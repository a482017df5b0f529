import * as fs from 'fs';
import * as path from 'path';
import { App, Chart, Yaml } from 'cdk8s';
import { ArgoCdApplicationOptions } from './argocd';
import { ARGOCD, argoCdApplication } from './argocd-render';
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
   * Let Argo CD delete a finished run once it leaves git. By default a run is kept
   * (`argocd.argoproj.io/sync-options: Prune=false`, with
   * `argocd.argoproj.io/compare-options: IgnoreExtraneous` so that it does not make the
   * Application OutOfSync): its logs, results and TaskRuns stay for the Tekton pruner
   * or a person to remove.
   *
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

/** The folder of each kind, and its Argo CD sync wave: Tasks and Pipelines exist before any run starts. */
const FOLDERS: Record<string, { folder: string; wave?: string }> = {
  Task: { folder: '01-tasks', wave: '1' },
  Pipeline: { folder: '02-pipeline', wave: '1' },
  PipelineRun: { folder: '03-runs', wave: '2' },
};

/**
 * Writes synthesized Tekton objects in the layout GitOps repositories use for
 * pipelines: `01-tasks/`, `02-pipeline/`, `03-runs/` (anything else in `00-other/`),
 * one file per object and a `kustomization.yaml` in each folder and over them all, so
 * `kubectl apply -k` or one Argo CD Application delivers the folder.
 *
 * Argo CD conventions are built in: Tasks and Pipelines sync in wave 1, runs in wave 2
 * (a run created before its Pipeline or Tasks fails at once; wave 0 is left to what the
 * runs need, such as Secrets and ConfigMaps in `00-other/`); finished runs are kept when
 * they leave git (see `pruneFinishedRuns`). Beside each Pipeline, a Markdown page shows
 * its task graph and its runs.
 */
export class GitOpsLayout {
  /**
   * Validates the app (as `cdk8s synth` does) and writes every chart's objects.
   * Returns the files written, relative to outdir.
   */
  public static write(app: App, options: GitOpsLayoutOptions): string[] {
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
      const { folder, wave } = FOLDERS[d.kind] ?? { folder: '00-other' };
      const name = d.metadata?.name ?? d.metadata?.generateName?.replace(/-$/, '');
      const file = `${d.kind.toLowerCase()}-${name}.yaml`;
      write(`${folder}/${file}`, Yaml.stringify(withAnnotations(d, annotationsFor(d.kind, wave, options))));
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
      write(`${FOLDERS.Pipeline.folder}/pipeline-${p.name}.md`, page);
    }
    if (application) write('argocd-application.yaml', Yaml.stringify(application));
    return written.sort();
  }

  private constructor() {}
}

function annotationsFor(kind: string, wave: string | undefined, options: GitOpsLayoutOptions): Record<string, string> {
  const a: Record<string, string> = {};
  if (wave !== undefined) a[ARGOCD.SYNC_WAVE] = wave;
  if (kind === 'PipelineRun' && !options.pruneFinishedRuns) {
    a[ARGOCD.SYNC_OPTIONS] = 'Prune=false';
    a[ARGOCD.COMPARE_OPTIONS] = 'IgnoreExtraneous';
  }
  return a;
}

/** The object with more annotations, keys sorted as cdk8s sorts them (the files stay byte-stable). */
function withAnnotations(doc: any, annotations: Record<string, string>): any {
  if (Object.keys(annotations).length === 0) return doc;
  const merged = { ...(doc.metadata?.annotations ?? {}), ...annotations };
  const metadata = { ...doc.metadata, annotations: Object.fromEntries(Object.keys(merged).sort().map((k) => [k, merged[k]])) };
  return { ...doc, metadata: Object.fromEntries(Object.keys(metadata).sort().map((k) => [k, metadata[k]])) };
}
