"""Extensions: schema codec, registration, entry point discovery, forward compatibility,
conformance files, the ``aigif extensions`` command and the img2img example end to end."""
from __future__ import annotations

import importlib.metadata
import json
import sys
import tomllib
import warnings
from pathlib import Path

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aigif
from aigif.container import Segment, read_container
from aigif.errors import AigifError, ConfigError, CorruptError, LimitError, ModelError, RegistryError, UnknownSegmentError
from aigif.engine.adapters import apply_adapters
from aigif.syntax import extensions as X
from aigif.syntax.extensions import (
    AigifWarning, ExtensionError, ExtensionLoadWarning, ExtensionPayloadWarning, Field, UnknownExtensionWarning,
    extension_for, extension_named, extension_segment, load_entry_points, msgpack_extension,
    register_extension, registered_extensions, unregister_extension,
)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "aigif-img2img"
CONF = ROOT / "spec" / "conformance"


@pytest.fixture(autouse=True)
def clean_registry(monkeypatch):
    """Every test starts with an empty registry and no discovery; nothing leaks to other test files."""
    monkeypatch.setattr(X, "_BY_TYPE", {})
    monkeypatch.setattr(X, "_BY_NAME", {})
    monkeypatch.setattr(X, "_discovered", True)
    monkeypatch.setattr(X, "_load_failures", [])


def _doc(**kw):
    gen = aigif.Generation(prompt="a red fox", seed=7, num_inference_steps=20, guidance_scale=7.5, width=512, height=512)
    return aigif.Document(generation=gen, model=aigif.ModelRef(name="sd15"), **kw)


SCHEMA = {
    "n": Field("int", required=True, min=0, max=10),
    "x": Field("number", min=-1.0, max=1.0),
    "s": Field("str", max_len=4, choices=None),
    "b": Field("bytes", max_len=3),
    "l": Field("list", items=Field("int"), max_len=2),
    "o": Field("object", fields={"k": Field("bool", required=True)}),
    "m": Field("map", max_len=2),
    "h": Field("hex", max_len=2),
}


def _ext(code=0x4000, **kw):
    return msgpack_extension("t", code, SCHEMA, **kw)


# --- schema codec ------------------------------------------------------------------------
def test_schema_round_trip_and_json_form():
    ext = _ext()
    data = {"n": 3, "x": 0.5, "s": "abcd", "b": b"\x00\xff", "l": [1, 2], "o": {"k": True}, "m": {"a": [1, None]}, "h": "00ff"}
    payload = ext.encode(data)
    assert ext.load(payload) == data
    j = ext.decode(payload)
    assert j["b"] == {"base64": "AP8="} and json.loads(json.dumps(j)) == j
    assert ext.encode(j) == payload                       # JSON form encodes to the same bytes
    # canonical: schema order, numbers as float64, absent optionals omitted
    assert list(msgpack.unpackb(payload)) == ["n", "x", "s", "b", "l", "o", "m", "h"]
    assert msgpack.unpackb(payload)["h"] == b"\x00\xff" and j["h"] == "00ff"   # hex: bin on the wire
    assert ext.encode({"n": 3}) == msgpack.packb({"n": 3})
    assert ext.encode({"n": 3, "x": 1}) == ext.encode({"n": 3, "x": 1.0})


@pytest.mark.parametrize("field,ok,bad", [
    ("n", 10, 11), ("n", 0, -1), ("x", 1.0, 1.0000001), ("s", "abcd", "abcde"), ("b", b"123", b"1234"),
    ("l", [1, 2], [1, 2, 3]), ("m", {"a": 1, "b": 2}, {"a": 1, "b": 2, "c": 3}), ("h", "abcd", "abcdef"),
])
def test_schema_bounds_limit_passes_limit_plus_one_fails(field, ok, bad):
    ext = _ext()
    base = {"n": 1}
    ext.encode({**base, field: ok})
    with pytest.raises(ConfigError):
        ext.encode({**base, field: bad})
    # the decoder checks the same bounds on hostile bytes
    raw = msgpack.packb({**base, field: bytes.fromhex(bad) if field == "h" else bad}, use_bin_type=True)
    with pytest.raises((CorruptError, LimitError)):
        ext.decode(raw)
    assert ext.decode(msgpack.packb({**base, field: bytes.fromhex(ok) if field == "h" else ok}, use_bin_type=True))


