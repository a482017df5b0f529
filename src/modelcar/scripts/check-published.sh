#!/bin/sh
# Asks one registry whether it already serves this run's image: every tag of the run, one
# manifest digest, with the labels the build writes (source, model, revision) and the
# digest of the build configuration (io.kserve.modelcar.build-config). Nothing is pulled
# but manifests and the small config blob (skopeo inspect).
#
# MODE=check (first task of the pipeline): writes a verdict line to VERDICT_FILE,
#   "serves <digest>" or "rebuild <why>". Only "not found" for a tag (the registry says
#   manifest unknown / name unknown) or an image built from something else means rebuild;
#   a registry that cannot be reached, refuses the credentials or is not trusted is an
#   error, with the registry's own words: never a silent skip, never a silent rebuild.
# MODE=report (last task): the target must now serve the image; writes the results
#   IMAGE_URL (repository:first tag), IMAGE_DIGEST and IMAGE_REF (repository@digest).
#
# Env: MODE, TARGET, IMAGE, IMAGE_TAGS (space-separated), MODEL_REPO, TLS_VERIFY, RETRIES,
#      CERT_DIR (optional), AUTH_MODE, AUTHFILE or SA_TOKEN_FILE (by AUTH_MODE), TMPDIR, HOME,
#      EXPECTED_REVISION or EXPECTED_REVISION_FILE, EXPECTED_CONFIG or EXPECTED_CONFIG_FILE,
#      check: FORCE_REBUILD, VERDICT_FILE; report: RESULT_IMAGE_URL, RESULT_IMAGE_DIGEST, RESULT_IMAGE_REF.
set -eu

# registry_error_class / _explain / _words: what a failed inspect means, from skopeo's own words.
# shellcheck source-path=SCRIPTDIR source=registry-errors.sh
. "$(dirname "$0")/registry-errors.sh"

fail() {
  echo "${TARGET}: $*" >&2
  exit 1
}
# Go templates print a label the image lacks as "<no value>": that is no label.
label() {
  if [ "$1" = '<no value>' ]; then echo ''; else printf '%s\n' "$1"; fi
}
verdict() {
  mkdir -p "$(dirname "${VERDICT_FILE}")"
  printf '%s\n' "$*" > "${VERDICT_FILE}"
  echo "${TARGET}: $*"
}

case "${MODE}" in
  check | report) ;;
  *) fail "MODE \"${MODE}\" is neither check nor report" ;;
esac
if [ "${MODE}" = check ]; then
  case "${FORCE_REBUILD}" in
    true)
      verdict "rebuild forced (FORCE_REBUILD=true): ${IMAGE} not asked"
      exit 0 ;;
    false) ;;
    *) fail "FORCE_REBUILD \"${FORCE_REBUILD}\" is neither true nor false" ;;
  esac
fi
revision=${EXPECTED_REVISION:-$(cat "${EXPECTED_REVISION_FILE}")}
config=${EXPECTED_CONFIG:-$(cat "${EXPECTED_CONFIG_FILE}")}
source_label="https://huggingface.co/${MODEL_REPO}"
set -f
# shellcheck disable=SC2086 # word splitting of the tag list is intended
set -- ${IMAGE_TAGS}
set +f
[ "$#" -gt 0 ] || fail "no tag given (IMAGE_TAGS is empty)"
mkdir -p "${TMPDIR}"
auth_source="${AUTHFILE:-}"
auth_registry="${IMAGE%%/*}"
# shellcheck source-path=SCRIPTDIR source=registry-auth.sh
. "$(dirname "$0")/registry-auth.sh"

