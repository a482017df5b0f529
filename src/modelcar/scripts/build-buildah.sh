#!/bin/sh
# Builds the modelcar image with buildah: the base image plus the model under /models,
# written as an OCI artifact under a temporary name. The next step validates it and
# gives it its final name, so a reader never sees a half-written artifact.
#
# Env: MODEL_DIR, SUMS_FILE (SHA256SUMS of the download, paths relative to MODEL_DIR), BASE_IMAGE, ARTIFACT_FORMAT (oci | oci-archive), ARTIFACT_TMP,
#      MODEL_REPO, MODEL_REVISION, BUILD_CONFIG, TLS_VERIFY, CONTAINERS_STORAGE, BASE_CERT_DIR (optional),
#      AUTH_MODE, BASE_AUTHFILE or SA_TOKEN_FILE (by AUTH_MODE).
set -eu
umask 0002

# registry_error_explain: what a failed pull means, from buildah's own words.
# shellcheck source-path=SCRIPTDIR source=registry-errors.sh
. "$(dirname "$0")/registry-errors.sh"

echo "verifying ${MODEL_DIR} against ${SUMS_FILE}"
if ! (cd "${MODEL_DIR}" && sha256sum --check --quiet --strict "${SUMS_FILE}"); then
  echo "model files in ${MODEL_DIR} do not match SHA256SUMS from the download: refusing to build" >&2
  exit 1
fi

rm -rf "${ARTIFACT_TMP}"
mkdir -p "${TMPDIR}"
auth_source="${BASE_AUTHFILE:-}"
auth_registry="${BASE_IMAGE%%/*}"
# shellcheck source-path=SCRIPTDIR source=registry-auth.sh
. "$(dirname "$0")/registry-auth.sh"
set -- --storage-driver vfs --root "${CONTAINERS_STORAGE}/storage" --runroot "${CONTAINERS_STORAGE}/run"
pull="--tls-verify=${TLS_VERIFY}"
if ! ctr=$(buildah "$@" from ${BASE_CERT_DIR:+--cert-dir "${BASE_CERT_DIR}"} ${authfile:+--authfile "${authfile}"} "${pull}" --isolation chroot "docker://${BASE_IMAGE}" 2> /tmp/from.err); then
  cat /tmp/from.err >&2
  echo "cannot pull the base image ${BASE_IMAGE}: $(registry_error_explain /tmp/from.err pull '')" >&2
  exit 1
fi
cat /tmp/from.err >&2
# The model files are root-owned and world-readable in the image: KServe runs the
# modelcar under an arbitrary uid, which must read /models. `buildah copy` keeps the
# modes, so they are checked here (`buildah run` does not work rootless, so no chmod in
# the image).
# The walk is plain shell with stat (coreutils): the buildah image has no findutils (see image-inventory.ts).
check_modes() {
  for entry in "$1"/* "$1"/.[!.]* "$1"/..?*; do
    [ -e "${entry}" ] || continue
    mode=$(stat -c %A "${entry}")
    if [ -d "${entry}" ]; then
      case "${mode}" in
        ?r[-w][xs]r[-w][xs]r[-w][xt]*) check_modes "${entry}" ;;
        *) echo "model directory not readable by every uid (KServe runs the modelcar under an arbitrary one): ${entry} (${mode})" >&2; exit 1 ;;
      esac
    else
      case "${mode}" in
        ?r??r??r??*) ;;
        *) echo "model file not readable by every uid (KServe runs the modelcar under an arbitrary one): ${entry} (${mode})" >&2; exit 1 ;;
      esac
    fi
  done
}
check_modes "${MODEL_DIR}"
buildah "$@" copy --chown 0:0 "${ctr}" "${MODEL_DIR}" /models
buildah "$@" config \
  --label "org.opencontainers.image.source=https://huggingface.co/${MODEL_REPO}" \
  --label "io.kserve.modelcar.model=${MODEL_REPO}" \
  --label "io.kserve.modelcar.revision=${MODEL_REVISION}" \
  --label "io.kserve.modelcar.build-config=${BUILD_CONFIG}" \
  "${ctr}"
buildah "$@" commit --rm "${ctr}" modelcar-build >/dev/null
buildah "$@" push "modelcar-build" "${ARTIFACT_FORMAT}:${ARTIFACT_TMP}:modelcar"
buildah "$@" rmi modelcar-build >/dev/null
echo "wrote ${ARTIFACT_FORMAT}:${ARTIFACT_TMP}"
