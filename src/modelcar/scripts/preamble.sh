#!/bin/sh
# Debug preamble: the first step of every modelcar task. It prints who the task runs as
# and what it sees on the shared volume, so a permission or stale-content problem shows
# in the log of the task that hit it (the two failures of the root-cause analysis).
#
# With REQUIRE_READABLE=true it then checks that every file of the artifact can be
# read, and fails with the identity, the file's owner, group and mode, and the fix.
#
# Env: TASK_LABEL, WORKSPACE, RUN_ID, RUN_DIR, ARTIFACT_PATH (optional), REQUIRE_READABLE (optional).
# The listings are for people reading the log, so plain `ls -la` is what we want.
# It runs in the tools (skopeo) image, so it calls only the shell and coreutils (no find,
# sed or awk: see image-inventory.ts).
# shellcheck disable=SC2012
set -u

# Indents a listing by two spaces.
indent() {
  while IFS= read -r line || [ -n "${line}" ]; do
    printf '  %s\n' "${line}"
  done
}

case "${RUN_ID}" in
  '' | . | .. | *[!A-Za-z0-9_.-]*)
    echo "RUN_ID \"${RUN_ID}\" is not a plain name (it names this run's directory): the pipeline passes the PipelineRun uid" >&2
    exit 1 ;;
esac

echo "================ modelcar debug: ${TASK_LABEL:-task} ================"
echo "identity:  $(id)"
echo "groups:    $(id -G)"
echo "umask:     $(umask)"
echo "workspace: ${WORKSPACE}"
ls -la "${WORKSPACE}" 2>&1 | indent
echo "run dir:   ${RUN_DIR}"
if [ -d "${RUN_DIR}" ]; then
  ls -la "${RUN_DIR}" 2>&1 | indent
else
  echo "  (not created yet)"
fi
if [ -n "${ARTIFACT_PATH:-}" ]; then
  echo "artifact:  ${ARTIFACT_PATH}"
  stat "${ARTIFACT_PATH}" 2>&1 | indent
  if [ -d "${ARTIFACT_PATH}" ]; then
    ls -la "${ARTIFACT_PATH}" "${ARTIFACT_PATH}/blobs/sha256" 2>&1 | indent
  fi
fi
echo "free space:"
df -h "${WORKSPACE}" 2>&1 | indent
echo "================ end of modelcar debug ================"

if [ "${REQUIRE_READABLE:-false}" != "true" ]; then
  exit 0
fi

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
