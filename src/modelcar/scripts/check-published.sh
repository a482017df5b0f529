#!/bin/sh
# Asks every push target whether it already serves this run's image: every tag of the run,
# one manifest digest, with the labels the build writes (source, model, revision) and the
# digest of the build configuration (io.kserve.modelcar.build-config). Nothing is pulled but
# manifests and the small config blob (skopeo inspect). One script for all targets, so a
# Task's scripts do not grow with the number of targets (Tekton passes them all, base64, in
# one argument of the place-scripts init container, which Linux caps at 128 KiB).
#
# MODE=check (first task of the pipeline): REBUILD is "false" only when every target serves
#   every tag, built from this commit with this build configuration. Only "not found" for a
#   tag (manifest unknown / name unknown, and the answers quay.io and Docker Hub give for a
#   repository that does not exist yet) or an image built from something else means rebuild;
#   a registry that cannot be reached, refuses the credentials or is not trusted is an error,
#   with the registry's own words: never a silent skip, never a silent rebuild.
# MODE=report (last task): every target must now serve the image, all of them the same
#   digest: writes the results IMAGE_DIGEST and IMAGE_TAG (the first tag). The pipeline makes
#   each target's <T>_IMAGE_URL and _IMAGE_REF from these and the repository it knows, so the
#   results stay two short values whatever the number of targets (each step's termination
#   message carries them, and the kubelet keeps 12 KiB for all of the pod's containers).
#
# Env: MODE, TARGETS (one line per target: name, repository, tls-verify, retries, cert dir,
#      auth mode, auth file; "-" for none), IMAGE_TAGS (space-separated), MODEL_REPO,
#      SA_TOKEN_FILE, TMPDIR, HOME, EXPECTED_REVISION or EXPECTED_REVISION_FILE, EXPECTED_CONFIG
#      or EXPECTED_CONFIG_FILE; check: FORCE_REBUILD, RESULT_REBUILD, SERVING_TAG_FILE; report: RESULT_IMAGE_DIGEST,
#      RESULT_IMAGE_TAG.
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
  printf '%s\n' "$*" > "${verdicts}/${TARGET}"
  echo "${TARGET}: $*"
}

# Asks one target (TARGET, IMAGE, TLS_VERIFY, RETRIES, CERT_DIR, AUTH_MODE, auth_source) for
# every tag; writes its verdict ("serves <digest>" or "rebuild: <why>"). Runs in a subshell:
# `fail` ends the whole step.
ask_target() {
  auth_registry="${IMAGE%%/*}"
  # shellcheck source-path=SCRIPTDIR source=registry-auth.sh
  . "$(dirname "$0")/registry-auth.sh"
  echo "${TARGET}: asking ${IMAGE} for tags ${IMAGE_TAGS} (model ${MODEL_REPO} at ${revision}, build config ${config})"
  served=""
  first=""
  for tag in ${IMAGE_TAGS}; do
    first=${first:-${tag}}
    # --no-tags: skopeo would otherwise list every tag of the repository (another request, slow on
    # a repository with thousands of tags, and a permission some robots lack).
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
        return 0
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
      why="serves ${served} under ${first} but ${digest} under ${tag}"
    fi
    if [ -n "${why}" ]; then
      [ "${MODE}" = check ] || fail "${IMAGE}:${tag} ${why}, after the pushes of this run"
      verdict "rebuild: ${IMAGE}:${tag} is ${digest}, ${why}"
      return 0
    fi
    echo "${TARGET}: ${IMAGE}:${tag} is ${digest}, built from ${MODEL_REPO} at ${revision} with this build config"
    served=${digest}
  done
  verdict "serves ${served}"
}

case "${MODE}" in
  check | report) ;;
  *) TARGET=check; fail "MODE \"${MODE}\" is neither check nor report" ;;
esac
force=false
if [ "${MODE}" = check ]; then
  case "${FORCE_REBUILD}" in
    true | false) force=${FORCE_REBUILD} ;;
    *) TARGET=check; fail "FORCE_REBUILD \"${FORCE_REBUILD}\" is neither true nor false" ;;
  esac
