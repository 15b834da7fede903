"""A small T5 (unigram) vocabulary shipped inside the package, for the embedded FLUX / SD3 models.

The real T5 tokenizers are large downloads; the embedded test models only need
*a* T5 tokenizer that behaves the same everywhere. ``t5_unigram_v1.json.gz``
(2,000 pieces) was trained once on the shared training prompts by
``tools/make_t5_vocab.py`` and is frozen by its sha256: the tokenizer is built
from it offline, with transformers' tokenizers-backed ``T5Tokenizer``.
"""
from __future__ import annotations

import gzip
import hashlib
import json
from functools import lru_cache
from importlib import resources

from ..errors import ModelError

T5_VOCAB_ASSET = "t5_unigram_v1.json.gz"
T5_VOCAB_SHA256 = "b229f93678a8223bc50f7c6ae230f56fada596d10b9ba20547cbabd309088699"


@lru_cache(maxsize=1)
def load_t5_vocab() -> tuple[tuple[str, float], ...]:
    """(piece, log-probability) pairs; ids 0, 1, 2 are ``<pad>``, ``</s>``, ``<unk>`` as in T5."""
    raw = resources.files("aigif.assets").joinpath(T5_VOCAB_ASSET).read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != T5_VOCAB_SHA256:
        raise ModelError(f"the shipped T5 vocabulary {T5_VOCAB_ASSET} has sha256 {digest}, expected {T5_VOCAB_SHA256}; "
                         "reinstall aigif")
    return tuple((str(p), float(s)) for p, s in json.loads(gzip.decompress(raw)))


def t5_tokenizer():
    """A ``transformers.T5Tokenizer`` (tokenizers backend) over the shipped vocabulary."""
    from transformers import T5Tokenizer

    return T5Tokenizer(vocab=list(load_t5_vocab()), extra_ids=0)
