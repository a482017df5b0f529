#!/bin/sh
# Pushes the run's artifact to one registry, refusing anything but the image the build
# published: the artifact's manifest digest (an image index's, for several platforms) must
# equal the build's IMAGE_DIGEST result, the copy preserves digests, and the registry must
# report the same digest afterwards. With SOURCE_IMAGE (the streaming mode), the image is
# copied from that registry by the build's digest instead, registry to registry.
#
# skopeo ignores TMPDIR when it unpacks an oci-archive (skopeo 1.9): --tmpdir is passed.
# Env: TMPDIR, ARTIFACT_FORMAT, ARTIFACT_PATH, EXPECTED_DIGEST, IMAGE, IMAGE_TAGS (space-separated),
#      SERVING_TAG (optional), TLS_VERIFY, CERT_DIR (optional), AUTH_MODE, AUTHFILE or SA_TOKEN_FILE (by
#      AUTH_MODE), RETRIES, RESULT_IMAGE_URL, RESULT_IMAGE_DIGEST, RESULT_IMAGE_REF; SOURCE_IMAGE, SOURCE_TLS_VERIFY,
#      SOURCE_CERT_DIR, SOURCE_AUTH_MODE, SOURCE_AUTHFILE (optional: a registry source).
set -eu

# registry_error_explain: what a failed skopeo call means, from skopeo's own words.
# shellcheck source-path=SCRIPTDIR source=registry-errors.sh
. "$(dirname "$0")/registry-errors.sh"

fail() {
  echo "push to ${IMAGE} failed: $*" >&2
  exit 1
}

case "${EXPECTED_DIGEST}" in
  sha256:????????????????????????????????????????????????????????????????) ;;
  *) fail "IMAGE_DIGEST \"${EXPECTED_DIGEST}\" from the build is not a sha256 digest" ;;
esac
set -f
# shellcheck disable=SC2086 # word splitting of the tag list is intended
set -- ${IMAGE_TAGS}
set +f
[ "$#" -gt 0 ] || fail "no tag given (IMAGE_TAGS is empty)"
for tag in "$@"; do
  case "${tag}" in
    [A-Za-z0-9_]*) ;;
    *) fail "tag \"${tag}\" is invalid" ;;
  esac
  if [ "${#tag}" -gt 128 ] || [ -n "$(printf '%s' "${tag}" | tr -d 'A-Za-z0-9_.-')" ]; then
    fail "tag \"${tag}\" is invalid: use letters, digits, '_', '.' and '-'"
  fi
done

# registry_auth: the authfile for AUTH_MODE, auth_source and auth_registry (in ${authfile}).
registry_auth() {
  # shellcheck source-path=SCRIPTDIR source=registry-auth.sh
  . "$(dirname "$0")/registry-auth.sh"
}

src_authfile=""
if [ -n "${SOURCE_IMAGE:-}" ]; then
  src="docker://${SOURCE_IMAGE}@${EXPECTED_DIGEST}"
  target_mode="${AUTH_MODE:-none}"
  AUTH_MODE="${SOURCE_AUTH_MODE:-none}" auth_source="${SOURCE_AUTHFILE:-}" auth_registry="${SOURCE_IMAGE%%/*}"
  registry_auth
  src_authfile="${authfile}"
  AUTH_MODE="${target_mode}"
else
  src="${ARTIFACT_FORMAT}:${ARTIFACT_PATH}:modelcar"
fi

# 1. The artifact must be the one the build published.
if ! skopeo --tmpdir "${TMPDIR}" inspect --raw ${SOURCE_IMAGE:+"--tls-verify=${SOURCE_TLS_VERIFY:-true}"} ${SOURCE_CERT_DIR:+--cert-dir "${SOURCE_CERT_DIR}"} ${src_authfile:+--authfile "${src_authfile}"} \
    "${src}" > /tmp/manifest.json 2> /tmp/inspect.err; then
  cat /tmp/inspect.err >&2
  fail "cannot read the artifact ${src}"
fi
actual="sha256:$(sha256sum < /tmp/manifest.json | cut -d' ' -f1)"
if [ "${actual}" != "${EXPECTED_DIGEST}" ]; then
  fail "the artifact's digest ${actual} differs from the digest the build published ${EXPECTED_DIGEST}: refusing to push stale or foreign content"
fi
if ! skopeo --tmpdir "${TMPDIR}" inspect ${SOURCE_IMAGE:+"--tls-verify=${SOURCE_TLS_VERIFY:-true}"} ${SOURCE_CERT_DIR:+--cert-dir "${SOURCE_CERT_DIR}"} ${src_authfile:+--authfile "${src_authfile}"} \
    "${src}" > /dev/null 2> /tmp/inspect.err; then
  cat /tmp/inspect.err >&2
  fail "the artifact ${src} is not a valid image"
fi
echo "artifact ${src} has the build's digest ${EXPECTED_DIGEST}"

auth_source="${AUTHFILE:-}"
auth_registry="${IMAGE%%/*}"
registry_auth

