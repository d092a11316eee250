"""A provider from the keyword options a test gives: its account's settings (validated by
the vendor's model, as `roost run` does), the context's clock, tokens and memory, and the
constructor's own knobs (back-off, client, write limits...). Timings (`*_s` settings) skip
the model's bounds: a test polls faster than a real account may."""

from __future__ import annotations

import dataclasses
import socket
from typing import Any, TypeVar

from roost.config.load import validated
from roost.providers.registry import ProviderContext, vendor

P = TypeVar("P")
CONTEXT = ("clock", "tokens", "memory", "deadlines")


def make(cls: type[P], vendor_name: str, name: str = "acct", **options: Any) -> P:
    model = vendor(vendor_name).Account
    context = ProviderContext(**{key: options.pop(key) for key in CONTEXT if key in options})
    names = {field.name for field in dataclasses.fields(model)}
    fields = {key: options.pop(key) for key in list(options) if key in names}
    timings = {key: fields.pop(key) for key in list(fields) if key.endswith("_s")}
    account = validated(model, name=name, provider=vendor_name, **fields)
    settings = dataclasses.replace(account, **timings)
    provider: P = cls(settings, context, **options)  # type: ignore[call-arg]
    return provider


def loopback_listen() -> str:
    """A free loopback `host:port` for a listener (the settings refuse port 0)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"
