#!/bin/sh
# Registry credentials, shared by the skopeo and buildah steps: sourced from beside the
# step's script, embedded in its place at synth (scripts.ts). Nothing here depends on $HOME: on OpenShift an
# arbitrary uid without a passwd entry gets HOME=/, which it cannot write, so Tekton's copy
# of the credentials into $HOME fails there with only a warning ("unsuccessful cred copy").
# Input: AUTH_MODE (env: secret | service-account | service-account-token | none),
#        SA_TOKEN_FILE (env, token mode), TMPDIR (env: a private emptyDir),
#        auth_source (the docker config file), auth_registry (host[:port] of the registry).
# Output: authfile (empty: no credentials), handed to skopeo or buildah with --authfile.
authfile=""
case "${AUTH_MODE:-none}" in
  secret)
    authfile="${auth_source}" ;;
  service-account)
    # Tekton merges the docker secrets linked to the service account into
    # $(credentials.path)/.docker/config.json; none linked, no file.
    if [ -f "${auth_source}" ]; then
      authfile="${auth_source}"
    else
      echo "no docker credentials linked to the service account (${auth_source} absent): going without credentials for ${auth_registry}"
    fi ;;
  service-account-token)
    if [ ! -r "${SA_TOKEN_FILE}" ]; then
      echo "cannot read the service account token ${SA_TOKEN_FILE}: the pod needs automountServiceAccountToken (the default)" >&2
      exit 1
    fi
    # The token is the password of user "serviceaccount"; it is written only into this
    # step's private authfile (mode 0600) and never printed.
    mkdir -p "${TMPDIR}"
    authfile="${TMPDIR}/registry-auth.json"
    (
      umask 077
      printf '{"auths":{"%s":{"auth":"%s"}}}\n' "${auth_registry}" \
        "$(printf 'serviceaccount:%s' "$(cat "${SA_TOKEN_FILE}")" | base64 -w 0)" > "${authfile}"
    ) ;;
  none) ;;
  *)
    echo "unknown AUTH_MODE \"${AUTH_MODE}\"" >&2
    exit 1 ;;
esac
