#!/usr/bin/env python3
"""Registers the published image in a Kubeflow model registry (REST API v1alpha3), standard library only:
one registered model per model, one model version per (model commit, build configuration), one model
artifact whose uri names the image by digest. Idempotent: a version already registered with this digest
is left as it is; another digest under the same version is an error naming both; nothing is duplicated.
The calls and their order are the upstream Python client's register_model (kubeflow/model-registry
clients/python): find or create the model, find or create the version, add the artifact.

Env (synth-time values and params, never inlined): REGISTRY_URL, REGISTRY_CA_DIR (optional, *.crt),
SA_TOKEN_FILE, REGISTRY_ACCESS (what a 403 lacks), REGISTERED_MODEL_NAME (empty: MODEL_REPO), MODEL_REPO,
MODEL_REVISION (commit), BUILD_CONFIG, IMAGE_DIGEST, TARGETS (lines "name repository"), URI_TARGET,
MODEL_FORMAT_NAME, MODEL_FORMAT_VERSION, PIPELINE_RUN, REGISTRY_RETRIES, REGISTRY_TIMEOUT_SECONDS.
Exit status 0, 1 on any failure (after the pushes: the images stay published, the next run registers)."""

import base64
import json
import os
import re
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from ca_trust import *

API = "/api/model_registry/v1alpha3"
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


class RegistrationError(Exception):
    pass


def env(name, default=""):
    return os.environ.get(name, "").strip() or default


def said(error):
    """What the server said: the registry's {"code","message"} or the proxy's text, shortened."""
    try:
        raw = error.read(4096).decode("utf-8", "replace").strip()
    except OSError:
        raw = ""
    try:
        body = json.loads(raw)
        raw = body.get("message") or raw
    except (ValueError, AttributeError):
        pass
    return " ".join(raw.split())[:500] or error.reason


def account(token):
    """The token's subject (system:serviceaccount:ns:name) when it is a JWT; never the token itself."""
    try:
        payload = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"]
    except (IndexError, ValueError, KeyError, TypeError):
        return "the PipelineRun's service account"


class Registry(object):
    def __init__(self):
        self.url = env("REGISTRY_URL").rstrip("/")
        if not self.url.startswith("https://"):
            raise RegistrationError(f"REGISTRY_URL={self.url!r} is not an https URL")
        try:
            context = tls_context(env("REGISTRY_CA_DIR"), "REGISTRY_CA_DIR")
        except ValueError as e:
            raise RegistrationError(str(e))
        self.opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))
        with open(env("SA_TOKEN_FILE", "/var/run/secrets/kubernetes.io/serviceaccount/token")) as handle:
            self.token = handle.read().strip()
        self.access = env("REGISTRY_ACCESS", "access to the registry")
        self.retries = int(env("REGISTRY_RETRIES", "3"))
        self.timeout = float(env("REGISTRY_TIMEOUT_SECONDS", "30"))

    def call(self, method, path, what, body=None, query=None, missing_ok=False):
        """The JSON answer of one call (None for a 404 when missing_ok); unreachable and 5xx are retried."""
        url = self.url + API + path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": "Bearer " + self.token, "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        for attempt in range(1, self.retries + 1):
            try:
                request = urllib.request.Request(url, data=data, headers=headers, method=method)
                with self.opener.open(request, timeout=self.timeout) as response:
                    return json.loads(response.read().decode("utf-8"))
            except urllib.error.HTTPError as e:
                if e.code == 404 and missing_ok:
                    return None
                message = said(e)
                if e.code >= 500 and attempt < self.retries:
                    print(f"  {what}: HTTP {e.code} ({message}); retrying", flush=True)
                elif e.code == 401:
                    raise RegistrationError(f"{what}: the registry's proxy refused the service account's token (401: {message}): "
                                            "check the token is mounted (automountServiceAccountToken) and the URL is the registry's proxy")
                elif e.code == 403:
                    raise RegistrationError(f"{what}: the registry's proxy denies {account(self.token)} (403: {message}): "
                                            f"grant it {self.access}")
                elif e.code == 409:
                    raise RegistrationError(f"{what}: the registry reports a conflict (409: {message})")
                elif e.code in (400, 422):
                    raise RegistrationError(f"{what}: the registry rejected the request (HTTP {e.code}: {message})")
                else:
                    raise RegistrationError(f"{what}: HTTP {e.code} from {url}: {message}")
            except (urllib.error.URLError, OSError) as e:
                reason = getattr(e, "reason", e)
                if isinstance(reason, ssl.SSLCertVerificationError):
                    raise RegistrationError(f"{what}: TLS certificate verification failed for {self.url}: {reason} "
                                            "(give the registry's CA: ModelRegistry trust)")
                if attempt >= self.retries:
                    raise RegistrationError(f"{what}: cannot reach the model registry at {self.url} after {attempt} attempt(s): {reason}")
                print(f"  {what}: cannot reach {self.url}: {reason}; retrying", flush=True)
            time.sleep(2 ** attempt)
        raise RegistrationError(f"{what}: the registry kept failing after {self.retries} attempt(s)")


