#!/bin/sh
# Explains a failed skopeo/buildah call against a registry from the tool's own error
# text. Embedded at synth into each step script that talks to a registry (see
# scripts.ts), and sourced on its own by test/modelcar/registry-errors.test.ts.
#
# What the tools print, read in containers/image (docker/errors.go,
# docker/distribution_error.go, copy/digesting_reader.go; v5.23 = skopeo 1.9, and
# main) and distribution (registry/api/errcode):
# - a registry's JSON error is printed as "<code>: <message>", the code lowercased with
#   "_" as " ": "unauthorized: authentication required", "denied: requested access to
#   the resource is denied", "manifest unknown: manifest unknown", "name unknown:
#   repository name not known to registry", "toomanyrequests: ...". When the registry
#   sends a code's default message and no detail, skopeo 1.9 prints the code alone
#   ("...: denied", seen from real skopeo 1.9.3, errcode.Errors.UnmarshalJSON), and
#   newer containers/image prints the message alone ("authentication required",
#   "manifest unknown"): all three forms are matched.
# - a response that is not such JSON: "StatusCode: 404, <body>", "error parsing HTTP 401
#   response body", "received unexpected HTTP status: 503 Service Unavailable", and in
#   v5.23 "invalid status code from registry 403 (Forbidden)"; a 401 from the token
#   endpoint is "unable to retrieve auth token: invalid username/password: ...", a 429
#   "too many requests to registry".
# - TLS errors come from Go's crypto/x509 ("x509: certificate signed by unknown
#   authority"), a blob whose bytes do not hash to its digest from copy's digesting
#   reader ("Digest did not match, expected sha256:..., got sha256:..."), network errors
#   from Go's net package ("dial tcp HOST:PORT: connect: connection refused").
# So a status code counts only in one of those forms, and a phrase only where the tools
# put it (after ": " or at the start of the message): a port, digest, upload id or
# repository name holding "401" or "certificate" proves nothing. The patterns are
# case-sensitive: the tools' spelling is fixed.
#
# Only the tool's final error is classified (skopeo's last `level=fatal` line, else the
# last line), not the warnings of retries that came before it. Most specific first; an
# error that matches nothing is reported as not recognised, with the tool's words.

# A status code as containers/image prints one (the code is an ERE, e.g. 5[0-9][0-9]).
registry_error_status_re() {
  printf '(StatusCode: |HTTP status: |status code from registry |error parsing HTTP )%s([^0-9A-Za-z]|$)' "$1"
}

# The tool's final error line in FILE.
registry_error_line() {
  _rel_line=$(grep 'level=fatal' "$1" | tail -n 1) || true
  [ -n "${_rel_line}" ] || _rel_line=$(grep -v '^[[:space:]]*$' "$1" | tail -n 1) || true
  printf '%s\n' "${_rel_line}"
}

# The tool's own words: the message of its final error line (logrus's msg="...").
registry_error_words() {
  _rew=$(registry_error_line "$1")
  case "${_rew}" in
    *' msg="'*) _rew=${_rew#*' msg="'}; _rew=${_rew%\"} ;;
  esac
  printf '%s\n' "${_rew}"
}

