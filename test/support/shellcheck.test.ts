import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  collectTektonScripts, expectShellcheckClean, mapTektonSubstitutions, shellcheckScript, shellDialect, tektonVariableName,
} from './shellcheck';

const IMAGE = 'registry.access.redhat.com/ubi9/ubi-minimal:latest';

describe('shellcheckScript', () => {
  test('a clean script passes', () => {
    expect(shellcheckScript('set -eu\nmodel="${MODEL:-granite}"\nprintf "%s\\n" "$model"\n')).toEqual([]);
  });

  test('an unquoted variable fails with SC2086, positioned in the original script', () => {
    const findings = shellcheckScript('set -eu\ncp -r $SRC /out\n', { name: 'build' });
    expect(findings).toEqual([expect.stringMatching(/^build:2:7: info SC2086: Double quote to prevent globbing.* \| cp -r \$SRC \/out$/)]);
  });

  test('Tekton substitutions are mapped to variables, not command substitutions', () => {
    const script = [
      'set -eu',
      'echo "$(params.model) $(params["model-id"]) $(params.repo.url)" > "$(results.digest.path)"',
      'cd "$(workspaces.source.path)" && ls "$(context.pipelineRun.uid)" "$(tasks.build.results.digest)"',
      'cat "$(steps.step-build.exitCode.path)" "$(params.arr[0])"',
      // Tekton substitutes inside single quotes too: no SC2016 for a quoted reference.
      "echo 'model: $(params.model)'",
      'today="$(date +%F)"',
      'echo "$today"',
      '',
    ].join('\n');
    expect(shellcheckScript(script)).toEqual([]);
  });

  test('SC2016 stays for a real expansion in single quotes next to a Tekton reference', () => {
    expect(shellcheckScript("echo '$(params.model) $HOME'\n")).toEqual([expect.stringMatching(/SC2016/)]);
  });

  test('an unquoted Tekton substitution is flagged (the value would be word-split)', () => {
    const findings = shellcheckScript('echo "x"\ncp $(params.source) /out\n', { name: 's' });
    // Column 4 is where `$(params.source)` starts in the original line.
    expect(findings).toEqual([expect.stringMatching(/^s:2:4: info SC2086: .* \| cp \$\(params\.source\) \/out$/)]);
  });

  test('maps reference names to valid shell variable names', () => {
    expect(tektonVariableName('$(params.x)')).toBe('TEKTON_PARAMS_X');
    expect(tektonVariableName('$(params["model-id"])')).toBe('TEKTON_PARAMS_MODEL_ID');
    expect(tektonVariableName('$(steps.step-x.exitCode.path)')).toBe('TEKTON_STEPS_STEP_X_EXITCODE_PATH');
    expect(tektonVariableName('$(params.list[*])')).toBe('TEKTON_PARAMS_LIST');
    expect(mapTektonSubstitutions('a $(params.x) $(date) $(ls params.x)').text).toBe('a ${TEKTON_PARAMS_X} $(date) $(ls params.x)');
  });

  test('a script without shebang is checked as sh (Tekton runs it with /bin/sh)', () => {
    expect(shellDialect('echo hi\n')).toBe('sh');
    expect(shellcheckScript('if [[ -n "${X:-}" ]]; then echo x; fi\n')).toEqual([expect.stringMatching(/SC3010/)]);
  });

  test('a bash-shebang script is checked as bash', () => {
    const script = 'if [[ -n "${X:-}" ]]; then echo x; fi\nfiles=(a b)\necho "${files[@]}"\n';
    expect(shellDialect(`#!/bin/bash\n${script}`)).toBe('bash');
    expect(shellDialect(`#!/usr/bin/env -S bash -eu\n${script}`)).toBe('bash');
    expect(shellcheckScript(`#!/usr/bin/env bash\n${script}`)).toEqual([]);
    expect(shellcheckScript(`#!/bin/sh\n${script}`)).toEqual(expect.arrayContaining([expect.stringMatching(/SC3010|SC3030/)]));
  });

  test('a non-shell interpreter is not shellchecked; an unsupported shell is refused', () => {
    expect(shellDialect('#!/usr/bin/env python3\nprint("$(params.x)")\n')).toBeUndefined();
    expect(shellcheckScript('#!/usr/bin/env python3\nimport os\nprint(os.environ)\n')).toEqual([]);
    expect(() => shellcheckScript('#!/bin/zsh\necho hi\n')).toThrow(/cannot check zsh/);
  });

  test('a syntax error is a finding', () => {
    expect(shellcheckScript('if true; then\necho x\n')).toEqual(expect.arrayContaining([expect.stringMatching(/error SC10\d\d/)]));
  });

  test('throws (never skips) when shellcheck is not on PATH', () => {
    const saved = process.env.PATH;
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'no-shellcheck-'));
    process.env.PATH = empty;
    try {
      expect(() => shellcheckScript('echo hi\n')).toThrow(/shellcheck is not available on PATH.*bash scripts\/install-test-tools\.sh/);
    } finally {
      process.env.PATH = saved;
      fs.rmSync(empty, { recursive: true });
    }
  });
});

