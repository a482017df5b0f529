"""Trust shared by the Python steps: the system CAs plus every *.crt of a mounted CA directory (a ConfigMap or
Secret), with certificate and hostname verification left on."""

import os
import ssl


def tls_context(ca_dir, variable):
    """The TLS context for a server whose CA is in ca_dir ("": the system CAs only); ValueError says what is wrong."""
    context = ssl.create_default_context()
    if not ca_dir:
        return context
    found = sorted(n for n in os.listdir(ca_dir) if n.endswith(".crt")) if os.path.isdir(ca_dir) else []
    if not found:
        raise ValueError(f"{variable}={ca_dir} is not a directory holding *.crt files: check the CA ConfigMap's keys")
    for path in (os.path.join(ca_dir, name) for name in found):
        try:
            context.load_verify_locations(cafile=path)
        except (ssl.SSLError, OSError) as e:
            raise ValueError(f"cannot load CA certificate {path}: {e}")
    return context
