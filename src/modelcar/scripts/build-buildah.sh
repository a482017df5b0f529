#!/bin/sh
# Builds the modelcar image with buildah: the base image plus the model under /models,
# written as an OCI artifact under a temporary name. The next step validates it and
# gives it its final name, so a reader never sees a half-written artifact.
#
# Env: MODEL_DIR, SUMS_FILE (SHA256SUMS of the download, paths relative to MODEL_DIR), BASE_IMAGE, ARTIFACT_FORMAT (oci | oci-archive), ARTIFACT_TMP,
#      MODEL_REPO, MODEL_REVISION, TLS_VERIFY, CONTAINERS_STORAGE, BASE_CERT_DIR (optional),
#      BASE_AUTHFILE (optional).
set -eu
umask 0002

echo "verifying ${MODEL_DIR} against ${SUMS_FILE}"
if ! (cd "${MODEL_DIR}" && sha256sum --check --quiet --strict "${SUMS_FILE}"); then
  echo "model files in ${MODEL_DIR} do not match SHA256SUMS from the download: refusing to build" >&2
  exit 1
fi

rm -rf "${ARTIFACT_TMP}"
mkdir -p "${TMPDIR}"
set -- --storage-driver vfs --root "${CONTAINERS_STORAGE}/storage" --runroot "${CONTAINERS_STORAGE}/run"
pull="--tls-verify=${TLS_VERIFY}"
ctr=$(buildah "$@" from ${BASE_CERT_DIR:+--cert-dir "${BASE_CERT_DIR}"} ${BASE_AUTHFILE:+--authfile "${BASE_AUTHFILE}"} "${pull}" --isolation chroot "docker://${BASE_IMAGE}")
# The model files are root-owned and world-readable in the image: KServe runs the
# modelcar under an arbitrary uid, which must read /models. `buildah copy` keeps the
# modes, so they are checked here (`buildah run` does not work rootless, so no chmod in
# the image).
unreadable=$(find "${MODEL_DIR}" \( -type f ! -perm -0444 \) -o \( -type d ! -perm -0555 \) | head -n 3)
if [ -n "${unreadable}" ]; then
  echo "model files not readable by every uid (KServe runs the modelcar under an arbitrary one): ${unreadable}" >&2
  exit 1
fi
buildah "$@" copy --chown 0:0 "${ctr}" "${MODEL_DIR}" /models
buildah "$@" config \
  --label "org.opencontainers.image.source=https://huggingface.co/${MODEL_REPO}" \
  --label "io.kserve.modelcar.model=${MODEL_REPO}" \
  --label "io.kserve.modelcar.revision=${MODEL_REVISION}" \
  "${ctr}"
buildah "$@" commit --rm "${ctr}" modelcar-build >/dev/null
buildah "$@" push "modelcar-build" "${ARTIFACT_FORMAT}:${ARTIFACT_TMP}:modelcar"
buildah "$@" rmi modelcar-build >/dev/null
echo "wrote ${ARTIFACT_FORMAT}:${ARTIFACT_TMP}"
