"""The process's one TLS client context.

A context holds its parsed trust store (certifi's bundle, or `SSL_CERT_FILE` /
`SSL_CERT_DIR` as httpx reads them): ~0.8 MiB that every `httpx.AsyncClient` and every
`httpx.create_ssl_context()` would build again. Every vendor's HTTP client and the
event-stream reader share this one. Both speak HTTP/1.1 only, so the ALPN list httpcore
sets on it per connection is the one set here.
"""

from __future__ import annotations

import ssl
from functools import cache

import httpx


@cache
def client_context() -> ssl.SSLContext:
    """Verifying, with the trust store httpx would load; built on first use."""
    context = httpx.create_ssl_context()
    context.set_alpn_protocols(["http/1.1"])
    return context
