"""Textual-inversion embeddings in imported metadata: A1111 ``TI hashes``, ComfyUI ``embedding:NAME`` prompt words."""
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from aigif import Document, Embedding, dumps
from aigif.engine import Engine
from aigif.errors import UnsafeModelError
from aigif.importers import EXACT, encode_image, import_bytes
from aigif.importers.a1111 import map_a1111
from aigif.importers.a1111_write import a1111_parameters

from .test_engine_embeddings import make_embedding

FIX = Path(__file__).parent / "fixtures" / "importers"
SAMPLES = json.loads((FIX / "samples.json").read_text(encoding="utf-8"))
pytestmark = pytest.mark.usefixtures("aigif_home")
HEAD = "Steps: 3, Sampler: Euler a, CFG scale: 7, Seed: 11, Size: 64x64, AIGIF model: aigif-tiny-sd"


def png(fields: dict, rgb=None) -> bytes:
    info = PngInfo()
    for k, v in fields.items():
        info.add_text(k, v)
    buf = io.BytesIO()
    Image.fromarray(np.zeros((64, 64, 3), np.uint8) if rgb is None else rgb).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def test_a1111_ti_hashes_become_embeddings_and_go_back():
    text = f"a house in mystyle\nNegative prompt: badhands\n{HEAD}, TI hashes: \"mystyle: 0123456789ab, badhands: xyz\""
    imp = map_a1111(text)
    assert imp.regenerable, imp.reason
    assert imp.model.embeddings == (Embedding(name="mystyle", sha256="0123456789ab"), Embedding(name="badhands"))
    assert imp.generation.prompt == "a house in mystyle"          # the prompt keeps the word the embedding binds to
    back = a1111_parameters(Document(generation=imp.generation, model=imp.model, source=imp.source))
    assert 'TI hashes: "mystyle: 0123456789ab"' in back
    assert map_a1111(back).model.embeddings[0] == imp.model.embeddings[0]


@pytest.mark.parametrize("ti, words", [
    (", ".join(f"e{i}: {i:012x}" for i in range(17)), "17 embeddings, more than the 16"),
    ("x" * 300 + ": 0123456789ab", "1..256 characters"),
])
def test_a1111_ti_hashes_beyond_the_syntax_are_named(ti, words):
    imp = map_a1111(f"a house\n{HEAD}, TI hashes: \"{ti}\"")
    assert not imp.regenerable and words in imp.reason, imp.reason


def test_comfyui_embedding_words_become_embeddings():
    g = json.loads(SAMPLES["comfyui_txt2img"]["fields"]["prompt"])
    g["6"]["inputs"]["text"] = "a cat, embedding:mystyle, embedding:sub\\grain.safetensors"
    g["7"]["inputs"]["text"] = "(embedding:EasyNegative:1.2), embedding:mystyle"
    imp = import_bytes(png({"prompt": json.dumps(g)}))
    assert imp.model.embeddings == (
        Embedding(name="mystyle", token="embedding:mystyle"),
        Embedding(name="sub/grain.safetensors", token="embedding:sub\\grain.safetensors"),
        Embedding(name="EasyNegative", token="embedding:EasyNegative"))
    assert imp.generation.prompt == g["6"]["inputs"]["text"]


def test_a_flux_graph_with_embedding_words_says_why_it_is_partial():
    g = json.loads(SAMPLES["comfyui_flux_dev"]["fields"]["prompt"])
    g["6"]["inputs"]["text"] = "a red fox, embedding:foxy"
    imp = import_bytes(png({"prompt": json.dumps(g)}))
    assert not imp.regenerable and "textual-inversion embeddings (foxy)" in imp.reason


def test_imported_embeddings_regenerate_exactly_and_hostile_names_stay_in_the_model_dirs(tmp_path):
    (tmp_path / "embeddings").mkdir()
    f = make_embedding(tmp_path / "embeddings" / "mystyle.safetensors", {"emb_params": 32}, 7)
    short = hashlib.sha256(f.read_bytes()).hexdigest()[:12]
    text = f"a house in mystyle, at night\n{HEAD}, TI hashes: \"mystyle: {short}\""
    imp = map_a1111(text)
    engine = Engine(model_dirs=[tmp_path], threads=1)
    made = engine.generate(imp.generation, imp.model).image
    plain = engine.generate(imp.generation).image
    assert not np.array_equal(made, plain)
    enc = encode_image(png({"parameters": text}, made), engine=engine)
    assert enc.outcome.kind == EXACT, enc.outcome.reason
    hostile = map_a1111(f"a house in x\n{HEAD}, TI hashes: \"../../../etc/passwd: {short}\"")
    assert hostile.model.embeddings[0].name == "../../../etc/passwd"
    with pytest.raises(UnsafeModelError, match="outside"):
        engine.generate(hostile.generation, hostile.model)
    assert len(dumps(Document(generation=imp.generation, model=imp.model))) < 200
