"""Files recorded only by hash: AutoV1/AutoV2/AutoV3/sha256 matched against the model dirs through a persistent cache."""
import hashlib
import os
import shutil
import sqlite3

import numpy as np
import pytest

from aigif import Embedding, Generation, ModelRef, dumps, loads
from aigif.engine import byhash, hashcache
from aigif.errors import ModelError, UnsafeModelError
from aigif.fidelity import EXACT
from aigif.syntax.elements import Lora

from .test_engine_embeddings import make_embedding
from .test_engine_lora_vae import make_lora

pytestmark = pytest.mark.usefixtures("aigif_home")


def gen(prompt="a red lighthouse at dawn in mystyle"):
    return Generation(prompt=prompt, seed=4, num_inference_steps=3, guidance_scale=7.5, width=64, height=64)


def test_hash_kinds_are_a1111s_and_civitais(tmp_path):
    big = tmp_path / "big.bin"
    data = os.urandom(0x100000 + 0x10000 + 123)
    big.write_bytes(data)
    assert hashcache.file_hash(big, "autov1") == hashlib.sha256(data[0x100000:0x110000]).hexdigest()[:8]
    small = tmp_path / "small.bin"
    small.write_bytes(b"x" * 1000)                      # under 1 MiB: A1111 hashes the empty read
    assert hashcache.file_hash(small, "autov1") == hashlib.sha256(b"").hexdigest()[:8]
    st = tmp_path / "t.safetensors"
    header = b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    st.write_bytes(len(header).to_bytes(8, "little") + header + b"\0\0\x80?")
    assert hashcache.file_hash(st, "autov3") == hashlib.sha256(b"\0\0\x80?").hexdigest()
    assert hashcache.file_hash(st) == hashlib.sha256(st.read_bytes()).hexdigest()
    with pytest.raises(ModelError, match="not a safetensors"):
        hashcache.file_hash(small, "autov3")


def test_the_cache_persists_is_keyed_by_mtime_and_a_broken_home_only_costs_rehashing(tmp_path, monkeypatch):
    monkeypatch.setenv("AIGIF_HOME", str(tmp_path / "home"))
    f = tmp_path / "w.safetensors"
    f.write_bytes(b"\1" * 5000)
    calls = []
    real = hashcache.KINDS["sha256"]
    monkeypatch.setitem(hashcache.KINDS, "sha256", lambda p: calls.append(p) or real(p))
    first = hashcache.file_hash(f)
    hashcache.forget_memo()                               # a new process: only the database remembers
    assert hashcache.file_hash(f) == first and len(calls) == 1
    with sqlite3.connect(tmp_path / "home" / "hashes.sqlite") as conn:
        assert conn.execute("SELECT count(*) FROM hashes").fetchone()[0] == 1
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    hashcache.forget_memo()
    assert hashcache.file_hash(f) == first and len(calls) == 2
    with sqlite3.connect(tmp_path / "home" / "hashes.sqlite") as conn:        # the stale row was replaced
        assert conn.execute("SELECT count(*) FROM hashes").fetchone()[0] == 1
    (tmp_path / "home2").write_text("not a folder")
    monkeypatch.setenv("AIGIF_HOME", str(tmp_path / "home2"))
    hashcache.forget_memo()
    assert hashcache.file_hash(f) == first                  # unwritable cache: hashed, not failed


def test_find_by_hash_refuses_pickles_bad_hashes_and_says_what_it_looked_for(tmp_path, monkeypatch):
    (tmp_path / "Lora").mkdir()
    pickled = tmp_path / "Lora" / "old.ckpt"
    pickled.write_bytes(b"\x80\x04pickle" * 100)
    sha = hashlib.sha256(pickled.read_bytes()).hexdigest()
    for h in (sha, sha[:10]):
        with pytest.raises(UnsafeModelError, match="old.ckpt, a pickle-based file.*Convert it to .safetensors"):
            byhash.find_by_hash(h, [tmp_path], ("", "Lora"), "LoRA x")
    with pytest.raises(ModelError, match="AutoV1 hash 0123abcd .1 weight files looked at"):
        byhash.find_by_hash("0123abcd", [tmp_path], ("", "Lora"), "model")
    with pytest.raises(ModelError, match="sha256 / AutoV2 or AutoV3 hash 0123456789ab") as info:
        byhash.find_by_hash("0123456789AB", [tmp_path], ("", "Lora"), "LoRA x")
    assert f"{tmp_path}/Lora" in str(info.value)
    for bad in ("xyz", "12345", "../../etc/passwd", "0" * 5000):
        with pytest.raises(ModelError, match="not a hash aigif can look up"):
            byhash.find_by_hash(bad, [tmp_path], ("",), "LoRA x")
    for i in range(5):
        (tmp_path / "Lora" / f"f{i}.safetensors").write_bytes(b"x" * i)
    monkeypatch.setattr(byhash, "MAX_HASH_SCAN", 3)           # a huge folder is looked at only so far
    with pytest.raises(ModelError, match="3 weight files looked at"):
        byhash.find_by_hash("0" * 64, [tmp_path], ("", "Lora"), "LoRA x")


def test_renamed_loras_and_embeddings_are_found_by_their_recorded_hash(tmp_path_factory):
    from aigif.engine import Engine
    from aigif.engine.digest import safetensors_data_sha256

    d = tmp_path_factory.mktemp("models")
    (d / "Lora").mkdir()
    (d / "embeddings").mkdir()
    lora = make_lora(d / "Lora", "style.safetensors", 1)
    emb = make_embedding(d / "embeddings" / "mystyle.safetensors", {"emb_params": 32}, 2)
    engine = Engine(model_dirs=[d], threads=1)
    ref = ModelRef(name="aigif-tiny-sd", loras=(Lora(name="style", weight=0.7),), embeddings=(Embedding(name="mystyle"),))
    made = engine.generate(gen(), ref)
    doc = loads(dumps(made.document))
    lora_sha, emb_sha = doc.model.loras[0].sha256, doc.model.embeddings[0].sha256
    autov3 = safetensors_data_sha256(lora)
    (d / "Lora" / "sub").mkdir()
    shutil.move(lora, d / "Lora" / "sub" / "style-v2.safetensors")        # renamed, in a sub-folder
    shutil.move(emb, d / "embeddings" / "renamed.safetensors")
    for lora_hash in (lora_sha, lora_sha[:10], autov3[:12]):
        ref = ModelRef(name="aigif-tiny-sd", loras=(Lora(name="style", weight=0.7, sha256=lora_hash),),
                       embeddings=(Embedding(name="mystyle", sha256=emb_sha[:12]),))
        again = Engine(model_dirs=[d], threads=1).decode(doc.replace(model=ref))
        assert again.report.status == EXACT and np.array_equal(again.image, made.image)
    with pytest.raises(ModelError, match=r"LoRA style \(no file style.safetensors\): no file has the sha256 / AutoV2 hash"):
        engine.generate(gen(), ModelRef(name="aigif-tiny-sd", loras=(Lora(name="style", sha256="0" * 10),)))
