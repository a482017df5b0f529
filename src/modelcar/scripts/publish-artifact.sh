#!/bin/sh
# Validates the artifact the build wrote under its temporary name, records its manifest
# digest (the image index's, for an image of several platforms), syncs it to disk and
# renames it to its final name: the rename is atomic, so a reader sees either no artifact
# or a complete, valid one.
#
# About formats: `skopeo inspect` or `copy` of an `oci-archive:` unpacks the whole tarball
# to a temporary directory on every call; an `oci:` layout directory is read in place. The
# pipeline defaults to `oci:`. skopeo 1.9 ignores TMPDIR for that unpacking, so --tmpdir
# is passed (to an emptyDir, never the shared volume).
# Env: TMPDIR, ARTIFACT_FORMAT, ARTIFACT_TMP, ARTIFACT_PATH, RESULT_IMAGE_DIGEST.
set -eu
umask 0002

src="${ARTIFACT_FORMAT}:${ARTIFACT_TMP}:modelcar"
mkdir -p "${TMPDIR}"
if [ -e "${ARTIFACT_PATH}" ]; then
  echo "${ARTIFACT_PATH} already exists: this run's directory is not fresh; refusing to replace it" >&2
  exit 1
fi
if ! skopeo --tmpdir "${TMPDIR}" inspect "${src}" > /tmp/inspect.json 2> /tmp/inspect.err; then
  echo "the built artifact ${src} is not a valid image:" >&2
  cat /tmp/inspect.err >&2
  exit 1
fi
skopeo --tmpdir "${TMPDIR}" inspect --raw "${src}" > /tmp/manifest.json
digest="sha256:$(sha256sum < /tmp/manifest.json | cut -d' ' -f1)"
# Count the descriptors, not the lines: the manifest may be a single line of JSON.
descriptors=$(grep -o '"digest"' /tmp/manifest.json | wc -l)
if grep -q '"manifests"' /tmp/manifest.json; then
  # An image index: its digest is the image's, whichever platform a node pulls.
  echo "validated ${src}: image index ${digest} (${descriptors} platform manifests)"
else
  echo "validated ${src}: manifest ${digest} (config and $((descriptors - 1)) layers)"
fi

chmod -R g+rwX "${ARTIFACT_TMP}"
sync
mv -T "${ARTIFACT_TMP}" "${ARTIFACT_PATH}"
sync
echo "published ${ARTIFACT_FORMAT}:${ARTIFACT_PATH}:modelcar"
printf '%s' "${digest}" > "${RESULT_IMAGE_DIGEST}"
