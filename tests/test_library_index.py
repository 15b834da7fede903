"""Library index: incremental updates, renames, deletions, corrupt files, migrations, search and the CLI."""
import json
import os
import sqlite3
import sys

import pytest

from aigif.cli import main
from aigif.errors import LibraryError, QueryError
from aigif.library import Query, connect, detail, index_folders, search
from aigif.library import db as dbmod
from aigif.library.search import fts_expression
from aigif.syntax import Document, Generation, Lora, ModelRef, Source, dumps


def make(path, prompt, seed=1, model=None, **kw):
    doc = Document(generation=Generation(prompt=prompt, seed=seed, num_inference_steps=20, guidance_scale=7.0,
                                         width=kw.pop("width", 512), height=512, negative_prompt=kw.pop("negative", "")),
                   model=model or ModelRef(name="sd15"), **kw)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(dumps(doc))
    return path


@pytest.fixture
def lib(tmp_path):
    root = tmp_path / "lib"
    make(root / "fox.aigif", "a red fox in the snow, oil painting", seed=42)
    make(root / "sub" / "castle.aigif", "a castle on a hill at dusk", seed=7,
         model=ModelRef(name="sdxl", loras=(Lora(name="detail-tweaker", weight=0.6),)), width=1024)
    make(root / "sub" / "import.aigif", "portrait of a cat", seed=2**64 - 1, source=Source(tool="A1111", version="1.9"))
    (root / "broken.aigif").write_bytes(b"AIGF\x01garbage")
    (root / "notes.txt").write_text("not indexed")
    return root


@pytest.fixture
def conn(tmp_path):
    c = connect(tmp_path / "db" / "library.sqlite")
    yield c
    c.close()


def paths(items):
    return sorted(os.path.basename(i["path"]) for i in items)


def test_index_fields_and_errors(lib, conn):
    report = index_folders(conn, [lib])
    assert (report.added, report.deleted) == (4, 0)
    assert [os.path.basename(p) for p, _ in report.errors] == ["broken.aigif"]
    assert report.errors[0][1]  # the error text
    items, total = search(conn, Query())
    assert total == 3 and paths(items) == ["castle.aigif", "fox.aigif", "import.aigif"]
    castle = next(i for i in items if i["path"].endswith("castle.aigif"))
    assert castle["model"] == "sdxl" and castle["model_family"] == "sdxl" and castle["loras"] == ["detail-tweaker"]
    assert castle["width"] == 1024 and castle["seed"] == 7 and castle["regenerable"] is True
    full = detail(conn, castle["id"])
    assert full["loras"] == [{"name": "detail-tweaker", "weight": 0.6}]
    assert full["syntax"]["prompt"] == "a castle on a hill at dusk"
    assert full["signature_status"] is None and full["provenance"] is None


def test_search_text_and_filters(lib, conn):
    index_folders(conn, [lib])
    assert paths(search(conn, Query(text="red fox, oil"))[0]) == ["fox.aigif"]
    assert paths(search(conn, Query(text="fox OR castle"))[0]) == ["castle.aigif", "fox.aigif"]
    assert paths(search(conn, Query(text="cas*"))[0]) == ["castle.aigif"]
    assert paths(search(conn, Query(text='"hill at dusk"'))[0]) == ["castle.aigif"]
    assert paths(search(conn, Query(text="detail"))[0]) == ["castle.aigif"]  # LoRA names are searchable
    assert paths(search(conn, Query(model="sdxl"))[0]) == ["castle.aigif"]
    assert paths(search(conn, Query(seed=2**64 - 1))[0]) == ["import.aigif"]
    assert paths(search(conn, Query(lora="Detail-Tweaker"))[0]) == ["castle.aigif"]
    assert paths(search(conn, Query(tool="a1111"))[0]) == ["import.aigif"]
    assert paths(search(conn, Query(family="sd1", width=512))[0]) == ["fox.aigif", "import.aigif"]
    assert search(conn, Query(text="fox", model="sdxl"))[1] == 0


