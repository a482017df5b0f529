#!/bin/sh
# Computes the digest of this run's build configuration: what the library decided at synth
# (BUILD_CONFIG_SPEC: builder, its image and script, base image digest, layer threshold,
# artifact format) plus the run's file selection (include / exclude, normalized). The build
# writes it as the label io.kserve.modelcar.build-config; the check compares it, so an image
# built with other settings from the same commit is never taken for this run's.
#
# Env: BUILD_CONFIG_SPEC, MODEL_INCLUDE, MODEL_EXCLUDE, RESULT_BUILD_CONFIG.
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
printf '%s\ninclude: %s\nexclude: %s\n' "${BUILD_CONFIG_SPEC}" "${include}" "${exclude}" > /tmp/build-config.txt
digest="sha256:$(sha256sum < /tmp/build-config.txt | cut -d' ' -f1)"
echo "build configuration ${digest}:"
# Indented for the log; plain shell, since the tools image has no sed (image-inventory.ts).
while IFS= read -r line; do
  printf '  %s\n' "${line}"
done < /tmp/build-config.txt
printf '%s' "${digest}" > "${RESULT_BUILD_CONFIG}"
