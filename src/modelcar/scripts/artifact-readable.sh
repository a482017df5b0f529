#!/bin/sh
# The debug preamble of a task that reads the build's artifact (the pushes): after the
# listing, checks that every file of the artifact can be read by this identity, and fails
# with the identity, the file's owner, group and mode, and the fix. A task that does not
# read the artifact runs preamble.sh alone: a step carries only the code it runs.
#
# Env: as preamble.sh, ARTIFACT_PATH required.
# shellcheck source-path=SCRIPTDIR source=preamble.sh
. "$(dirname "$0")/preamble.sh"

describe() {
  stat -c 'owner %U (uid %u), group %G (gid %g), mode %A' "$1" 2>/dev/null || echo "unknown (stat failed)"
}

unreadable() {
  echo "cannot read $1: this task runs as uid $(id -u), gid $(id -g), groups $(id -G | tr ' ' ','); the file has $(describe "$1")." >&2
  echo "Likely fix: run every task under the same fsGroup (PipelineRun taskRunTemplate.podTemplate.securityContext.fsGroup) and let no task set its own runAsUser/runAsGroup, so outputs are group-readable by every task." >&2
  exit 1
}

if [ ! -e "${ARTIFACT_PATH}" ]; then
  # Without search permission on a directory above it, the file looks absent: walking up,
  # the first directory this identity can stat but not enter is the one in the way.
  dir=$(dirname "${ARTIFACT_PATH}")
  while [ "${dir}" != "/" ] && [ "${dir}" != "." ]; do
    if [ -d "${dir}" ]; then
      [ -x "${dir}" ] || unreadable "${dir}"
      break
    fi
    dir=$(dirname "${dir}")
  done
  echo "artifact ${ARTIFACT_PATH} does not exist: the build task of this run did not produce it" >&2
  exit 1
fi
# `test -r` asks the kernel (access(2)) with this process's uid and groups. The walk is
# plain shell (an OCI layout has a few dozen entries): the first entry this identity
# cannot read, or a directory it cannot enter, fails the task.
check_tree() {
  if [ ! -r "$1" ] || { [ -d "$1" ] && [ ! -x "$1" ]; }; then
    unreadable "$1"
  fi
  if [ -d "$1" ] && [ ! -L "$1" ]; then
    for entry in "$1"/* "$1"/.[!.]* "$1"/..?*; do
      if [ -e "${entry}" ] || [ -L "${entry}" ]; then
        check_tree "${entry}"
      fi
    done
  fi
}
check_tree "${ARTIFACT_PATH}"
echo "artifact is readable by uid $(id -u) (groups $(id -G | tr ' ' ','))"
