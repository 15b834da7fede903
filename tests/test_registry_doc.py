"""spec/registry.md must mirror aigif/syntax/registry.py (and the assigned extension codes) exactly."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from aigif.syntax import registry as r
from aigif.syntax.extensions import ASSIGNED_EXTENSIONS

DOC = Path(__file__).resolve().parents[1] / "spec" / "registry.md"


def parse_tables(text: str) -> dict[str, list[dict[str, str]]]:
    """Markdown tables keyed by the '## ' heading above them (cells stripped, backticks removed)."""
    tables: dict[str, list[dict[str, str]]] = {}
    heading, header, rows = None, None, None
    for line in text.splitlines() + [""]:
        if line.startswith("## "):
            heading = line[3:].strip()
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if header is None:
                header, rows = cells, []
            elif all(re.fullmatch(r":?-{3,}:?", c) for c in cells):
                continue
            else:
                assert len(cells) == len(header), f"{heading}: row {line!r} has {len(cells)} cells, header {len(header)}"
                rows.append(dict(zip(header, (c.replace("`", "") for c in cells))))
        elif header is not None:
            key = heading if heading not in tables else f"{heading} ({len(tables)})"
            tables[key] = rows
            header = rows = None
    return tables


@pytest.fixture(scope="module")
def tables():
    return parse_tables(DOC.read_text("utf-8"))


def _opt(cell: str) -> str | None:
    return None if cell == "—" else cell


def _codes(rows, key="Code"):
    codes = [int(row[key], 0) for row in rows]
    assert len(codes) == len(set(codes)), "a code appears twice"
    return codes


def test_every_registry_table_is_documented(tables):
    for name in ("Segment types", "Devices", "Dtypes", "Attention backends", "Hardware", "CPU instruction sets",
                 "oneDNN instruction sets", "Library releases", "Pipeline families", "Models",
                 "Schedulers", "Upscalers", "Inpaint fill modes", "Extension type codes"):
        assert name in tables, f"spec/registry.md lacks the table '## {name}'"


def test_segment_types(tables):
    rows = tables["Segment types"]
    assert {int(x["Code"], 0): x["Name"] for x in rows} == r.CORE_SEGMENTS
    for x in rows:
        assert x["Critical"] == ("yes" if int(x["Code"], 0) & 1 else "no")
    assert len(_codes(rows)) == len(r.CORE_SEGMENTS)


def test_type_code_ranges(tables):
    ranges = {x["Use"].split(",")[0]: x["Range"] for x in tables["Rules for codes"]}
    core = ranges["core segments"].split("..")
    assert range(int(core[0], 0), int(core[1], 0) + 1) == r.CORE_RANGE
    public = ranges["public extensions"].split("..")
    assert range(int(public[0], 0), int(public[1], 0) + 1) == r.PUBLIC_EXTENSION_RANGE
    assert int(ranges["private extensions and experiments"].rstrip("."), 0) == r.PRIVATE_EXTENSION_START


@pytest.mark.parametrize("heading,table", [("Devices", r.DEVICES), ("Dtypes", r.DTYPES), ("Attention backends", r.ATTENTION),
                                           ("CPU instruction sets", r.CPU_ISAS), ("oneDNN instruction sets", r.ONEDNN_ISAS)])
def test_platform_enums(tables, heading, table):
    rows = tables[heading]
    assert {int(x["Code"]): x["Name"] for x in rows} == table
    assert len(_codes(rows)) == len(table)


def test_library_releases(tables):
    doc = {x["Library"]: tuple(v.strip() for v in x["Releases in code order"].split(",")) for x in tables["Library releases"]}
    assert doc == r.RELEASES
    assert all(len(set(t)) == len(t) for t in r.RELEASES.values())


def test_hardware(tables):
    rows = tables["Hardware"]
    doc = {int(x["Code"]): r.Hardware(x["Device"], _opt(x["GPU (torch device name)"]), _opt(x["Compute capability"])) for x in rows}
    assert doc == r.HARDWARE and len(_codes(rows)) == len(r.HARDWARE)


def test_families(tables):
    rows = tables["Pipeline families"]
    from aigif.engine.families import get_family

    yn = {"yes": True, "no": False}
    doc = {int(x["Code"]): r.Family(x["Name"], int(x["Default size"]), x["Default scheduler"], int(x["Default steps"]),
                                    float(x["Default guidance"]), yn[x["Flow"]], yn[x["Own sigmas"]])
           for x in rows}
    assert doc == r.FAMILIES and len(_codes(rows)) == len(r.FAMILIES)
    from aigif.engine.families import registered_families

    regenerated = {f.name for f in registered_families()}
    assert all(get_family(x["Name"]).pipeline == x["Diffusers pipeline"] for x in rows if x["Name"] in regenerated)


def test_models(tables):
    rows = tables["Models"]
    doc = {
        int(x["Code"]): r.ModelEntry(x["Name"], x["Family"], x["Repository"], x["Revision"], _opt(x["sha256"]),
                                     _opt(x["Single-file sha256"]), {"yes": True, "no": False}[x["Embedded"]])
        for x in rows
    }
    assert doc == r.MODELS and len(_codes(rows)) == len(r.MODELS)


def test_schedulers(tables):
    rows = tables["Schedulers"]
    doc = {}
    for x in rows:
        overrides = {} if x["Config overrides"] == "—" else json.loads(x["Config overrides"])
        a1111 = () if x["A1111 sampler names"] == "—" else tuple(a.strip() for a in x["A1111 sampler names"].split(","))
        doc[int(x["Code"])] = r.SchedulerEntry(x["Name"], x["Diffusers class"], overrides, a1111)
    assert doc == r.SCHEDULERS and len(_codes(rows)) == len(r.SCHEDULERS)


def test_upscalers(tables):
    rows = tables["Upscalers"]
    doc = {}
    for x in rows:
        names = () if x["Tool names"] == "—" else tuple(a.strip() for a in x["Tool names"].split(","))
        files = () if x["Files"] == "—" else tuple(a.strip() for a in x["Files"].split(","))
        scale = None if x["Scale"] == "—" else int(x["Scale"])
        doc[int(x["Code"])] = r.Upscaler(x["Name"], x["Space"], _opt(x["Mode"]), x["Antialias"] == "yes", names,
                                         _opt(x["Architecture"]), files, scale)
    assert doc == r.UPSCALERS and len(_codes(rows)) == len(r.UPSCALERS)


def test_inpaint_fill_modes(tables):
    rows = tables["Inpaint fill modes"]
    doc = {int(x["Code"]): r.InpaintFill(x["Name"], () if x["Tool names"] == "—" else
                                         tuple(a.strip() for a in x["Tool names"].split(","))) for x in rows}
    assert doc == r.INPAINT_FILLS and len(_codes(rows)) == len(r.INPAINT_FILLS)


def test_extension_codes(tables):
    rows = tables["Extension type codes"]
    doc = {int(x["Code"], 0): (x["Name"], x["Package"], x["Status"]) for x in rows}
    assert doc == {c: (a.name, a.package, a.status) for c, a in ASSIGNED_EXTENSIONS.items()}
    for x in rows:
        code = int(x["Code"], 0)
        assert code in r.PUBLIC_EXTENSION_RANGE, f"{x['Code']} is not a public extension code"
        assert x["Critical"] == ("yes" if code & 1 else "no")
        assert x["Status"] in ("active", "deprecated")
    assert len({x["Name"] for x in rows}) == len(rows), "an extension name is assigned twice"


def test_parser_catches_drift(tables):
    """The comparison can fail: a changed cell shows up as a difference."""
    text = DOC.read_text("utf-8").replace("| 5 | `euler` | `EulerDiscreteScheduler` |", "| 5 | `euler` | `EulerAncestralDiscreteScheduler` |")
    changed = parse_tables(text)["Schedulers"]
    assert [x for x in changed if x["Name"] == "euler"][0]["Diffusers class"] == "EulerAncestralDiscreteScheduler"
    assert changed != tables["Schedulers"]


DOCUMENTED = {"CORE_SEGMENTS", "DEVICES", "DTYPES", "ATTENTION", "HARDWARE", "CPU_ISAS", "ONEDNN_ISAS", "FAMILIES", "MODELS",
              "SCHEDULERS", "UPSCALERS", "INPAINT_FILLS"}


def test_no_registry_table_is_forgotten():
    """A new code table in registry.py (a public dict keyed by int codes) needs a table in spec/registry.md."""
    tables = {name for name, v in vars(r).items()
              if name.isupper() and isinstance(v, dict) and v and all(isinstance(k, int) for k in v)}
    assert tables == DOCUMENTED, f"undocumented code tables: {sorted(tables - DOCUMENTED)}"