@pytest.mark.parametrize("data", [
    {}, {"n": "1"}, {"n": True}, {"n": 1.5}, {"n": 1, "x": float("nan")}, {"n": 1, "o": {}}, {"n": 1, "o": {"k": 1}},
    {"n": 1, "zz": 1}, {"n": 1, "m": {1: 2}}, {"n": 1, "m": {"a": object()}}, {"n": 1, "b": "text"}, [1],
    {"n": 1, "h": "ABCD"}, {"n": 1, "h": "abc"}, {"n": 1, "h": b"\x00"},
])
def test_schema_refuses_bad_data_on_encode(data):
    with pytest.raises(ConfigError):
        _ext().encode(data)


def test_decoder_ignores_unknown_keys_but_refuses_hostile_msgpack():
    ext = _ext()
    assert ext.decode(msgpack.packb({"n": 2, "future": [1, 2, 3]})) == {"n": 2}
    hostile = [
        b"", b"\x93\x01\x02\x03",                                        # not a map
        msgpack.packb({"n": 1, "m": {"a": msgpack.ExtType(1, b"x")}}),   # ext type
        msgpack.packb({"n": 1, "m": {"a": msgpack.Timestamp(1)}}),       # timestamp ext
        b"\x82\xa1n\x01\xa1n\x02",                                       # duplicate key
        b"\x81\x01\x01",                                                 # integer key
        b"\x81\xa1n\xdb\xff\xff\xff\xff",                                # str32 of 4 GiB in a tiny payload
        b"\x81\xa1n\xdd\x7f\xff\xff\xff",                                # array32 header of 2**31 items
        msgpack.packb({"n": 1}) + b"\x00",                               # trailing bytes
        b"\x81\xa1m" + b"\x81\xa1a" * 40 + b"\xc0",                      # nested deeper than max_nesting
        b"\x81\xa1m\x81\xa1a" + b"\x91" * 5000 + b"\xc0",                # msgpack stack bomb
        b"\x81\xa1n\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00",                # NaN where an int is due
    ]
    for raw in hostile:
        with pytest.raises((CorruptError, LimitError)):
            ext.decode(raw)


def test_every_truncation_is_a_clean_error():
    ext = _ext()
    payload = ext.encode({"n": 3, "x": 0.5, "s": "ab", "b": b"\x01", "l": [1], "o": {"k": False}, "m": {"a": "b"}, "h": "ab"})
    for cut in range(len(payload)):
        with pytest.raises(AigifError):
            ext.decode(payload[:cut])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_random_payloads_raise_only_aigif_errors(raw):
    ext = _ext()
    try:
        data = ext.decode(raw)
    except AigifError:
        return
    assert ext.decode(ext.encode(data)) == data       # whatever decodes re-encodes to the same data


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.text(max_size=8) | st.binary(max_size=8)
                    | st.floats(allow_nan=False, allow_infinity=False),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
                    max_leaves=12))
def test_free_map_values_round_trip_or_refuse(value):
    ext = msgpack_extension("free", 0x4000, {"m": Field("map")})
    try:
        payload = ext.encode({"m": {"v": value}})
    except ConfigError:
        return                                          # bytes inside a free map: refused on encode
    assert ext.load(payload) == {"m": {"v": value if not isinstance(value, tuple) else list(value)}}


def test_payload_size_limit():
    ext = msgpack_extension("big", 0x4000, {"b": Field("bytes")}, max_payload=100)
    ok = ext.encode({"b": b"x" * 95})
    assert len(ok) == 100
    with pytest.raises(LimitError):
        ext.encode({"b": b"x" * 96})
    with pytest.raises(LimitError):
        ext.decode(msgpack.packb({"b": b"x" * 96}))


def test_critical_flag_must_match_lowest_bit():
    assert _ext(0x4001, critical=True).critical_types == (0x4001,)
    assert _ext(0x4000, critical=False).critical_types == ()
    with pytest.raises(ConfigError, match="odd"):
        _ext(0x4000, critical=True)
    with pytest.raises(ConfigError):
        _ext(0x4001, critical=False)


def test_bad_schemas_are_refused():
    for bad in ({}, {"a": "int"}, {"": Field("int")}):
        with pytest.raises(ConfigError):
            msgpack_extension("x", 0x4000, bad)
    with pytest.raises(ConfigError):
        Field("float")
    with pytest.raises(ConfigError):
        Field("list")


