import * as fs from 'fs';
import * as path from 'path';
import { App, Chart, Yaml } from 'cdk8s';

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
}

/**
 * Writes synthesized Tekton objects in the layout GitOps repositories use for
 * pipelines: `01-tasks/`, `02-pipeline/`, `03-runs/`, one file per object and a
 * `kustomization.yaml` in each folder, so `kubectl apply -k` or Argo CD can apply them.
 */
export class GitOpsLayout {
  /**
   * Validates the app (as `cdk8s synth` does) and writes every chart's Tekton objects.
   * Returns the files written, relative to outdir.
   */
  public static write(app: App, options: GitOpsLayoutOptions): string[] {
    // synthYaml() runs every construct validation and throws on the first failures.
    app.synthYaml();
    const docs = app.charts.flatMap((c: Chart) => c.toJson());
    const folders: Record<string, string> = { Task: '01-tasks', Pipeline: '02-pipeline', PipelineRun: '03-runs' };
    fs.rmSync(options.outdir, { recursive: true, force: true });
    const written: string[] = [];
    const byFolder = new Map<string, string[]>();
    for (const d of docs) {
      const folder = folders[d.kind] ?? '00-other';
      const name = d.metadata?.name ?? d.metadata?.generateName?.replace(/-$/, '');
      const file = `${d.kind.toLowerCase()}-${name}.yaml`;
      fs.mkdirSync(path.join(options.outdir, folder), { recursive: true });
      fs.writeFileSync(path.join(options.outdir, folder, file), Yaml.stringify(d));
      byFolder.set(folder, [...(byFolder.get(folder) ?? []), file]);
      written.push(`${folder}/${file}`);
    }
    for (const [folder, files] of [...byFolder].sort()) {
      const kustomization = {
        apiVersion: 'kustomize.config.k8s.io/v1beta1',
        kind: 'Kustomization',
        namespace: options.namespace,
        resources: [...files].sort(),
      };
      fs.writeFileSync(path.join(options.outdir, folder, 'kustomization.yaml'), Yaml.stringify(JSON.parse(JSON.stringify(kustomization))));
      written.push(`${folder}/kustomization.yaml`);
    }
    return written.sort();
  }

  private constructor() {}
}
