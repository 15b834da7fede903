"""Provenance and AI disclosure: the IPTC mark in exported images, signed .aigif files, C2PA manifests.

One job per module: ``xmp`` (the IPTC digital source type as an XMP packet),
``export`` (the one function that turns pixels into PNG/JPEG/WebP bytes).
Nothing here is needed to decode an .aigif file.
"""
from .export import IMAGE_FORMATS, format_for, image_bytes, save_params
from .xmp import TRAINED_ALGORITHMIC_MEDIA, digital_source_type, xmp_packet

__all__ = ["IMAGE_FORMATS", "TRAINED_ALGORITHMIC_MEDIA", "digital_source_type", "format_for", "image_bytes",
           "save_params", "xmp_packet"]