@pytest.mark.parametrize("sort_matches", [0, 10**6])  # 0: every word is "common" (walk by date); else SQL sorts
def test_search_paths_agree_with_a_plain_reading(tmp_path, conn, monkeypatch, sort_matches):
    import random

    import aigif.library.search

    searchmod = sys.modules['aigif.library.search']
    monkeypatch.setattr(searchmod, "SORT_MATCHES", sort_matches)
    monkeypatch.setattr(searchmod, "COUNT_CAP", 7)
    rng = random.Random(3)
    roots = [tmp_path / "a", tmp_path / "b"]
    for i in range(40):
        loras = (Lora(name=rng.choice(["grain", "detail"]), weight=0.5),) if i % 3 == 0 else ()
        p = make(roots[i % 2] / f"{i:02d}.aigif", f"{rng.choice(['red', 'blue'])} {rng.choice(['fox', 'owl', 'cat'])}",
                 seed=i % 5, model=ModelRef(name=rng.choice(["sd15", "sdxl"]), loras=loras))
        os.utime(p, ns=(10**18 + rng.randrange(8) * 10**9,) * 2)  # equal dates too: ties go by id
    index_folders(conn, roots)
    rows = [dict(r) for r in conn.execute("SELECT f.*, (SELECT group_concat(name) FROM loras WHERE file_id = f.id) AS ln FROM files f")]

    def expected(text, model, lora, seed, in_roots):
        hits = [r for r in rows if all(w in r["prompt"].split() for w in text.split()) and (model is None or r["model"] == model)
                and (lora is None or lora in (r["ln"] or "").split(",")) and (seed is None or r["seed"] == str(seed))
                and (not in_roots or r["root"] in in_roots)]
        return [r["id"] for r in sorted(hits, key=lambda r: (r["mtime_ns"], r["id"]), reverse=True)]

    for text in ("fox", "red", "red owl", ""):
        for model, lora, seed in ((None, None, None), ("sdxl", None, None), (None, "grain", None), (None, None, 3)):
            for in_roots in ((), (str(roots[0]),), tuple(map(str, roots))):
                want = expected(text, model, lora, seed, in_roots)
                for offset, limit in ((0, 5), (5, 5), (0, 50), (len(want), 5)):
                    q = Query(text=text, model=model, lora=lora, seed=seed, roots=in_roots, limit=limit, offset=offset)
                    items, total = search(conn, q)
                    assert [i["id"] for i in items] == want[offset:offset + limit], q
                    assert total == min(len(want), 7), q


@pytest.mark.parametrize("text", ['"unclosed', "fox AND", "(fox", "NOT", "x" * 1001])
def test_query_errors_are_clear(lib, conn, text):
    index_folders(conn, [lib])
    with pytest.raises(QueryError):
        search(conn, Query(text=text))


def test_hostile_text_is_data_not_sql(lib, conn):
    index_folders(conn, [lib])
    assert fts_expression("fox'; DROP TABLE files; --") == '"fox" "DROP" "TABLE" "files"'
    assert search(conn, Query(text="fox'; DROP TABLE files; --"))[1] == 0
    assert search(conn, Query(model="' OR 1=1 --"))[1] == 0
    with pytest.raises(QueryError):
        search(conn, Query(text="x'); DROP TABLE files; --"))
    assert conn.execute("SELECT COUNT(*) FROM files").fetchone()[0] == 4


def test_incremental_rename_delete(lib, conn):
    index_folders(conn, [lib])
    fox_id = search(conn, Query(text="fox"))[0][0]["id"]
    again = index_folders(conn, [lib])
    assert (again.added, again.updated, again.unchanged) == (0, 0, 4)
    (lib / "fox.aigif").rename(lib / "sub" / "renamed.aigif")
    (lib / "sub" / "castle.aigif").unlink()
    make(lib / "fox2.aigif", "a blue fox", seed=3)
    os.utime(lib / "sub" / "import.aigif", ns=(1, 1))
    make(lib / "sub" / "import.aigif", "portrait of a dog", seed=5)
    report = index_folders(conn, [lib])
    assert (report.added, report.updated, report.renamed, report.deleted) == (1, 1, 1, 1)
    items = search(conn, Query(text="fox"))[0]
    assert {os.path.basename(i["path"]): i["id"] for i in items}["renamed.aigif"] == fox_id
    assert paths(search(conn, Query(text="dog"))[0]) == ["import.aigif"]
    assert search(conn, Query(text="cat OR castle"))[1] == 0
    assert conn.execute("SELECT COUNT(*) FROM loras").fetchone()[0] == 0  # the castle's LoRA row went with it
    conn.execute("INSERT INTO files_fts(files_fts) VALUES ('integrity-check')")  # full text matches the rows