def string_values(values):
    return {k: {"metadataType": "MetadataStringValue", "string_value": v} for k, v in values.items()}


def register(reg):
    repo, commit, config, digest = env("MODEL_REPO"), env("MODEL_REVISION"), env("BUILD_CONFIG"), env("IMAGE_DIGEST")
    if not DIGEST_RE.match(digest) or not DIGEST_RE.match(config):
        raise RegistrationError(f"IMAGE_DIGEST={digest!r} and BUILD_CONFIG={config!r} must both be sha256:<64 hex>")
    targets = dict(line.split(None, 1) for line in env("TARGETS").splitlines() if line.strip())
    uri_target = env("URI_TARGET")
    uri = f"oci://{targets[uri_target]}@{digest}"
    model_name = env("REGISTERED_MODEL_NAME", repo)
    version_name = f"{commit[:12]}-{config[7:19]}"
    properties = {"huggingface_repo": repo, "huggingface_commit": commit, "build_config": config,
                  "image_digest": digest, "pipeline_run": env("PIPELINE_RUN")}
    properties.update({f"image_{name}": f"{repository}@{digest}" for name, repository in targets.items()})
    print(f"register-model: {model_name} version {version_name} -> {uri} at {reg.url}", flush=True)

    # Each record is looked up, then created if absent. Another run (the same variant re-created by Argo CD, a
    # re-run) may create it between the two: the registry then answers 409, and the record it made is taken
    # as found and compared below, so two runs at once never make a duplicate.
    def find_or_create(kind, find, create):
        found = find()
        if found is not None:
            return found, False
        try:
            return create(), True
        except RegistrationError as e:
            found = find() if "(409" in str(e) else None
            if found is None:
                raise
            print(f"  {kind} was created meanwhile by another run (409): taken as it is", flush=True)
            return found, False

    model, made = find_or_create(
        "registered model " + model_name,
        lambda: reg.call("GET", "/registered_model", "finding registered model " + model_name, query={"name": model_name}, missing_ok=True),
        lambda: reg.call("POST", "/registered_models", "creating registered model " + model_name,
                         {"name": model_name, "description": f"{repo}, packaged as a modelcar image"}))
    if made:
        print(f"  created registered model {model_name} (id {model['id']})", flush=True)
    body = {"name": version_name, "registeredModelId": model["id"], "author": "cdk8s-modelcar-tekton",
            "description": f"{repo} at {commit}, build configuration {config}", "customProperties": string_values(properties)}
    version, made = find_or_create(
        "version " + version_name,
        lambda: reg.call("GET", "/model_version", f"finding version {version_name}",
                         query={"name": version_name, "parentResourceId": model["id"]}, missing_ok=True),
        lambda: reg.call("POST", "/model_versions", f"creating version {version_name}", body))
    if made:
        print(f"  created version {version_name} (id {version['id']})", flush=True)

    def registered():
        artifacts = reg.call("GET", f"/model_versions/{version['id']}/artifacts", f"listing the artifacts of version {version_name}",
                             query={"artifactType": "model-artifact", "pageSize": "100"})
        uris = [a.get("uri", "") for a in artifacts.get("items", [])]
        if uris and uri not in uris:
            raise RegistrationError(f"version {version_name} of {model_name} is registered with {', '.join(uris)}, not {uri}: the same "
                                    "commit and build configuration built another image; archive that version in the registry, or "
                                    "rebuild with rebuildNonce, then run again")
        return uri if uris else None

    _, made = find_or_create(
        "the model artifact of version " + version_name,
        registered,
        lambda: reg.call("POST", f"/model_versions/{version['id']}/artifacts", f"adding the model artifact to version {version_name}",
                         {"artifactType": "model-artifact", "name": model_name.replace("/", "-") + "-" + version_name, "uri": uri,
                          "modelFormatName": env("MODEL_FORMAT_NAME"), "modelFormatVersion": env("MODEL_FORMAT_VERSION"),
                          "customProperties": string_values({"image_digest": digest, "pipeline_run": env("PIPELINE_RUN")})}))
    if made:
        print(f"  registered {uri} as version {version_name} of {model_name}", flush=True)
    else:
        print(f"  version {version_name} is already registered with {digest}: left as it is", flush=True)


def main():
    try:
        register(Registry())
    except (RegistrationError, OSError, ValueError, KeyError) as e:
        print(f"register-model: error: {e}; the images stay published: the next run registers them", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