function pipelineRunWithEmbeddedSpecs(badScript: string): any {
  return {
    apiVersion: 'tekton.dev/v1',
    kind: 'PipelineRun',
    metadata: { generateName: 'modelcar-' },
    spec: {
      pipelineSpec: {
        tasks: [
          { name: 'build', taskSpec: { steps: [{ name: 'build', image: IMAGE, script: 'echo "$(params.model)"\n' }] } },
          {
            name: 'nested',
            pipelineSpec: { tasks: [{ name: 'inner', taskSpec: { steps: [{ name: 'inner', image: IMAGE, script: badScript }] } }] },
          },
        ],
        finally: [{
          name: 'report',
          taskSpec: {
            steps: [{ name: 'report', image: IMAGE, script: 'echo finished\n' }],
            sidecars: [{ name: 'registry', image: IMAGE, script: '#!/bin/bash\nexec sleep infinity\n' }],
          },
        }],
      },
    },
  };
}

describe('collectTektonScripts / expectShellcheckClean', () => {
  const task = {
    apiVersion: 'tekton.dev/v1',
    kind: 'Task',
    metadata: { name: 'build' },
    spec: { steps: [{ name: 'a', image: IMAGE, script: 'echo a\n' }, { name: 'b', image: IMAGE, command: ['true'] }] },
  };

  test('finds scripts in Task steps and in embedded taskSpecs (also nested pipelineSpecs, finally, sidecars)', () => {
    const scripts = collectTektonScripts([
      task,
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' }, data: { script: 'not a step' } },
      pipelineRunWithEmbeddedSpecs('echo inner\n'),
    ]);
    expect(scripts.map((s) => s.location)).toEqual([
      'Task/build /spec/steps/0/script',
      'PipelineRun/modelcar-* /spec/pipelineSpec/tasks/0/taskSpec/steps/0/script',
      'PipelineRun/modelcar-* /spec/pipelineSpec/tasks/1/pipelineSpec/tasks/0/taskSpec/steps/0/script',
      'PipelineRun/modelcar-* /spec/pipelineSpec/finally/0/taskSpec/steps/0/script',
      'PipelineRun/modelcar-* /spec/pipelineSpec/finally/0/taskSpec/sidecars/0/script',
    ]);
  });

  test('finds scripts in TaskRun.spec.taskSpec and Pipeline tasks', () => {
    const scripts = collectTektonScripts([
      { apiVersion: 'tekton.dev/v1', kind: 'TaskRun', metadata: { name: 'r' }, spec: { taskSpec: task.spec } },
      { apiVersion: 'tekton.dev/v1', kind: 'Pipeline', metadata: { name: 'p' }, spec: { tasks: [{ name: 't', taskSpec: task.spec }] } },
    ]);
    expect(scripts.map((s) => s.location)).toEqual([
      'TaskRun/r /spec/taskSpec/steps/0/script',
      'Pipeline/p /spec/tasks/0/taskSpec/steps/0/script',
    ]);
  });

  test('passes clean documents', () => {
    expect(() => expectShellcheckClean([task, pipelineRunWithEmbeddedSpecs('echo "$(params.x)"\n')])).not.toThrow();
  });

  test('throws one error naming the step path and the findings', () => {
    expect(() => expectShellcheckClean([task, pipelineRunWithEmbeddedSpecs('rm -rf $TARGET/cache\n')])).toThrow(
      /shellcheck findings in 1 script\(s\):\n {2}PipelineRun\/modelcar-\* \/spec\/pipelineSpec\/tasks\/1\/pipelineSpec\/tasks\/0\/taskSpec\/steps\/0\/script:\n {4}script:1:8: info SC2086: .* \| rm -rf \$TARGET\/cache/,
    );
  });
});
