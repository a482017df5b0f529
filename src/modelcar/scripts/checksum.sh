#!/bin/sh
# Writes SHA256SUMS for the downloaded model and the download task's results.
# The build verifies the manifest, so a file changed or lost between the tasks fails
# the build instead of being packaged.
#
# It runs in the Python image (UBI 9 + s2i-core: findutils and coreutils, see
# ModelcarImages); the tools image has no find or xargs.
#
# Env: MODEL_DIR, RESOLVED_REVISION_FILE, RESULT_MODEL_SIZE, RESULT_MODEL_REVISION.
set -eu
umask 0002

cd "${MODEL_DIR}"
if [ -z "$(find . -type f ! -name SHA256SUMS ! -name '*.part' | head -n 1)" ]; then
  echo "no model files in ${MODEL_DIR}: the download wrote nothing" >&2
  exit 1
fi
if [ -n "$(find . -name '*.part' | head -n 1)" ]; then
  echo "partial downloads left in ${MODEL_DIR}: $(find . -name '*.part' | head -n 3 | tr '\n' ' ')" >&2
  exit 1
fi

# Written beside the model directory, then moved in: the listing must not include itself.
sums="${MODEL_DIR}.SHA256SUMS.tmp"
find . -type f ! -name SHA256SUMS -print0 | LC_ALL=C sort -z | xargs -0 sha256sum > "${sums}"
sync
mv -f "${sums}" SHA256SUMS

size=0
for bytes in $(find . -type f ! -name SHA256SUMS -print0 | xargs -0 stat -c %s); do
  size=$((size + bytes))
done
files=$(wc -l < SHA256SUMS)
revision=$(cat "${RESOLVED_REVISION_FILE}")
echo "model: ${files} files, ${size} bytes, revision ${revision}"
printf '%s' "${size}" > "${RESULT_MODEL_SIZE}"
printf '%s' "${revision}" > "${RESULT_MODEL_REVISION}"