# --- registration ------------------------------------------------------------------------
def test_register_lookup_unregister():
    ext = register_extension(_ext(0x4000))
    assert extension_for(0x4000) is ext and extension_named("t") is ext and registered_extensions() == [ext]
    with pytest.raises(ConfigError, match="already registered"):
        register_extension(msgpack_extension("other", 0x4000, SCHEMA))
    other = register_extension(msgpack_extension("other", 0x4000, SCHEMA), replace=True)
    assert extension_for(0x4000) is other and extension_named("t") is None
    unregister_extension("other")
    assert extension_for(0x4000) is None and registered_extensions() == []


@pytest.mark.parametrize("code", [0, 1, 0x02, 0x3F, 2**32, -5])
def test_core_and_out_of_range_codes_are_refused(code):
    with pytest.raises(ConfigError):
        register_extension(X.Extension("x", (code,), bytes, bytes))


def test_assigned_public_code_belongs_to_its_extension():
    with pytest.raises(ConfigError, match="assigned to 'img2img'"):
        register_extension(msgpack_extension("not-img2img", 0x41, SCHEMA))
    register_extension(msgpack_extension("unassigned-public", 0x3FFE, SCHEMA))   # free public code: allowed


class _Adapter:
    def __init__(self, pipeline=None, result=None):
        self.pipeline = pipeline
        self.result = result

    def adapt(self, pipe, call_kwargs, data):
        if self.result is not None:
            return self.result
        return pipe, {**call_kwargs, "n": data["n"]}


def test_adapter_pipeline_must_be_allowlisted():
    with pytest.raises(ConfigError, match="adapt"):
        register_extension(_ext(0x4001, adapter=object()))
    with pytest.raises(ConfigError, match="class name"):
        register_extension(_ext(0x4001, adapter=_Adapter(42)))
    register_extension(_ext(0x4001, adapter=_Adapter("MyRemoteCodePipeline")))   # the engine refuses it, not the registry
    seg = Segment(0x4001, msgpack.packb({"n": 1}))
    with pytest.raises(ExtensionError, match="not allowlisted"):
        apply_adapters([seg], StableDiffusionPipeline(), {})
    register_extension(_ext(0x4001, adapter=_Adapter("StableDiffusionImg2ImgPipeline")), replace=True)
    assert apply_adapters([seg], StableDiffusionPipeline(), {}).applied == ["t"]


def test_extension_segment_helper():
    register_extension(_ext(0x4000))
    seg = extension_segment("t", {"n": 4})
    assert seg == Segment(0x4000, msgpack.packb({"n": 4}))
    with pytest.raises(RegistryError):
        extension_segment("nope", {})
    with pytest.raises(ConfigError):
        extension_segment("t", {"n": 4}, type_code=0x4002)


# --- apply_adapters (engine side) ----------------------------------------------------------------
class StableDiffusionPipeline:  # stand-ins: only the class name matters to apply_adapters
    pass


class StableDiffusionImg2ImgPipeline:
    pass


def test_apply_adapters_runs_in_file_order_and_checks_contract():
    register_extension(_ext(0x4001, adapter=_Adapter()))
    base = StableDiffusionPipeline()
    segs = [Segment(0x4001, msgpack.packb({"n": 1})), Segment(0x4000, b"unknown ancillary: ignored"),
            Segment(0x4001, msgpack.packb({"n": 2}))]
    out = apply_adapters(segs, base, {"prompt": "p"})
    assert out.pipe is base and out.call_kwargs == {"prompt": "p", "n": 2} and out.applied == ["t", "t"]

    new = StableDiffusionImg2ImgPipeline()
    register_extension(_ext(0x4001, adapter=_Adapter("StableDiffusionImg2ImgPipeline", (new, {}))), replace=True)
    assert apply_adapters(segs[:1], base, {}).pipe is new
    register_extension(_ext(0x4001, adapter=_Adapter("StableDiffusionXLImg2ImgPipeline", (new, {}))), replace=True)
    with pytest.raises(ExtensionError, match="declared"):
        apply_adapters(segs[:1], base, {})
    for result in ((base,), (base, [1]), None, (base, {1: 2})):
        register_extension(_ext(0x4001, adapter=_Adapter(None, result or "x")), replace=True)
        with pytest.raises(ExtensionError):
            apply_adapters(segs[:1], base, {})


