"""Registry entry of the token-PPM codec; imports numpy and the model only on first use."""
from __future__ import annotations

from dataclasses import dataclass

from .zstd_codecs import utf8


@dataclass(frozen=True)
class TokenPPMCodec:
    """Codec object for the registry: `.name`, `.encode(str)`, `.decode(bytes, max_chars)`."""

    name: str
    model_version: int
    case: bool = False  # codec 4: case classes over the same model (see spec section 5.5)

    def encode(self, text: str) -> bytes:
        from .model_codec import encode_with, load_model

        utf8(text)
        return encode_with(load_model(self.model_version), text, self.case)

    def decode(self, data: bytes, max_chars: int = 65536) -> str:
        from .model_codec import decode_with, load_model

        return decode_with(load_model(self.model_version), bytes(data), max_chars, self.name, self.case)
