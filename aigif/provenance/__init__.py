"""Provenance and AI disclosure: the IPTC mark in exported images, signed .aigif files, C2PA manifests.

One job per module: ``xmp`` (the IPTC digital source type as an XMP packet),
``export`` (the one function that turns pixels into PNG/JPEG/WebP bytes),
``keys`` (signing keys and certificates from files), ``signature`` (the .aigif
signature segment), ``c2pa_credentials`` / ``c2pa_sign`` / ``c2pa_read``
(Content Credentials with c2pa-python: who signs, writing, reading).
Nothing here is needed to decode an .aigif file.
"""
from .export import IMAGE_FORMATS, document_image_bytes, format_for, image_bytes, save_params
from .xmp import TRAINED_ALGORITHMIC_MEDIA, digital_source_type, xmp_packet

__all__ = ["IMAGE_FORMATS", "TRAINED_ALGORITHMIC_MEDIA", "digital_source_type", "document_image_bytes", "format_for", "image_bytes",
           "save_params", "xmp_packet"]
