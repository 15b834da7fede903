"""Lossless segmentation of text into model tokens.

CLIP's own pre-tokenizer lowercases and drops whitespace, so the coder uses its
own split: an optional single space glued to a run of ASCII letters, a run of
digits, or any one other character; a space that starts nothing is its own
token. Every character matches exactly one alternative, so joining the tokens
gives the text back (this is what makes the coder lossless).
"""
from __future__ import annotations

import re

TOKEN_RE = re.compile(r" ?[A-Za-z]+| ?[0-9]+| ?[^A-Za-z0-9 ]| ", re.DOTALL)


def split_tokens(text: str) -> list[str]:
    toks = TOKEN_RE.findall(text)
    return toks