# Prints the class of the final error in FILE: digest-mismatch, tls-untrusted, tls-name,
# tls-expired, plain-http, tls, credentials, denied, not-found, rate-limited,
# server-error, network, or unknown.
registry_error_class() {
  _rec=$(registry_error_line "$1")
  _rec_has() { printf '%s\n' "${_rec}" | grep -Eq -- "$1"; }
  # Where the tools put a phrase: the start of the message or after ": " (or a quote).
  _at='(^|: |msg=")'
  if _rec_has "Digest did not match|${_at}digest invalid(: |\"|$)|provided digest did not match uploaded content"; then
    echo digest-mismatch
  elif _rec_has 'x509: certificate signed by unknown authority'; then
    echo tls-untrusted
  elif _rec_has "x509: certificate is (valid for|not valid for)|x509: cannot validate certificate for|doesn't contain any IP SANs"; then
    echo tls-name
  elif _rec_has 'x509: certificate has expired or is not yet valid'; then
    echo tls-expired
  elif _rec_has 'server gave HTTP response to HTTPS client'; then
    echo plain-http
  elif _rec_has "x509: |${_at}tls: |remote error: tls: |first record does not look like a TLS handshake"; then
    echo tls
  elif _rec_has "${_at}unauthorized(: |\"|$)|${_at}authentication required|invalid username/password|(^|[^0-9A-Za-z])401 Unauthorized|$(registry_error_status_re 401)"; then
    echo credentials
  elif _rec_has "${_at}denied(: |\"|$)|requested access to the resource is denied|(^|[^0-9A-Za-z])403 Forbidden|$(registry_error_status_re 403)"; then
    echo denied
  elif _rec_has "${_at}manifest unknown|${_at}name unknown(: |\"|$)|repository name not known to registry|(^|[^0-9A-Za-z])404 Not Found|$(registry_error_status_re 404)"; then
    echo not-found
  elif _rec_has "${_at}toomanyrequests(: |\"|$)|too many requests|(^|[^0-9A-Za-z])429 Too Many Requests|$(registry_error_status_re 429)"; then
    echo rate-limited
  elif _rec_has "${_at}unavailable(: |\"|$)|${_at}service unavailable|(^|[^0-9A-Za-z])5[0-9][0-9] (Internal Server Error|Bad Gateway|Service Unavailable|Gateway Timeout)|$(registry_error_status_re '5[0-9][0-9]')"; then
    echo server-error
  elif _rec_has 'connection refused|no such host|server misbehaving|i/o timeout|connection reset by peer|broken pipe|network is unreachable|no route to host|TLS handshake timeout|Client\.Timeout exceeded|context deadline exceeded|: EOF("|$)'; then
    echo network
  else
    echo unknown
  fi
}

# What the final error in FILE means and what to do, in one sentence.
# ROLE is push (we write to the registry) or pull (the build reads the base image);
# RETRIES is how often the tool retried (empty when unknown).
registry_error_explain() {
  _ree_role=$2
  _ree_after=${3:+" (after $3 retries)"}
  case "$(registry_error_class "$1")" in
    digest-mismatch)
      if [ "${_ree_role}" = push ]; then
        echo "a blob of the artifact no longer matches its digest: the artifact changed after the build"
      else
        echo "a blob of the image does not match its digest: the registry served altered or corrupt content"
      fi ;;
    tls-untrusted)
      if [ "${_ree_role}" = push ]; then
        echo "the registry's TLS certificate is not trusted: give the push target the CA that signed it"
      else
        echo "the registry's TLS certificate is not trusted: give baseImageTrust the CA that signed it"
      fi ;;
    tls-name) echo "the registry's TLS certificate is not issued for this host name: use the name the certificate names, or reissue it" ;;
    tls-expired) echo "the registry's TLS certificate has expired or is not valid yet (or this node's clock is wrong)" ;;
    plain-http) echo "the registry answered plain HTTP on an HTTPS connection: serve it over TLS or use its TLS port" ;;
    tls) echo "the TLS connection to the registry failed (see the tool's error above)" ;;
    credentials)
      if [ "${_ree_role}" = push ]; then
        echo "the registry refused the credentials (401): check the docker config secret or service account of the push target"
      else
        echo "the registry refused the credentials (401): check baseImageCredentials (docker config secret or service account)"
      fi ;;
    denied)
      if [ "${_ree_role}" = push ]; then
        echo "the registry denied access (403): these credentials may not push to this repository, or may not create it"
      else
        echo "the registry denied access (403): these credentials may not pull this image"
      fi ;;
    not-found)
      if [ "${_ree_role}" = push ]; then
        echo "the registry does not know this repository or tag: create the repository or correct its name"
      else
        echo "the registry has no such image: check the base image's repository and digest"
      fi ;;
    rate-limited) echo "the registry is rate limiting (429 Too Many Requests): retry later, or use credentials or a mirror with a higher limit" ;;
    server-error) echo "the registry failed with a server error (5xx)${_ree_after}: the registry itself is unhealthy" ;;
    network) echo "cannot reach the registry${_ree_after}" ;;
    *) echo "the error is not one this step recognises (no diagnosis made); the tool said: $(registry_error_words "$1")" ;;
  esac
}
