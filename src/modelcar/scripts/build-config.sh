#!/bin/sh
# Computes the digest of this run's build configuration: what the library decided at synth
# (BUILD_CONFIG_SPEC: builder, its image and script, base image digest, layer threshold,
# artifact format) plus the run's file selection (include / exclude, normalized). The build
# writes it as the label io.kserve.modelcar.build-config; the check compares it, so an image
# built with other settings from the same commit is never taken for this run's.
#
# It also names the serving tag, <commit>-<16 hex of the digest>, as servingTag() in
# serving-reference.ts does at synth: change both or neither.
#
# Env: BUILD_CONFIG_SPEC, MODEL_INCLUDE, MODEL_EXCLUDE, RESULT_BUILD_CONFIG, RESOLVED_REVISION_FILE,
#      RESULT_SERVING_TAG.
set -eu

# The pattern lists with their white space normalized ("a  b " and "a b" select the same files).
set -f
# shellcheck disable=SC2086 # word splitting of the pattern list is intended
set -- ${MODEL_INCLUDE}
include="$*"
# shellcheck disable=SC2086
set -- ${MODEL_EXCLUDE}
exclude="$*"
set +f
# In the step's /tmp; run on its own (the tests), in TMPDIR.
config="${TMPDIR:-/tmp}/build-config.txt"
printf '%s\ninclude: %s\nexclude: %s\n' "${BUILD_CONFIG_SPEC}" "${include}" "${exclude}" > "${config}"
digest="sha256:$(sha256sum < "${config}" | cut -d' ' -f1)"
echo "build configuration ${digest}:"
# Indented for the log; plain shell, since the tools image has no sed (image-inventory.ts).
while IFS= read -r line; do
  printf '  %s\n' "${line}"
done < "${config}"
printf '%s' "${digest}" > "${RESULT_BUILD_CONFIG}"
commit=$(cat "${RESOLVED_REVISION_FILE}")
# 40 hex (sha1), or 64 should the hub move to sha256.
case "${#commit}:${commit}" in
  *:*[!0-9a-f]*) ;;
  40:* | 64:*) commit_ok=true ;;
esac
[ -n "${commit_ok:-}" ] || { echo "the resolved revision \"${commit}\" is not a commit id" >&2; exit 1; }
tag="${commit}-$(printf '%s' "${digest#sha256:}" | cut -c1-16)"
echo "serving tag ${tag} (model commit, build configuration)"
printf '%s' "${tag}" > "${RESULT_SERVING_TAG}"