fi
# The check asks for the serving tag too (the config step's result; the report gets it in IMAGE_TAGS):
# an image published before that tag existed is rebuilt once, to the same digest, and gains it.
[ -z "${SERVING_TAG_FILE:-}" ] || IMAGE_TAGS="${IMAGE_TAGS} $(cat "${SERVING_TAG_FILE}")"
revision=${EXPECTED_REVISION:-$(cat "${EXPECTED_REVISION_FILE}")}
config=${EXPECTED_CONFIG:-$(cat "${EXPECTED_CONFIG_FILE}")}
source_label="https://huggingface.co/${MODEL_REPO}"
set -f
[ -n "$(printf '%s' "${IMAGE_TAGS}" | tr -d ' ')" ] || { TARGET=check; fail "no tag given (IMAGE_TAGS is empty)"; }
# One line per tag: digest|source|model|revision|build-config. A label the image lacks prints as
# empty (or "<no value>"), never as another label's value.
format='{{.Digest}}|{{index .Labels "org.opencontainers.image.source"}}|{{index .Labels "io.kserve.modelcar.model"}}|{{index .Labels "io.kserve.modelcar.revision"}}|{{index .Labels "io.kserve.modelcar.build-config"}}'
verdicts="${TMPDIR}/verdicts"
mkdir -p "${verdicts}"

# The targets, one after another (each in a subshell: its variables and `exit` stay its own).
# shellcheck disable=SC2153 # TARGETS is the step's env, not a misspelt TARGET
printf '%s\n' "${TARGETS}" > "${TMPDIR}/targets"
while read -r TARGET IMAGE TLS_VERIFY RETRIES CERT_DIR AUTH_MODE auth_source; do
  [ -n "${TARGET}" ] || continue
  [ "${CERT_DIR}" != - ] || CERT_DIR=""
  [ "${auth_source}" != - ] || auth_source=""
  [ "${AUTH_MODE}" != - ] || AUTH_MODE=none
  if [ "${force}" = true ]; then
    verdict "rebuild forced (FORCE_REBUILD=true): ${IMAGE} not asked"
    continue
  fi
  ( ask_target ) < /dev/null
done < "${TMPDIR}/targets"

# The verdicts: REBUILD (check), or the one digest every target serves (report).
rebuild=false
digest=""
echo "what each target holds:"
while read -r TARGET IMAGE _; do
  [ -n "${TARGET}" ] || continue
  [ -s "${verdicts}/${TARGET}" ] || fail "no verdict: its check did not run to the end"
  line=$(cat "${verdicts}/${TARGET}")
  echo "  ${TARGET}: ${line}"
  case "${line}" in
    "serves "*)
      [ -z "${digest}" ] || [ "${digest}" = "${line#serves }" ] || [ "${MODE}" = check ] \
        || fail "${IMAGE} serves ${line#serves }, another target ${digest}: the targets hold different images for this run"
      digest=${line#serves } ;;
    *) rebuild=true ;;
  esac
done < "${TMPDIR}/targets"
set +f
if [ "${MODE}" = report ]; then
  printf '%s' "${digest}" > "${RESULT_IMAGE_DIGEST}"
  # shellcheck disable=SC2086 # word splitting of the tag list is intended
  set -- ${IMAGE_TAGS}
  printf '%s' "$1" > "${RESULT_IMAGE_TAG}"
  echo "every target serves ${digest} under $*"
  exit 0
fi
if [ "${force}" = true ]; then
  echo "rebuilding: forced by FORCE_REBUILD=true"
elif [ "${rebuild}" = true ]; then
  echo "rebuilding: a target lacks this image (above); the build pushes to every target (blobs a registry holds are not sent again)"
else
  echo "skipping download, build and pushes: every target already serves every tag of this run, built from this commit with this build config"
fi
printf '%s' "${rebuild}" > "${RESULT_REBUILD}"