# One line per tag: digest|source|model|revision|build-config. A label the image lacks
# prints as empty (or "<no value>"), never as another label's value.
format='{{.Digest}}|{{index .Labels "org.opencontainers.image.source"}}|{{index .Labels "io.kserve.modelcar.model"}}|{{index .Labels "io.kserve.modelcar.revision"}}|{{index .Labels "io.kserve.modelcar.build-config"}}'
echo "${TARGET}: asking ${IMAGE} for tags $* (model ${MODEL_REPO} at ${revision}, build config ${config})"
served=""
for tag in "$@"; do
  # --no-tags: skopeo would otherwise list every tag of the repository (another request, slow on a
  # repository with thousands of tags, and a permission some robots lack).
  if ! skopeo --tmpdir "${TMPDIR}" inspect --no-tags --retry-times "${RETRIES}" "--tls-verify=${TLS_VERIFY}" \
      ${CERT_DIR:+--cert-dir "${CERT_DIR}"} ${authfile:+--authfile "${authfile}"} \
      --format "${format}" "docker://${IMAGE}:${tag}" > "${TMPDIR}"/inspect.out 2> "${TMPDIR}"/inspect.err; then
    class=$(registry_error_class "${TMPDIR}"/inspect.err)
    why=""
    case "${class}" in
      not-found)
        why="tag ${tag} not found ($(grep -o 'manifest unknown\|name unknown' "${TMPDIR}"/inspect.err | head -n 1))" ;;
      denied)
        # 403 / "requested access to the resource is denied" after the credentials were accepted:
        # Docker Hub answers so for a repository that does not exist yet.
        why="the registry does not show ${tag} to these credentials ($(registry_error_words "${TMPDIR}"/inspect.err)); it answers so for a repository that does not exist yet, and the push will create it or fail with the registry's words" ;;
      credentials)
        # quay.io answers a repository that does not exist (or one these credentials may not
        # read) with "unauthorized: access to the requested resource is not authorized" once
        # its token endpoint has accepted the credentials; credentials it refuses fail at the
        # token endpoint instead ("invalid username/password") or, on a registry with basic
        # auth, with "authentication required".
        if grep -q 'access to the requested resource is not authorized' "${TMPDIR}"/inspect.err \
            && ! grep -q 'invalid username/password\|authentication required' "${TMPDIR}"/inspect.err; then
          why="the registry does not show ${tag} to these credentials ($(registry_error_words "${TMPDIR}"/inspect.err)); quay.io answers so for a repository that does not exist yet, and the push will create it or fail with the registry's words"
        fi ;;
    esac
    if [ -n "${why}" ]; then
      [ "${MODE}" = check ] || fail "${IMAGE}: ${why}, after the pushes of this run"
      verdict "rebuild: ${IMAGE}: ${why}"
      exit 0
    fi
    # Anything else is an answer we cannot read as "absent": stop the run, never a silent skip.
    cat "${TMPDIR}"/inspect.err >&2
    fail "cannot ask ${IMAGE} whether it serves ${tag}: $(registry_error_explain "${TMPDIR}"/inspect.err push "${RETRIES}"); whether it already serves the image is unknown, so the run stops rather than skip or rebuild"
  fi
  IFS='|' read -r digest got_source got_model got_revision got_config < "${TMPDIR}"/inspect.out || true
  got_source=$(label "${got_source}")
  got_model=$(label "${got_model}")
  got_revision=$(label "${got_revision}")
  got_config=$(label "${got_config}")
  case "${digest}" in
    sha256:????????????????????????????????????????????????????????????????) ;;
    *) fail "skopeo reported no digest for ${IMAGE}:${tag} (got \"${digest}\")" ;;
  esac
  why=""
  if [ "${got_revision}" != "${revision}" ]; then
    why="built from revision \"${got_revision}\", not ${revision}"
  elif [ "${got_model}" != "${MODEL_REPO}" ] || [ "${got_source}" != "${source_label}" ]; then
    why="built from model \"${got_model}\" (source \"${got_source}\"), not ${MODEL_REPO}"
  elif [ "${got_config}" != "${config}" ]; then
    why="built with build config \"${got_config}\", not ${config}"
  elif [ -n "${served}" ] && [ "${served}" != "${digest}" ]; then
    why="serves ${served} under $1 but ${digest} under ${tag}"
  fi
  if [ -n "${why}" ]; then
    [ "${MODE}" = check ] || fail "${IMAGE}:${tag} ${why}, after the pushes of this run"
    verdict "rebuild: ${IMAGE}:${tag} is ${digest}, ${why}"
    exit 0
  fi
  echo "${TARGET}: ${IMAGE}:${tag} is ${digest}, built from ${MODEL_REPO} at ${revision} with this build config"
  served=${digest}
done

if [ "${MODE}" = check ]; then
  verdict "serves ${served}"
  exit 0
fi
printf '%s' "${IMAGE}:$1" > "${RESULT_IMAGE_URL}"
printf '%s' "${served}" > "${RESULT_IMAGE_DIGEST}"
printf '%s' "${IMAGE}@${served}" > "${RESULT_IMAGE_REF}"
echo "${TARGET}: serves ${IMAGE}:$1 at ${served}"
