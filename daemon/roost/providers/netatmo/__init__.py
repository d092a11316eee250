"""Netatmo Connect (api.netatmo.com): an adaptive poll in, form and JSON writes out."""

from roost.providers.netatmo.provider import NetatmoProvider

__all__ = ["NetatmoProvider"]