def test_apply_adapters_refuses_what_it_cannot_honour():
    base = StableDiffusionPipeline()
    with pytest.raises(UnknownSegmentError):
        apply_adapters([Segment(0x4003, b"")], base, {})
    register_extension(_ext(0x4001))                                       # critical, no adapter
    with pytest.raises(ExtensionError, match="no pipeline adapter"):
        apply_adapters([Segment(0x4001, msgpack.packb({"n": 1}))], base, {})
    register_extension(_ext(0x4000), replace=True)                         # ancillary, no adapter: ignored
    assert apply_adapters([Segment(0x4000, msgpack.packb({"n": 1}))], base, {}).applied == []

    class Boom:
        pipeline = None

        def adapt(self, pipe, kw, data):
            raise RuntimeError("boom")

    register_extension(_ext(0x4001, adapter=Boom()))
    with pytest.raises(ExtensionError, match="boom"):
        apply_adapters([Segment(0x4001, msgpack.packb({"n": 1}))], base, {})


# --- forward compatibility through aigif.loads / dumps --------------------------------------------
def test_unknown_ancillary_decodes_with_warning_and_is_preserved_byte_for_byte():
    segs = (Segment(0x4000, b"\x01\x02"), Segment(0x3FFE, b""), Segment(0x200000, msgpack.packb({"a": 1})))
    data = aigif.dumps(_doc(extensions=segs))
    with pytest.warns(UnknownExtensionWarning) as rec:
        doc = aigif.loads(data)
    assert all(issubclass(w.category, AigifWarning) for w in rec) and len(rec) == 3
    assert ["0x4000" in str(rec[0].message), "0x3ffe" in str(rec[1].message), "0x200000" in str(rec[2].message)] == [True] * 3
    assert doc.extensions == segs and doc.unknown_segments == list(segs)
    assert aigif.dumps(doc) == data
    d = aigif.document_to_dict(doc)
    assert d["extensions"][0] == {"type": 0x4000, "critical": False, "payload_hex": "0102"}
    assert aigif.dumps(aigif.document_from_dict(json.loads(json.dumps(d)))) == data    # JSON form preserves them too


def test_unknown_critical_is_refused_naming_the_type_code():
    data = aigif.dumps(_doc(extensions=(Segment(0x4000, b"ok"), Segment(0x4001, b"needed"))))
    with pytest.raises(UnknownSegmentError, match="0x4001"), warnings.catch_warnings():
        warnings.simplefilter("ignore", AigifWarning)
        aigif.loads(data)
    with pytest.raises(UnknownSegmentError, match="img2img"):          # an assigned code names its extension
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AigifWarning)
            aigif.loads(aigif.dumps(_doc(extensions=(Segment(0x41, b"\x80"),))))


def test_registered_extension_decodes_and_validates_on_read():
    ext = register_extension(_ext(0x4001))
    register_extension(msgpack_extension("anc", 0x4000, {"v": Field("int", required=True)}))
    good = aigif.dumps(_doc(extensions=(extension_segment("t", {"n": 5}), extension_segment("anc", {"v": 1}))))
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                  # known extensions: no warning
        doc = aigif.loads(good)
    assert aigif.dumps(doc) == good
    assert aigif.document_to_dict(doc)["extensions"] == [
        {"type": 0x4001, "critical": True, "name": "t", "data": {"n": 5}},
        {"type": 0x4000, "critical": False, "name": "anc", "data": {"v": 1}},
    ]
    back = aigif.document_from_dict(aigif.document_to_dict(doc))
    assert aigif.dumps(back) == good
    # a known critical extension with a payload its schema refuses: the file is corrupt
    with pytest.raises(CorruptError, match="'t'"):
        aigif.loads(aigif.dumps(_doc(extensions=(Segment(0x4001, msgpack.packb({"n": 99})),))))
    # a known ancillary one: a warning, and the bytes are kept
    bad_anc = aigif.dumps(_doc(extensions=(Segment(0x4000, b"\xc1"),)))
    with pytest.warns(ExtensionPayloadWarning):
        doc = aigif.loads(bad_anc)
    assert aigif.dumps(doc) == bad_anc
    assert ext.critical(0x4001)


# --- conformance files --------------------------------------------------------------------------
def _make_ext():
    sys.path.insert(0, str(CONF))
    try:
        import make_ext
    finally:
        sys.path.remove(str(CONF))
    return make_ext


EXT_FILES = sorted(CONF.glob("*/ext-*.aigif"))


def test_ext_conformance_files_exist():
    assert {p.relative_to(CONF).as_posix() for p in EXT_FILES} >= {
        "valid/ext-ancillary-private.aigif", "valid/ext-ancillary-many.aigif", "invalid/ext-critical-unknown.aigif"}


