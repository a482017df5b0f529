#!/bin/sh
# Clean-up: the pipeline's `finally` task. It removes this run's directory from the shared
# volume once the pushes are done (or the run failed), so what the run downloaded and built
# does not stay on the volume for as long as the PipelineRun exists. On a volume made from
# the run's volumeClaimTemplate the space returns to the storage only where the storage
# gives back freed blocks (thin provisioning with discard); on a shared claim
# (`existingClaim`) it is free for the next run at once.
#
# It removes exactly one directory, $WORKSPACE/modelcar-runs/$RUN_ID, and checks that this
# is the directory it was given, so a wrong param can never remove anything else.
#
# Env: WORKSPACE, RUN_ID, RUN_DIR, RUN_STATUS (the status of the pipeline's tasks, for the log).
set -eu

case "${RUN_ID}" in
  '' | . | .. | *[!A-Za-z0-9_.-]*)
    echo "RUN_ID \"${RUN_ID}\" is not a plain name (it names this run's directory): the pipeline passes the PipelineRun uid" >&2
    exit 1 ;;
esac
if [ "${RUN_DIR}" != "${WORKSPACE}/modelcar-runs/${RUN_ID}" ]; then
  echo "refusing to remove ${RUN_DIR}: not this run's directory (${WORKSPACE}/modelcar-runs/${RUN_ID})" >&2
  exit 1
fi

echo "run status: ${RUN_STATUS:-unknown}"
if [ ! -e "${RUN_DIR}" ]; then
  echo "nothing to remove: ${RUN_DIR} does not exist (the run found its image published, or failed before writing)"
  exit 0
fi
echo "free space before:"
df -k "${WORKSPACE}" 2>&1 | while IFS= read -r line; do printf '  %s\n' "${line}"; done
rm -rf "${RUN_DIR}" || echo "rm reported the errors above" >&2
sync
if [ -e "${RUN_DIR}" ]; then
  echo "could not remove ${RUN_DIR}: what is left is listed below" >&2
  ls -laR "${RUN_DIR}" >&2 || true
  exit 1
fi
echo "removed ${RUN_DIR}"
echo "free space after:"
df -k "${WORKSPACE}" 2>&1 | while IFS= read -r line; do printf '  %s\n' "${line}"; done