def test_renamed_file_and_its_copies(lib, conn):
    index_folders(conn, [lib])
    fox_id = search(conn, Query(text="fox"))[0][0]["id"]
    data = (lib / "fox.aigif").read_bytes()
    (lib / "fox.aigif").rename(lib / "a-moved.aigif")
    (lib / "b-copy.aigif").write_bytes(data)
    (lib / "c-copy.aigif").write_bytes(data)
    report = index_folders(conn, [lib])
    assert (report.added, report.renamed, report.deleted) == (2, 1, 0)
    ids = {os.path.basename(i["path"]): i["id"] for i in search(conn, Query(text="fox"))[0]}
    assert ids["a-moved.aigif"] == fox_id and len(set(ids.values())) == 3


def test_worker_processes_index_the_same_rows(lib, tmp_path, monkeypatch):
    from aigif.library import index as indexmod

    for i in range(6):
        make(lib / "many" / f"{i}.aigif", f"prompt number {i}", seed=i, model=ModelRef(name="sdxl", loras=(Lora(name=f"l{i}", weight=0.5),)))
    columns = "path, content_hash, error, prompt, seed, model, lora_names, syntax"
    rows = {}
    for name, min_files in (("serial", 10**9), ("workers", 0)):
        monkeypatch.setattr(indexmod, "PARALLEL_MIN_FILES", min_files)
        monkeypatch.setattr(indexmod, "BATCH", 3)
        c = connect(tmp_path / f"{name}.sqlite")
        report = index_folders(c, [lib])
        assert report.added == 10 and len(report.errors) == 1
        rows[name] = [tuple(r) for r in c.execute(f"SELECT {columns} FROM files ORDER BY path")]
        rows[name + " loras"] = [tuple(r) for r in c.execute("SELECT f.path, l.name, l.weight FROM loras l JOIN files f ON f.id = l.file_id ORDER BY 1, 2")]
        c.execute("INSERT INTO files_fts(files_fts) VALUES ('integrity-check')")
        c.close()
    assert rows["serial"] == rows["workers"] and len(rows["serial"]) == 10
    assert rows["serial loras"] == rows["workers loras"] and len(rows["serial loras"]) == 7


def test_symlinks_are_not_followed(tmp_path, conn):
    outside = make(tmp_path / "outside" / "secret.aigif", "secret")
    lib = tmp_path / "lib2"
    make(lib / "mine.aigif", "mine")
    (lib / "link.aigif").symlink_to(outside)
    (lib / "dirlink").symlink_to(outside.parent, target_is_directory=True)
    index_folders(conn, [lib])
    assert paths(search(conn, Query())[0]) == ["mine.aigif"]


def test_library_folder_is_not_written(lib, tmp_path):
    before = sorted((p, p.stat().st_mtime_ns) for p in lib.rglob("*"))
    c = connect(tmp_path / "elsewhere.sqlite")
    index_folders(c, [lib])
    c.close()
    assert sorted((p, p.stat().st_mtime_ns) for p in lib.rglob("*")) == before


def test_killed_mid_way_resumes(lib, conn, monkeypatch):
    from aigif.library import index as indexmod

    for i in range(5):
        make(lib / "many" / f"{i}.aigif", f"prompt number {i}", seed=i)
    monkeypatch.setattr(indexmod, "BATCH", 2)
    calls = {"n": 0}
    real = indexmod._parse

    def dying(data):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(data)

    monkeypatch.setattr(indexmod, "_parse", dying)
    with pytest.raises(KeyboardInterrupt):
        index_folders(conn, [lib])
    committed = conn.execute("SELECT COUNT(*) FROM files").fetchone()[0]
    assert committed == 2  # the first batch; the interrupted one rolled back
    monkeypatch.setattr(indexmod, "_parse", real)
    report = index_folders(conn, [lib])
    assert report.unchanged == 2 and report.added == 7


def test_migrations(tmp_path):
    path = tmp_path / "m.sqlite"
    extra = dbmod.MIGRATIONS + [(dbmod.SCHEMA_VERSION + 1, "test column", "ALTER TABLE files ADD COLUMN rating INTEGER;")]
    raw = sqlite3.connect(path, isolation_level=None)
    assert dbmod.migrate(raw, dbmod.MIGRATIONS) == dbmod.SCHEMA_VERSION
    assert dbmod.migrate(raw, extra) == dbmod.SCHEMA_VERSION + 1  # an older database is upgraded in place
    assert "rating" in [r[1] for r in raw.execute("PRAGMA table_info(files)")]
    raw.close()
    with pytest.raises(LibraryError, match="newer than this aigif"):
        connect(path)


