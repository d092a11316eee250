"""Works with Nest (developer-api.nest.com): REST streaming in, REST `PUT` out."""

from roost.providers.nest_wwn.provider import NestWwnProvider

__all__ = ["NestWwnProvider"]
