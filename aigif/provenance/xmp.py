"""The IPTC "digital source type" as an XMP packet, and reading it back from an image file.

The value ``trainedAlgorithmicMedia`` (IPTC NewsCodes, digitalsourcetype) is the
machine-readable "made by a generative model" mark that platforms read and
EU AI Act Art. 50 asks providers of generative systems to attach.
"""
from __future__ import annotations

import io
import re

IPTC_EXT_NS = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
MAX_XMP_SCAN_BYTES = 1 << 20

_PACKET = (
    '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
    '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
    ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
    '  <rdf:Description rdf:about=""\n'
    f'    xmlns:Iptc4xmpExt="{IPTC_EXT_NS}"\n'
    '    xmlns:xmp="http://ns.adobe.com/xap/1.0/"\n'
    '    Iptc4xmpExt:DigitalSourceType="{source}"\n'
    '    xmp:CreatorTool="aigif"/>\n'
    ' </rdf:RDF>\n'
    '</x:xmpmeta>\n'
    '<?xpacket end="r"?>'
)

# attribute form (what we write) or element form (what other tools may write)
_SOURCE_RE = re.compile(
    rb'DigitalSourceType\s*=\s*"([^"]{1,512})"|DigitalSourceType>\s*([^<\s]{1,512})\s*<')


def xmp_packet(source: str = TRAINED_ALGORITHMIC_MEDIA) -> bytes:
    """The XMP packet (UTF-8) naming *source* as the IPTC digital source type."""
    return _PACKET.format(source=source).encode("utf-8")


def digital_source_type(data: bytes) -> str | None:
    """The IPTC digital source type in a PNG/JPEG/WebP file's XMP, or None (no XMP, no such property)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            xmp = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp")
    except Exception:  # not an image Pillow reads: nothing to report
        return None
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8")
    if not xmp:
        return None
    m = _SOURCE_RE.search(xmp[:MAX_XMP_SCAN_BYTES])
    return (m.group(1) or m.group(2)).decode("utf-8", "replace") if m else None