def test_failed_migration_rolls_back(tmp_path):
    raw = sqlite3.connect(tmp_path / "f.sqlite", isolation_level=None)
    broken = [(1, "broken", "CREATE TABLE a(x);\nCREATE TABLE a(x);")]
    with pytest.raises(sqlite3.OperationalError):
        dbmod.migrate(raw, broken)
    assert dbmod.schema_version(raw) == 0
    assert raw.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'a'").fetchone()[0] == 0


def test_not_a_database(tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(LibraryError, match="not a usable library database"):
        connect(bad)
    with pytest.raises(LibraryError, match="no library database"):
        connect(tmp_path / "missing.sqlite", create=False)


def test_cli_index_and_search(lib, tmp_path, capsys):
    db = str(tmp_path / "cli.sqlite")
    assert main(["index", str(lib), "--db", db]) == 0
    out = capsys.readouterr()
    assert "3 new" not in out.out and "4 new" in out.out and "broken.aigif" in out.err
    assert main(["search", "fox", "--db", db, "--json"]) == 0
    items = json.loads(capsys.readouterr().out)
    assert [os.path.basename(i["path"]) for i in items] == ["fox.aigif"]
    assert items[0]["prompt"] == "a red fox in the snow, oil painting" and items[0]["seed"] == 42
    assert {"num_inference_steps", "guidance_scale", "width", "height", "model", "negative_prompt"} <= set(items[0])
    assert main(["search", "--db", db, "--lora", "detail-tweaker"]) == 0
    assert "castle.aigif" in capsys.readouterr().out
    assert main(["search", '"open', "--db", db]) == 1
    assert "unbalanced quote" in capsys.readouterr().err
    assert main(["search", "x", "--db", str(tmp_path / "none.sqlite")]) == 1


def test_version_1_database_upgrades_and_keeps_its_rows(lib, tmp_path):
    path = tmp_path / "v1.sqlite"
    raw = sqlite3.connect(path, isolation_level=None)
    dbmod.migrate(raw, dbmod.MIGRATIONS[:1])
    raw.execute("INSERT INTO files(path, root, content_hash, file_size, mtime_ns, indexed_at, prompt, model, regenerable) "
                "VALUES (?, ?, 'ab', 1, 1, 0, 'an old fox', 'sd15', 1)", (str(tmp_path / "gone" / "old.aigif"), str(tmp_path / "gone")))
    raw.close()  # a version-1 database: its full-text row written by the trigger version 2 drops
    conn = connect(path)
    assert dbmod.schema_version(conn) == dbmod.SCHEMA_VERSION
    assert conn.execute("SELECT COUNT(*) FROM renders").fetchone()[0] == 0
    assert paths(search(conn, Query(text="fox"))[0]) == ["old.aigif"]
    index_folders(conn, [lib])
    assert paths(search(conn, Query(text="fox"))[0]) == ["fox.aigif", "old.aigif"]
    conn.execute("INSERT INTO files_fts(files_fts) VALUES ('integrity-check')")
    conn.close()


def test_signature_and_provenance_columns(tmp_path, conn):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from aigif.provenance.signature import sign

    lib = tmp_path / "signed"
    plain = make(lib / "plain.aigif", "a plain file")
    signed = sign(dumps(Document(generation=Generation(prompt="a signed fox", seed=1, num_inference_steps=20,
                                                       guidance_scale=7.0, width=512, height=512),
                                 model=ModelRef(name="sd15"), c2pa=b"\x00" * 40)), Ed25519PrivateKey.generate())
    (lib / "signed.aigif").write_bytes(signed)
    tampered = bytearray(signed)
    tampered[bytes(tampered).index(b"\x00" * 40)] = 1  # a signed byte of the c2pa payload; the CRC is fixed below
    import zlib
    tampered[-4:] = zlib.crc32(bytes(tampered[:-4])).to_bytes(4, "little")
    (lib / "tampered.aigif").write_bytes(bytes(tampered))
    index_folders(conn, [lib])
    rows = {os.path.basename(r["path"]): r for r in conn.execute("SELECT * FROM files")}
    assert rows["plain.aigif"]["signature_status"] is None and rows["plain.aigif"]["provenance"] is None
    assert rows["signed.aigif"]["signature_status"].startswith("valid (ed25519")
    assert "40 bytes" in rows["signed.aigif"]["provenance"]
    bad = rows["tampered.aigif"]
    assert bad["error"] is None and bad["signature_status"].startswith("INVALID"), dict(bad)
    assert plain.exists()