@pytest.mark.parametrize("path", EXT_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_ext_conformance_file(path):
    expected = json.loads(path.with_suffix(".json").read_text("utf-8"))
    data = path.read_bytes()
    if path.parent.name == "invalid":
        with pytest.raises(AigifError) as info, warnings.catch_warnings():
            warnings.simplefilter("ignore", AigifWarning)
            aigif.loads(data)
        assert info.value.kind == expected["error"]
        return
    with pytest.warns(UnknownExtensionWarning):
        doc = aigif.loads(data)
    assert aigif.document_to_dict(doc) == expected
    assert aigif.dumps(doc) == data


def test_aigif_info_json_prints_the_sidecar(capsys):
    from aigif.cli import main

    for path in EXT_FILES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AigifWarning)
            rc = main(["info", "--json", str(path)])
        out, err = capsys.readouterr()
        if path.parent.name == "invalid":
            assert rc == 1 and "0x4001" in err
        else:
            assert rc == 0, err
            assert json.loads(out) == json.loads(path.with_suffix(".json").read_text("utf-8"))


def test_make_ext_reproduces_the_extension_segments():
    built = _make_ext().build()
    assert {f"{n}.aigif" for n in built} == {p.relative_to(CONF).as_posix() for p in EXT_FILES}
    for name, (data, expected) in built.items():
        on_disk = (CONF / f"{name}.aigif").read_bytes()
        core = {t for t in aigif.syntax.registry.CORE_SEGMENTS}
        ours = [s for s in read_container(data)[1] if s.type not in core]
        assert ours == [s for s in read_container(on_disk)[1] if s.type not in core]
        assert json.loads((CONF / f"{name}.json").read_text("utf-8")) == expected


# --- CLI --------------------------------------------------------------------------------------------
def test_cli_extensions_lists_registered_ones():
    from typer.testing import CliRunner

    from aigif.cli import app

    register_extension(msgpack_extension("my-note", 0x4000, {"t": Field("str")}, description="a private note"))
    res = CliRunner().invoke(app, ["extensions"])
    assert res.exit_code == 0, res.output
    assert "my-note" in res.output and "0x4000 ancillary" in res.output and "a private note" in res.output
    assert "(registered in code)" in res.output and "img2img" in res.output and "not installed" in res.output
    assert "sdxl (StableDiffusionXLPipeline)" in res.output
    res = CliRunner().invoke(app, ["extensions", "--json"])
    info = json.loads(res.output)
    assert info["extensions"][0]["name"] == "my-note" and info["extensions"][0]["critical"] == [False]
    assert info["assigned"][0]["type"] == "0x0041" and {"name": "sd1", "pipeline": "StableDiffusionPipeline"} in info["families"]


# --- entry points and the example package ----------------------------------------------------------
def _declared_entry_points() -> dict[str, str]:
    meta = tomllib.loads((EXAMPLE / "pyproject.toml").read_text("utf-8"))
    return meta["project"]["entry-points"][X.ENTRY_POINT_GROUP]


@pytest.fixture
def example_installed(tmp_path, monkeypatch):
    """The example as pip would install it: package importable + a dist-info with its entry points."""
    for mod in [m for m in sys.modules if m.startswith("aigif_img2img")]:
        monkeypatch.delitem(sys.modules, mod)
    site = tmp_path / "site"
    dist = site / "aigif_img2img-0.1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: aigif-img2img\nVersion: 0.1.0\n", "utf-8")
    eps = "".join(f"{k} = {v}\n" for k, v in _declared_entry_points().items())
    (dist / "entry_points.txt").write_text(f"[{X.ENTRY_POINT_GROUP}]\n{eps}", "utf-8")
    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(X, "_discovered", False)
    return site


def test_entry_points_are_discovered_lazily_once(example_installed, monkeypatch):
    calls = []
    real = X._installed_entry_points
    monkeypatch.setattr(X, "_installed_entry_points", lambda: calls.append(1) or real())
    assert X._BY_NAME == {} and not calls                      # nothing loaded before the first lookup
    ext = extension_for(0x41)
    assert ext is not None and ext.name == "img2img" and ext.source == "aigif-img2img" and ext.version == "0.1.0"
    extension_named("img2img"), registered_extensions(), extension_for(0x4000)
    assert calls == [1]


def test_no_plugins_env_disables_discovery(example_installed, monkeypatch):
    monkeypatch.setenv(X.NO_PLUGINS_ENV, "1")
    assert extension_for(0x41) is None


