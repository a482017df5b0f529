#!/bin/sh
# Last step of the check: reads every target's verdict and writes the REBUILD result the
# download, build and pushes are guarded by (Tekton `when`). "false" only when every target
# serves every tag of this run, built from this commit with this build configuration.
#
# Env: FORCE_REBUILD, VERDICT_DIR, TARGETS (space-separated names), RESULT_REBUILD.
set -eu

rebuild=false
set -f
# shellcheck disable=SC2086 # word splitting of the target list is intended
set -- ${TARGETS}
set +f
echo "what each target holds:"
for target in "$@"; do
  if [ ! -s "${VERDICT_DIR}/${target}" ]; then
    echo "no verdict from the check of ${target}: its step did not run to the end" >&2
    exit 1
  fi
  line=$(cat "${VERDICT_DIR}/${target}")
  echo "  ${target}: ${line}"
  case "${line}" in
    "serves "*) ;;
    *) rebuild=true ;;
  esac
done
if [ "${FORCE_REBUILD}" = true ]; then
  echo "rebuilding: forced by FORCE_REBUILD=true"
elif [ "${rebuild}" = true ]; then
  echo "rebuilding: a target lacks this image (above); the build pushes to every target (blobs a registry holds are not sent again)"
else
  echo "skipping download, build and pushes: every target already serves every tag of this run, built from this commit with this build config"
fi
printf '%s' "${rebuild}" > "${RESULT_REBUILD}"
