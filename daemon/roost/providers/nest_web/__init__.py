"""The old Nest web API (home.nest.com): versioned buckets, a subscribe long poll, puts."""

from roost.providers.nest_web.provider import NestWebProvider

__all__ = ["NestWebProvider"]
