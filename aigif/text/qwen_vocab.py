"""A small byte-level BPE vocabulary shipped inside the package, for the embedded Qwen-Image, Z-Image and FLUX.2 models.

Those pipelines encode prompts with Qwen2.5-VL / Qwen3 and their 151k-token BPE,
a large download. The embedded test models only need *a* Qwen2 tokenizer that
behaves the same everywhere: ``qwen_bpe_v1.json.gz`` (2,000 tokens, Qwen2's
pre-tokenizer) was trained once on the shared training prompts by
``tools/make_qwen_bpe.py`` and is frozen by its sha256. The tokenizer adds the
chat markers the pipelines' prompt templates use and a chat template of the
Qwen3 form (``enable_thinking=False`` writes an empty think block), or for FLUX.2 dev, whose Mistral 3
processor takes messages of typed parts, one of that form.
"""
from __future__ import annotations

import gzip
import hashlib
import json
from functools import lru_cache
from importlib import resources

from ..errors import ModelError

QWEN_BPE_ASSET = "qwen_bpe_v1.json.gz"
QWEN_BPE_SHA256 = "cd92b67622fe2d3137dc904eae0d7b44aa8b792763e7d4d10c405658ee0f8a10"
# Qwen2's pre-tokenizer split (transformers' Qwen2Tokenizer uses the same expression)
PRETOKENIZE_REGEX = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
CHAT_MARKERS = ("<|im_start|>", "<|im_end|>", "<think>", "</think>")
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}{% endif %}")
# the form FLUX.2's Mistral processor takes: each message's content is a list of typed parts, text ones are written
PARTS_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% for c in m['content'] %}{% if c['type'] == 'text' %}"
    "{{ c['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endfor %}")


@lru_cache(maxsize=1)
def load_qwen_bpe() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(tokens in id order, merges); id 0 is ``<|endoftext|>``."""
    raw = resources.files("aigif.assets").joinpath(QWEN_BPE_ASSET).read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != QWEN_BPE_SHA256:
        raise ModelError(f"the shipped Qwen vocabulary {QWEN_BPE_ASSET} has sha256 {digest}, expected {QWEN_BPE_SHA256}; "
                         "reinstall aigif")
    data = json.loads(gzip.decompress(raw))
    return tuple(data["vocab"]), tuple(data["merges"])


def qwen_tokenizer(chat_template: str = CHAT_TEMPLATE):
    """A ``transformers.Qwen2Tokenizer`` (tokenizers backend) over the shipped vocabulary, with the chat markers."""
    from tokenizers import AddedToken
    from transformers import Qwen2Tokenizer

    tokens, merges = load_qwen_bpe()
    tok = Qwen2Tokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=[tuple(m.split(" ")) for m in merges])
    tok.add_tokens([AddedToken(m, special=True, normalized=False) for m in CHAT_MARKERS])
    tok.chat_template = chat_template
    return tok
