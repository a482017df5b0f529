#!/usr/bin/env bash
# Installs the real tools the tests run, from Debian's packages, when any is missing.
# Idempotent: with everything present it only checks and exits.
set -euo pipefail

# command -> Debian package that provides it
declare -A want=(
  [shellcheck]=shellcheck
  [skopeo]=skopeo
  [buildah]=buildah
  [docker-registry]=docker-registry
  [htpasswd]=apache2-utils
  [openssl]=openssl
  [setpriv]=util-linux
  [busybox]=busybox-static
  # kubectl kustomize renders the GitOps layout in its test (kustomize v4+ needed to take folders in resources)
  [kubectl]=kubernetes-client
)

missing=()
for cmd in "${!want[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${want[$cmd]}")
done
# The pipeline's Python steps run under other uids, which cannot enter a python3 under /root (pyenv):
# they need the system one.
[ -x /usr/bin/python3 ] || missing+=(python3)
[ "${#missing[@]}" -eq 0 ] && exit 0

echo "install-test-tools: installing ${missing[*]}" >&2
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "install-test-tools: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
[ -x /usr/bin/python3 ] || { echo "install-test-tools: /usr/bin/python3 still missing after installing python3" >&2; exit 1; }
for cmd in "${!want[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || { echo "install-test-tools: $cmd still missing after installing ${want[$cmd]}" >&2; exit 1; }
done