tls="--tls-verify=${TLS_VERIFY}"

# 2. Copy, digests preserved, once per tag (blobs already there are skipped). --all: an image
#    index goes with every platform's manifest, and keeps its digest; without it skopeo would
#    push the manifest of this node's platform alone. The model's layers, shared by the
#    platforms, go once.
copy_to() {
  echo "copying to docker://${IMAGE}:$1"
  if ! skopeo --tmpdir "${TMPDIR}" copy --all --preserve-digests --retry-times "${RETRIES}" \
      "--dest-tls-verify=${TLS_VERIFY}" ${CERT_DIR:+--dest-cert-dir "${CERT_DIR}"} ${authfile:+--dest-authfile "${authfile}"} \
      ${SOURCE_IMAGE:+"--src-tls-verify=${SOURCE_TLS_VERIFY:-true}"} ${SOURCE_CERT_DIR:+--src-cert-dir "${SOURCE_CERT_DIR}"} ${src_authfile:+--src-authfile "${src_authfile}"} \
      --digestfile /tmp/pushed-digest "${src}" "docker://${IMAGE}:$1" 2> /tmp/copy.err; then
    cat /tmp/copy.err >&2
    fail "$(registry_error_explain /tmp/copy.err push "${RETRIES}")"
  fi
  # skopeo's warnings (e.g. the retries of a transient error) belong in the log even when it succeeds.
  cat /tmp/copy.err >&2
  pushed=$(cat /tmp/pushed-digest)
  [ "${pushed}" = "${EXPECTED_DIGEST}" ] || fail "skopeo pushed ${pushed}, not the build's ${EXPECTED_DIGEST}"
}
for tag in "$@"; do
  copy_to "${tag}"
done

# 3. The serving tag (model commit and build configuration), after the run's tags, is never moved: an
# InferenceService in git serves by it. The build is reproducible, so the same commit and configuration give the
# same digest; a build that gave other bytes fails the push and leaves the tag where it is.
if [ -n "${SERVING_TAG:-}" ]; then
  if skopeo --tmpdir "${TMPDIR}" inspect --raw --retry-times "${RETRIES}" "${tls}" ${CERT_DIR:+--cert-dir "${CERT_DIR}"} ${authfile:+--authfile "${authfile}"} \
      "docker://${IMAGE}:${SERVING_TAG}" > /tmp/serving.json 2> /tmp/inspect.err; then
    serving="sha256:$(sha256sum < /tmp/serving.json | cut -d' ' -f1)"
    [ "${serving}" = "${EXPECTED_DIGEST}" ] || fail "the serving tag ${SERVING_TAG} names ${serving}, and this build of the same model commit and build configuration is ${EXPECTED_DIGEST}: the build did not reproduce the image; a serving tag is never moved (what git serves by it stays), so it keeps ${serving}"
    echo "the serving tag ${SERVING_TAG} already names ${serving}"
  else
    # Absent: "not found", or what quay.io (401 "not authorized") and Docker Hub (denied) answer for a repository
    # that does not exist yet; credentials they refuse say so otherwise (check-published.sh reads them alike).
    case "$(registry_error_class /tmp/inspect.err)" in
      not-found | denied) ;;
      *) if ! grep -q 'access to the requested resource is not authorized' /tmp/inspect.err \
          || grep -q 'invalid username/password\|authentication required' /tmp/inspect.err; then
           cat /tmp/inspect.err >&2
           fail "cannot ask whether the serving tag ${SERVING_TAG} exists: $(registry_error_explain /tmp/inspect.err push "${RETRIES}")"
         fi ;;
    esac
    copy_to "${SERVING_TAG}"
  fi
fi

# 4. Ask the registry what it now serves under the first tag.
if ! skopeo --tmpdir "${TMPDIR}" inspect --raw --retry-times "${RETRIES}" "${tls}" ${CERT_DIR:+--cert-dir "${CERT_DIR}"} ${authfile:+--authfile "${authfile}"} \
    "docker://${IMAGE}:$1" > /tmp/remote.json 2> /tmp/inspect.err; then
  cat /tmp/inspect.err >&2
  fail "cannot read back ${IMAGE}:$1: $(registry_error_explain /tmp/inspect.err push "${RETRIES}")"
fi
remote="sha256:$(sha256sum < /tmp/remote.json | cut -d' ' -f1)"
if [ "${remote}" != "${EXPECTED_DIGEST}" ]; then
  fail "the registry serves ${remote} under ${IMAGE}:$1, not the build's ${EXPECTED_DIGEST}"
fi
echo "registry serves ${IMAGE}:$1 at ${remote}"

printf '%s' "${IMAGE}:$1" > "${RESULT_IMAGE_URL}"
printf '%s' "${EXPECTED_DIGEST}" > "${RESULT_IMAGE_DIGEST}"
printf '%s' "${IMAGE}@${EXPECTED_DIGEST}" > "${RESULT_IMAGE_REF}"
