/**
 * What each pinned image provides to the step scripts (`ModelcarImages`): the commands a
 * step may call, each with the evidence that the image has it. Steps call nothing else
 * (test/app/main.test.ts parses every script of the default app and checks it against
 * this list). Where there was no evidence, the work moved: `find`, `xargs` (findutils) and
 * `awk` are not in the tools image, so the checksum step runs in the Python image and the
 * debug preamble walks the artifact in plain shell.
 *
 * Evidence (read with the project's search tools; the UBI 9 skopeo image's own
 * Containerfile is not public):
 * - UBI 9 standard image: sclorg/s2i-base-container `core/Dockerfile.rhel9` is
 *   `FROM registry.access.redhat.com/ubi9` and its RUN lines call `mkdir`, `chown` (coreutils)
 *   without installing them, while it installs `findutils` and `tar`: the base has
 *   coreutils and a POSIX shell, not findutils; `base/Dockerfile.rhel9` pipes into `grep`
 *   without installing it: grep is there. No RUN line shows `sed` or `awk`: not relied on.
 * - Red Hat's skopeo image: its public sibling (`rhel8/skopeo`, component
 *   `skopeo-container`) is `FROM ubi8-init` plus `dnf install skopeo`: a standard UBI with
 *   skopeo added. The UBI 9 one is taken to be built the same way, so it gets the UBI
 *   base's commands above plus skopeo, nothing more.
 * - UBI 9 Python 3.12: sclorg/s2i-python-container `3.12/Dockerfile.rhel9` is
 *   `FROM ubi9/s2i-base` (← s2i-core ← ubi9), installs `python3.12` and makes a venv whose
 *   `bin/` (python3) is on PATH: python3, plus the UBI base, plus findutils and tar
 *   (s2i-core), which and procps-ng (s2i-base).
 * - rhel9/buildah: `buildah` on the UBI base (no public Containerfile of this image either).
 *
 * @internal
 */
const UBI_BASE = [
  // the shell Tekton starts a script with, and `env` for a `#!/usr/bin/env` shebang
  'sh', 'env',
  // coreutils
  'base64', 'cat', 'chmod', 'cut', 'df', 'dirname', 'head', 'id', 'ls', 'mkdir', 'mv', 'rm',
  'sha256sum', 'sort', 'stat', 'sync', 'tail', 'tr', 'wc',
  // grep
  'grep',
];

/** Image repository (without tag or digest) → the commands its steps may call. @internal */
export const IMAGE_COMMANDS: Record<string, string[]> = {
  'registry.access.redhat.com/ubi9/skopeo': [...UBI_BASE, 'skopeo'],
  'registry.access.redhat.com/ubi9/python-312': [...UBI_BASE, 'python3', 'find', 'xargs', 'tar', 'which'],
  'registry.redhat.io/rhel9/buildah': [...UBI_BASE, 'buildah'],
};

/**
 * The user each pinned image runs as (its `USER`, and that user's primary group): what a container without
 * runAsUser gets where the SCC does not assign one (OpenShift Pipelines' pipelines-scc is RunAsAny). The local
 * runner takes this table as its `imageUsers` option.
 *
 * Evidence:
 * - UBI 9 Python 3.12: sclorg/s2i-python-container `3.12/Dockerfile.rhel9` ends with `USER 1001` and declares
 *   `CNB_USER_ID=1001`, `CNB_GROUP_ID=0`; the user is created by its s2i-core base as uid 1001 in group 0 (root),
 *   which is how the image's files (`chown -R 1001:0 ${APP_ROOT}`) stay writable under any OpenShift uid.
 * - UBI 9 skopeo and rhel9/buildah: built like their public sibling `rhel8/skopeo` (`FROM ubi8-init` plus
 *   `dnf install`), with no `USER` line: they run as root, 0:0.
 *
 * @internal
 */
export const IMAGE_USERS: Record<string, { uid: number; gid: number }> = {
  'registry.access.redhat.com/ubi9/skopeo': { uid: 0, gid: 0 },
  'registry.access.redhat.com/ubi9/python-312': { uid: 1001, gid: 0 },
  'registry.redhat.io/rhel9/buildah': { uid: 0, gid: 0 },
};
