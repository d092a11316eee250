"""Vendor providers: one package per vendor API, behind the `Provider` seam in `base`."""
