"""The real CLIP BPE vocabulary, shipped inside the package.

Every Stable Diffusion prompt goes through this tokenizer, so both the prompt
coder and the embedded default pipeline use it. The merges file is OpenAI's
``bpe_simple_vocab_16e6.txt.gz`` (MIT, as redistributed by open_clip); the
vocabulary is rebuilt from it exactly as CLIP's ``SimpleTokenizer`` does, which
is also the order of Hugging Face's ``vocab.json`` for ``openai/clip-vit-*``.
"""
from __future__ import annotations

import gzip
import json
from functools import lru_cache
from importlib import resources
from pathlib import Path

BPE_ASSET = "bpe_simple_vocab_16e6.txt.gz"
N_MERGES = 49152 - 256 - 2


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte -> printable unicode map (reversible)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


@lru_cache(maxsize=1)
def load_clip_bpe() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Return ``(vocab, merges)``: token -> id (49408 entries) and the merge list."""
    raw = resources.files("aigif.assets").joinpath(BPE_ASSET).read_bytes()
    lines = gzip.decompress(raw).decode("utf-8").split("\n")[1 : N_MERGES + 1]
    merges = [tuple(line.split()) for line in lines]
    base = list(_bytes_to_unicode().values())
    tokens = base + [b + "</w>" for b in base] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}, merges


def write_clip_tokenizer_files(folder: Path) -> Path:
    """Write ``vocab.json`` + ``merges.txt`` (the Hugging Face layout) into *folder*."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = load_clip_bpe()
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n", encoding="utf-8")
    return folder


def clip_tokenizer(folder: Path | None = None):
    """A ``transformers.CLIPTokenizer`` over the shipped vocabulary (imports transformers lazily)."""
    import tempfile

    from transformers import CLIPTokenizer

    folder = write_clip_tokenizer_files(Path(folder) if folder else Path(tempfile.mkdtemp(prefix="aigif-clip-")))
    return CLIPTokenizer(
        str(folder / "vocab.json"),
        str(folder / "merges.txt"),
        model_max_length=77,
        pad_token="<|endoftext|>",
    )
