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

# Case-aware split (codec 4): letter runs are also cut at case changes, so every
# letter token is lower, Capitalized or UPPER ("EasyNegative" -> "Easy", "Negative").
CASE_TOKEN_RE = re.compile(r" ?(?:[A-Z]?[a-z]+|[A-Z]+(?![a-z]))| ?[0-9]+| ?[^A-Za-z0-9 ]| ", re.DOTALL)

LOWER, CAP, UPPER = 0, 1, 2
_HAS_LETTER = re.compile(r"[A-Za-z]")


def split_tokens(text: str) -> list[str]:
    return TOKEN_RE.findall(text)


def split_case_tokens(text: str) -> list[tuple[str, int | None]]:
    """Tokens lowercased (ASCII only) with their case class; None for tokens without letters."""
    out = []
    for tok in CASE_TOKEN_RE.findall(text):
        if not _HAS_LETTER.search(tok):
            out.append((tok, None))
            continue
        low = tok.lower()
        if low == tok:
            out.append((tok, LOWER))
        elif tok[-1].isupper() and len(tok.strip()) > 1:
            out.append((low, UPPER))
        else:
            out.append((low, CAP))
    return out


def has_lower_letter(s: str) -> bool:
    return any("a" <= ch <= "z" for ch in s)


def apply_case(s: str, case: int) -> str:
    """Inverse of the lowercasing above, on ASCII letters only."""
    if case == UPPER:
        return "".join(ch.upper() if "a" <= ch <= "z" else ch for ch in s)
    if case == CAP:
        for i, ch in enumerate(s):
            if "a" <= ch <= "z":
                return s[:i] + ch.upper() + s[i + 1 :]
    return s
