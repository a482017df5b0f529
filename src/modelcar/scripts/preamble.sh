#!/bin/sh
# Debug preamble: the first step of every modelcar task. It prints who the task runs as
# and what it sees on the shared volume, so a permission or stale-content problem shows
# in the log of the task that hit it (the two failures of the root-cause analysis).
# A task that reads the artifact runs artifact-readable.sh instead, which adds a check of it.
#
# Env: TASK_LABEL, WORKSPACE, RUN_ID, RUN_DIR, ARTIFACT_PATH (optional).
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
