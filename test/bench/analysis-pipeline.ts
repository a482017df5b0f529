/**
 * The root-cause analysis's pipeline (the seed's way), written as plain Tekton YAML for the benchmark: see the
 * header of build-push.bench.ts.
 */
import { loadScript } from '../../src/modelcar/scripts';
import { FS_GROUP, MODEL_REPO, NAMESPACE, repositoryOf, World } from '../e2e/modelcar/world';
import { Manifest } from '../e2e/runner/tekton-runner';

export interface AnalysisOptions {
  /** The repository name under NAMESPACE at both registries (repositoryOf's `name`). Default 'synthetic-model'. */
  readonly repositoryName?: string;
  /** The tag both pushes push. Default 'analysis'. */
  readonly tag?: string;
}

/**
 * The analysis's pipeline, as its YAML did it (paths, formats and tools), with env instead of inlined params:
 * download-model (the same fetch script as ours), build-image (buildah vfs, `oci-archive:` on the volume, then
 * `skopeo inspect` of the archive), push-internal, push-quay (each inspects and copies the archive). Its
 * PipelineRun is named `analysis`.
 */
export function analysisManifests(world: World, opts: AnalysisOptions = {}): Manifest[] {
  const tag = opts.tag ?? 'analysis';
  const ws = '$(workspaces.source.path)';
  const archive = `${ws}/oci/image.tar`;
  const skopeo = 'registry.access.redhat.com/ubi9/skopeo';
  const push = (name: string, registry: string) => ({
    apiVersion: 'tekton.dev/v1',
    kind: 'Task',
    metadata: { name: `analysis-push-${name}` },
    spec: {
      workspaces: [{ name: 'source' }],
      volumes: [
        { name: 'tmp', emptyDir: {} },
        { name: 'ca', configMap: { name: 'registry-ca' } },
        { name: 'auth', secret: { secretName: `${name}-push` } },
      ],
      steps: [{
        name: `push-${name}`,
        image: skopeo,
        env: [{ name: 'ARCHIVE', value: archive }, { name: 'DEST', value: `docker://${registry}:${tag}` }],
        volumeMounts: [{ name: 'tmp', mountPath: '/var/tmp' }, { name: 'ca', mountPath: '/etc/certs' }, { name: 'auth', mountPath: '/etc/auth' }],
        script: `#!/bin/sh
set -eu
# The analysis: inspect the archive (debug/validation), then copy it. Each call unpacks the archive to its temp
# dir (/var/tmp: the container's disk on the node), see test/e2e/support/skopeo.ts.
skopeo --tmpdir /var/tmp inspect "oci-archive:\${ARCHIVE}" > /dev/null
skopeo --tmpdir /var/tmp copy --quiet --dest-cert-dir /etc/certs --dest-authfile /etc/auth/.dockerconfigjson "oci-archive:\${ARCHIVE}" "\${DEST}"
`,
      }],
    },
  });
  const build = {
    apiVersion: 'tekton.dev/v1',
    kind: 'Task',
    metadata: { name: 'analysis-build-image' },
    spec: {
      workspaces: [{ name: 'source' }],
      volumes: [
        { name: 'containers', emptyDir: {} },
        { name: 'tmp', emptyDir: {} },
        { name: 'ca', configMap: { name: 'base-ca' } },
        { name: 'auth', secret: { secretName: 'base-pull' } },
      ],
      steps: [
        {
          name: 'build-image',
          image: 'registry.redhat.io/rhel9/buildah',
          securityContext: { privileged: true },
          env: [{ name: 'WS', value: ws }, { name: 'BASE', value: world.base.reference }, { name: 'TMPDIR', value: '/var/tmp' }],
          volumeMounts: [{ name: 'containers', mountPath: '/var/lib/containers' }, { name: 'tmp', mountPath: '/var/tmp' }, { name: 'ca', mountPath: '/etc/certs' }, { name: 'auth', mountPath: '/etc/auth' }],
          script: `#!/bin/sh
set -eu
set -- --storage-driver vfs --root /var/lib/containers/storage --runroot /var/lib/containers/run
ctr=$(buildah "$@" from --quiet --cert-dir /etc/certs --authfile /etc/auth/.dockerconfigjson "docker://\${BASE}")
buildah "$@" copy --quiet "\${ctr}" "\${WS}/model" /models
buildah "$@" commit --quiet "\${ctr}" modelcar > /dev/null
mkdir -p "\${WS}/oci"
buildah "$@" push --quiet modelcar "oci-archive:\${WS}/oci/image.tar:latest"
sync
`,
        },
        {
          name: 'validate',
          image: skopeo,
          env: [{ name: 'ARCHIVE', value: archive }],
          volumeMounts: [{ name: 'tmp', mountPath: '/var/tmp' }],
          script: `#!/bin/sh
set -eu
skopeo --tmpdir /var/tmp inspect --format '{{.Digest}}' "oci-archive:\${ARCHIVE}"
`,
        },
      ],
    },
  };
  const download = {
    apiVersion: 'tekton.dev/v1',
    kind: 'Task',
    metadata: { name: 'analysis-download-model' },
    spec: {
      workspaces: [{ name: 'source' }],
      results: [{ name: 'MODEL_RESOLVED_REVISION' }],
      // The same fetch script as ours (download-model's, with its defaults), from the same fake hub: the build stage
      // leaves the download out of its figures; the publish stage counts it, the same for the seed and the volume mode.
      volumes: [{ name: 'hub-ca', configMap: { name: 'hub-ca' } }],
      steps: [{
        name: 'fetch',
        image: 'registry.access.redhat.com/ubi9/python-312',
        env: [
          { name: 'MODEL_DIR', value: `${ws}/model` }, { name: 'RESOLVED_REVISION_FILE', value: '$(results.MODEL_RESOLVED_REVISION.path)' },
          { name: 'HF_REPO', value: MODEL_REPO }, { name: 'HF_ENDPOINT', value: world.hub.hubUrl }, { name: 'HF_CA_DIR', value: '/etc/hub-ca' },
        ],
        volumeMounts: [{ name: 'hub-ca', mountPath: '/etc/hub-ca', readOnly: true }],
        script: loadScript('hf-fetch.py'),
      }],
    },
  };
  const pipeline = {
    apiVersion: 'tekton.dev/v1',
    kind: 'Pipeline',
    metadata: { name: 'analysis' },
    spec: {
      workspaces: [{ name: 'shared' }],
      tasks: [
        { name: 'download-model', taskRef: { name: 'analysis-download-model' }, workspaces: [{ name: 'source', workspace: 'shared' }] },
        { name: 'build-image', taskRef: { name: 'analysis-build-image' }, runAfter: ['download-model'], workspaces: [{ name: 'source', workspace: 'shared' }] },
        { name: 'push-internal', taskRef: { name: 'analysis-push-internal' }, runAfter: ['build-image'], workspaces: [{ name: 'source', workspace: 'shared' }] },
        { name: 'push-quay', taskRef: { name: 'analysis-push-quay' }, runAfter: ['push-internal'], workspaces: [{ name: 'source', workspace: 'shared' }] },
      ],
    },
  };
  const run = {
    apiVersion: 'tekton.dev/v1',
    kind: 'PipelineRun',
    metadata: { name: 'analysis', namespace: NAMESPACE },
    spec: {
      pipelineRef: { name: 'analysis' },
      taskRunTemplate: { podTemplate: { securityContext: { fsGroup: FS_GROUP } } },
      taskRunSpecs: [{ pipelineTaskName: 'build-image', podTemplate: { securityContext: { runAsUser: 0, fsGroup: FS_GROUP } } }],
      workspaces: [{ name: 'shared', volumeClaimTemplate: { spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '10Gi' } } } } }],
    },
  };
  return [download, build, push('internal', repositoryOf(world.internal, opts.repositoryName)), push('quay', repositoryOf(world.quay, opts.repositoryName)), pipeline, run];
}