def test_broken_plugins_warn_and_are_skipped(example_installed):
    EP = importlib.metadata.EntryPoint
    broken = [
        EP("missing", "no_such_module_xyz:ext", X.ENTRY_POINT_GROUP),
        EP("wrong", "string:ascii_letters", X.ENTRY_POINT_GROUP),  # not an Extension
        EP("raises", "aigif_img2img:provide_image", X.ENTRY_POINT_GROUP),
    ]
    register_extension(msgpack_extension("squatter", 0x4000, SCHEMA))
    clash = EP("clash", "tests_ext_clash:ext", X.ENTRY_POINT_GROUP)
    sys.modules["tests_ext_clash"] = type(sys)("tests_ext_clash")
    sys.modules["tests_ext_clash"].ext = msgpack_extension("clasher", 0x4000, SCHEMA)
    try:
        with pytest.warns(ExtensionLoadWarning) as rec:
            loaded = load_entry_points([*broken, clash, EP("img2img", _declared_entry_points()["img2img"], X.ENTRY_POINT_GROUP)])
    finally:
        del sys.modules["tests_ext_clash"]
    assert len(rec) == 4 and [e.name for e in loaded] == ["img2img"]
    assert extension_for(0x4000).name == "squatter" and len(X.load_failures()) == 4


def test_img2img_example_schema_and_checks(example_installed):
    import numpy as np

    import aigif_img2img as m

    ext = extension_for(m.TYPE_CODE)
    rgb = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)
    data = m.init_image_data(rgb, 0.6)
    seg = extension_segment("img2img", data)
    assert seg.critical and ext.load(seg.payload)["png"] == data["png"]
    with pytest.raises(ConfigError):
        extension_segment("img2img", {**data, "strength": 1.5})
    with pytest.raises(ConfigError, match="does not match"):
        extension_segment("img2img", {**data, "image_sha256": "0" * 64})
    with pytest.raises(ConfigError, match="cannot be decoded"):
        extension_segment("img2img", {**data, "png": b"\x89PNG\r\n\x1a\nbroken"})
    bad = dict(ext.load(seg.payload), image_sha256=bytes.fromhex("f" * 64))    # wire form of a wrong digest
    doc = _doc(extensions=(Segment(m.TYPE_CODE, msgpack.packb(bad, use_bin_type=True)),))
    with pytest.raises(CorruptError, match="img2img"):
        aigif.loads(aigif.dumps(doc))


def test_img2img_example_end_to_end_on_the_engine(example_installed, tmp_path):
    """Generate txt2img, use it as init image, store as .aigif, reload (entry point), regenerate exactly,
    on the project's engine and its embedded tiny model."""
    import numpy as np
    import torch

    torch.set_num_threads(1)
    import aigif_img2img as m
    from aigif.engine import Engine

    model = aigif.ModelRef(name="aigif-tiny-sd")
    engine = Engine(threads=1)
    gen = aigif.Generation(prompt="a cat", seed=3, num_inference_steps=4, guidance_scale=5.0, width=64, height=64)
    base = engine.generate(gen, model).image
    regen = engine.regenerate

    init = np.ascontiguousarray(base[::-1])                  # a different picture as init image
    seg = extension_segment("img2img", m.init_image_data(init, 0.75))
    result = engine.generate(gen, model, extensions=(seg,))
    doc = result.document
    assert doc.extensions == (seg,)
    data = aigif.dumps(doc)
    X._BY_TYPE.clear(), X._BY_NAME.clear()
    X._discovered = False                                     # a fresh process: found again via the entry point
    out1 = regen(aigif.loads(data))
    out2 = regen(aigif.loads(data))
    assert np.array_equal(out1, out2)                         # regeneration is exact
    assert np.array_equal(out1, result.image)
    assert not np.array_equal(out1, base)                     # the extension changed the picture...
    other = aigif.Document(generation=gen, model=model,
                           extensions=(extension_segment("img2img", m.init_image_data(np.zeros_like(init), 0.75)),))
    out3 = regen(aigif.loads(aigif.dumps(other)))
    assert not np.array_equal(out1, out3)                     # ...and it depends on the init image

    # referenced, not embedded: the caller must provide the image
    ref = aigif.Document(generation=gen, model=model, extensions=(extension_segment("img2img", m.init_image_data(init, 0.75, embed=False)),))
    ref_data = aigif.dumps(ref)
    assert len(ref_data) < len(data)
    m._PROVIDED.clear()
    with pytest.raises(ModelError, match="provide_image"):
        regen(aigif.loads(ref_data))
    m.provide_image(init)
    assert np.array_equal(regen(aigif.loads(ref_data)), out1)
