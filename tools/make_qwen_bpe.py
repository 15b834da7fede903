"""Train the small byte-level BPE vocabulary of the embedded Qwen-Image / Z-Image / FLUX.2-klein test models.

Run from the repository root: ``python tools/make_qwen_bpe.py [PROMPTS]`` (default: the shared
training prompts). Writes ``aigif/assets/qwen_bpe_v1.json.gz`` (vocabulary and merges, Qwen2's
pre-tokenizer) and prints its sha256, which ``aigif.text.qwen_vocab.QWEN_BPE_SHA256`` freezes:
the asset is trained once and shipped, never retrained at run time.
"""
from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "aigif" / "assets" / "qwen_bpe_v1.json.gz"
VOCAB_SIZE = 2000
N_PROMPTS = 50_000
SPECIALS = ["<|endoftext|>"]          # id 0; the chat markers are added tokens of the tokenizer (aigif.text.qwen_vocab)


def main(argv: list[str]) -> int:
    from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import BPE
    from tokenizers.trainers import BpeTrainer

    from aigif.text.qwen_vocab import PRETOKENIZE_REGEX

    src = Path(argv[0]) if argv else ROOT.parent.parent / "shared" / "data" / "prompts" / "train.txt.gz"
    with gzip.open(src, "rt", encoding="utf-8") as fh:
        prompts = [line.rstrip("\n") for line in itertools.islice(fh, N_PROMPTS)]
    tok = Tokenizer(BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    trainer = BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=SPECIALS, show_progress=False,
                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(prompts, trainer=trainer)
    model = json.loads(tok.to_str())["model"]
    vocab = sorted(model["vocab"].items(), key=lambda kv: kv[1])
    assert vocab[0] == ("<|endoftext|>", 0), vocab[:2]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    raw = json.dumps({"vocab": [p for p, _ in vocab], "merges": merges}, ensure_ascii=False,
                     separators=(",", ":")).encode("utf-8")
    data = gzip.compress(raw, compresslevel=9, mtime=0)
    OUT.write_bytes(data)
    print(f"{OUT.relative_to(ROOT)}: {len(vocab)} tokens, {len(merges)} merges, {len(data)} bytes, "
          f"sha256 {hashlib.sha256(data).hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
