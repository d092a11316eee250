"""Google Smart Device Management: Cloud Pub/Sub pull in, SDM `executeCommand` out."""

from roost.providers.sdm.provider import SdmProvider

__all__ = ["SdmProvider"]
