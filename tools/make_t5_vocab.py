"""Train the small T5 (sentencepiece-style unigram) vocabulary of the embedded FLUX / SD3 test models.

Run from the repository root: ``python tools/make_t5_vocab.py [PROMPTS]`` (default: the shared
training prompts). Writes ``aigif/assets/t5_unigram_v1.json.gz`` and prints its sha256, which
``aigif.text.t5_vocab.T5_VOCAB_SHA256`` freezes: the asset is trained once and shipped, never
retrained at run time.
"""
from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "aigif" / "assets" / "t5_unigram_v1.json.gz"
VOCAB_SIZE = 2000
N_PROMPTS = 50_000
SPECIALS = ["<pad>", "</s>", "<unk>"]     # ids 0, 1, 2 as in T5


def main(argv: list[str]) -> int:
    from tokenizers import Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import Unigram
    from tokenizers.trainers import UnigramTrainer

    src = Path(argv[0]) if argv else ROOT.parent.parent / "shared" / "data" / "prompts" / "train.txt.gz"
    with gzip.open(src, "rt", encoding="utf-8") as fh:
        prompts = [line.rstrip("\n") for line in itertools.islice(fh, N_PROMPTS)]
    tok = Tokenizer(Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    trainer = UnigramTrainer(vocab_size=VOCAB_SIZE, special_tokens=SPECIALS, unk_token="<unk>", shrinking_factor=0.75)
    tok.train_from_iterator(prompts, trainer=trainer)
    vocab = json.loads(tok.to_str())["model"]["vocab"]
    assert [p for p, _ in vocab[:3]] == SPECIALS, vocab[:3]
    pieces = [[p, round(float(s), 4)] for p, s in vocab]
    raw = json.dumps(pieces, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    data = gzip.compress(raw, compresslevel=9, mtime=0)
    OUT.write_bytes(data)
    print(f"{OUT.relative_to(ROOT)}: {len(pieces)} pieces, {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
