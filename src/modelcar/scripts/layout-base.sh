#!/bin/sh
# First step of the OCI layout builder: copies the pinned base image into this run's
# layout, under its temporary name, once per platform of PLATFORMS (os/arch[/variant],
# separated by spaces), as the reference "base-os-arch[-variant]": skopeo takes each
# platform's manifest from the base's image index. Nothing else is pulled: the model is
# added by the next step (which checks each base is built for its platform: skopeo copies
# a single-platform base whatever platform is asked), and the layout gets its final name
# only after the publish step has validated it.
#
# skopeo writes an `oci:` destination in place (no temporary copy); the base image is
# small (a shell and /models is all KServe needs).
#
# Env: TMPDIR, BASE_IMAGE, PLATFORMS, ARTIFACT_TMP, TLS_VERIFY, RETRIES, BASE_CERT_DIR (optional),
#      AUTH_MODE, BASE_AUTHFILE or SA_TOKEN_FILE (by AUTH_MODE).
set -eu
umask 0002

# registry_error_explain: what a failed skopeo call means, from skopeo's own words.
# shellcheck source-path=SCRIPTDIR source=registry-errors.sh
. "$(dirname "$0")/registry-errors.sh"

# A previous attempt of this TaskRun may have left a partial layout: start over.
rm -rf "${ARTIFACT_TMP}"
mkdir -p "${ARTIFACT_TMP}" "${TMPDIR}"
auth_source="${BASE_AUTHFILE:-}"
auth_registry="${BASE_IMAGE%%/*}"
# shellcheck source-path=SCRIPTDIR source=registry-auth.sh
. "$(dirname "$0")/registry-auth.sh"
[ -n "${PLATFORMS}" ] || { echo "no platform given (PLATFORMS is empty)" >&2; exit 1; }
for platform in ${PLATFORMS}; do
  os=${platform%%/*}
  rest=${platform#*/}
  arch=${rest%%/*}
  variant=""
  [ "${rest}" = "${arch}" ] || variant=${rest#*/}
  if ! skopeo --tmpdir "${TMPDIR}" --override-os "${os}" --override-arch "${arch}" ${variant:+--override-variant "${variant}"} \
      copy --quiet --retry-times "${RETRIES}" "--src-tls-verify=${TLS_VERIFY}" \
      ${BASE_CERT_DIR:+--src-cert-dir "${BASE_CERT_DIR}"} ${authfile:+--src-authfile "${authfile}"} \
      "docker://${BASE_IMAGE}" "oci:${ARTIFACT_TMP}:base-$(printf '%s' "${platform}" | tr / -)" 2> /tmp/copy.err; then
    cat /tmp/copy.err >&2
    echo "cannot copy the base image ${BASE_IMAGE} for ${platform}: $(registry_error_explain /tmp/copy.err pull "${RETRIES}")" >&2
    exit 1
  fi
done
# skopeo makes the layout's directories 0755 and its blobs 0600 whatever the umask, and the next
# step may run as another uid: under OpenShift Pipelines' pipelines-scc each image runs as its own
# USER (this one root, the Python one 1001), sharing only the pod's fsGroup. Give the group all of it.
chmod -R g+rwX "${ARTIFACT_TMP}"
echo "copied the base image ${BASE_IMAGE} into oci:${ARTIFACT_TMP} for ${PLATFORMS}"
