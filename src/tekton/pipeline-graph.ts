import { Pipeline, PipelineTask } from './pipeline';

/**
 * Draws a Pipeline's task graph, from the construct itself, so a picture of a pipeline
 * is never out of date with the pipeline it shows.
 */
export class PipelineGraph {
  /**
   * The task graph as a Mermaid flowchart (left to right). One node per task, labelled
   * with the task's name and its steps; one edge per dependency (`runAfter` or a result
   * used), labelled with the results that flow along it. Finally tasks are drawn in a
   * `finally` box. The same pipeline always gives the same text.
   */
  public static mermaid(pipeline: Pipeline): string {
    const lines = ['flowchart LR'];
    const ids = new Map<string, string>();
    const all = [...pipeline.tasks, ...pipeline.finallyTasks];
    for (const t of all) ids.set(t.name, nodeId(t.name, ids));
    const node = (t: PipelineTask) => `${ids.get(t.name)}["${escapeLabel(t.name)}<br/>${escapeLabel(t.task.steps.map((s) => s.name).join(', '))}"]`;
    for (const t of pipeline.tasks) lines.push(`  ${node(t)}`);
    if (pipeline.finallyTasks.length > 0) {
      lines.push('  subgraph finally');
      for (const t of pipeline.finallyTasks) lines.push(`    ${node(t)}`);
      lines.push('  end');
    }
    for (const t of pipeline.tasks) {
      const used = resultsUsed(t);
      for (const dep of t._dependencies()) {
        if (!ids.has(dep)) continue; // a dangling reference: the pipeline's validation reports it
        const results = [...(used.get(dep) ?? [])].sort();
        const arrow = results.length > 0 ? `-->|${escapeLabel(results.join(', '))}|` : '-->';
        lines.push(`  ${ids.get(dep)} ${arrow} ${ids.get(t.name)}`);
      }
    }
    return `${lines.join('\n')}\n`;
  }

  private constructor() {}
}

/** The results of other tasks a task uses, by task name. */
function resultsUsed(t: PipelineTask): Map<string, Set<string>> {
  const used = new Map<string, Set<string>>();
  for (const s of t._strings()) {
    for (const m of s.matchAll(/\$\(\s*tasks\.([a-z0-9-]+)\.results\.([A-Za-z0-9_.-]+)/g)) {
      used.set(m[1], (used.get(m[1]) ?? new Set()).add(m[2]));
    }
  }
  return used;
}

/** Mermaid node ids: no '-' (it reads as an edge) and none of its keywords. */
function nodeId(name: string, taken: Map<string, string>): string {
  let id = name.replace(/[^A-Za-z0-9]/g, '_');
  if (['end', 'graph', 'subgraph', 'flowchart', 'style', 'class', 'click', 'default'].includes(id)) id = `${id}_task`;
  const used = new Set(taken.values());
  let unique = id;
  for (let i = 2; used.has(unique); i++) unique = `${id}_${i}`;
  return unique;
}

/** Label text: Mermaid's entity codes for the characters that end a label or open markup. */
function escapeLabel(text: string): string {
  return text.replace(/"/g, '#quot;').replace(/\|/g, '#124;').replace(/</g, '#lt;').replace(/>/g, '#gt;');
}
