from pathlib import Path

import pytest

from yolo_spine.errors import UserError
from yolo_spine.registry import (
    CLASS_ID_SCHEME,
    available_registries,
    detect_label_scheme,
    load_registry,
    normalize_name,
)


def test_shipped_registries():
    assert available_registries() == ["brain", "spine", "teeth"]


def test_spine_order_is_anatomical_not_alphabetical():
    reg = load_registry("spine")
    expected = [f"C{i}" for i in range(1, 8)] + [f"T{i}" for i in range(1, 13)] + [f"L{i}" for i in range(1, 6)]
    assert list(reg.names) == [*expected, "S1", "sacrum"]
    assert list(reg.names) != sorted(reg.names)
    assert reg.index("T2") == reg.index("T1") + 1
    assert reg.order.axis == "y" and reg.order.sequences[0] == reg.names


@pytest.mark.parametrize("alias", ["c6", "C-6", "C06", "cervical_6", "Cervical 6", "vertebrae_C6", "VERTEBRA_C6"])
def test_spine_aliases(alias):
    assert load_registry("spine").resolve(alias) == "C6"


def test_thoracic_dorsal_aliases_and_unknown():
    reg = load_registry("spine")
    assert reg.resolve("D12") == "T12"
    assert reg.resolve("Th1") == "T1"
    assert reg.resolve("cervical-8") is None
    assert "C7" in reg.suggest("cervical_7x")


def test_totalsegmentator_ids():
    reg = load_registry("spine")
    ts2 = reg.source_id_map("totalsegmentator_v2")
    assert ts2[50] == "C1" and ts2[46] == "C5" and ts2[29] == "L3" and ts2[26] == "S1" and ts2[25] == "sacrum"
    ts1 = reg.source_id_map("totalsegmentator_v1")
    assert ts1[41] == "C1" and ts1[18] == "L5" and ts1[92] == "sacrum"
    assert reg.source_id_map("verse")[20] == "L1"
    with pytest.raises(UserError, match="no label-id scheme"):
        reg.source_id_map("nope")


def test_teeth_fdi_and_mirror():
    reg = load_registry("teeth")
    assert reg.names[:8] == tuple(str(i) for i in range(11, 19))
    assert reg.nc == 32 + 13
    assert reg.mirror["11"] == "21" and reg.mirror["36"] == "46" and reg.mirror["46"] == "36"
    m = reg.mirror_index_map()
    assert reg.names[m[reg.index("13")]] == "23"
    assert reg.names[m[reg.index("pharynx")]] == "pharynx"
    assert reg.names[m[reg.index("left_maxillary_sinus")]] == "right_maxillary_sinus"
    assert reg.source_id_map("toothfairy2")[36] == "36"
    assert reg.source_id_map("totalsegmentator_teeth")[11] == "11"
    assert reg.resolve("upper_right_canine_fdi13") == "13"
    # m is an involution: flipping twice gives the identity
    assert [m[m[i]] for i in range(reg.nc)] == list(range(reg.nc))


def test_brain_regions():
    reg = load_registry("brain")
    assert reg.nc == 20
    ids = reg.source_id_map("aspects")
    assert ids[1] == "C_left" and ids[10] == "M6_left" and ids[11] == "C_right" and ids[20] == "M6_right"
    assert all(reg.mirror[n].replace("_right", "_left") == n.replace("_right", "_left") for n in reg.names)
    assert reg.order is None


def test_unknown_registry_and_bad_yaml(tmp_path: Path):
    with pytest.raises(UserError, match="did you mean 'spine'"):
        load_registry("spien")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nclasses:\n  - name: A\n    aliases: [a1]\n  - name: B\n    aliases: [A1]\n")
    with pytest.raises(UserError, match="names both"):
        load_registry(bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text("name: x\nclases: []\n")
    with pytest.raises(UserError, match="did you mean 'classes'"):
        load_registry(typo)


def test_normalize_name():
    assert normalize_name("L-05") == "l5"
    assert normalize_name(" Tooth 11 ") == "tooth11"


def test_label_scheme_detection():
    """The rule ct2yolo and eval3d share: one reading of the ids, or no answer."""
    spine = load_registry("spine")
    assert spine.schemes == (CLASS_ID_SCHEME, "totalsegmentator_v2", "totalsegmentator_v1", "verse")
    assert spine.label_id_map(CLASS_ID_SCHEME)[1] == "C1" and spine.label_id_map(CLASS_ID_SCHEME)[26] == "sacrum"
    # TotalSegmentator v2 with organs past v1's 104 and VerSe's 28 and the class count (26): v2 only
    assert detect_label_scheme(spine, [0, 5, 29, 30, 51, 118]).scheme == "totalsegmentator_v2"
    # the same vertebrae without ids above 104: v1 reads 29, 30 as T6, T5, so no answer
    found = detect_label_scheme(spine, [0, 5, 29, 30, 51])
    assert found.scheme is None and found.candidates == ("totalsegmentator_v2", "totalsegmentator_v1")
    # class id + 1 of C1–C3: VerSe reads them alike (one reading), v1 and v2 read nothing
    assert detect_label_scheme(spine, [1, 2, 3]) == detect_label_scheme(spine, [0, 1, 2, 3])
    assert detect_label_scheme(spine, [1, 2, 3]).scheme == CLASS_ID_SCHEME
    assert detect_label_scheme(spine, [200]).candidates == ()  # nothing of the spine in any scheme
    assert detect_label_scheme(spine, []).scheme == CLASS_ID_SCHEME  # an empty map reads alike in every scheme
    brain = load_registry("brain")  # ASPECTS 1–20 is class id + 1
    assert detect_label_scheme(brain, range(21)).scheme == CLASS_ID_SCHEME
    assert detect_label_scheme(brain, [3, 21]).candidates == ()  # 21 is past both


def test_source_id_max_is_checked(tmp_path: Path):
    assert load_registry("spine").source_id_max == {"totalsegmentator_v1": 104, "verse": 28}
    base = "name: x\nclasses: [{name: a}, {name: b}]\nsource_ids: {s: {7: a, 9: b}}\n"
    for n, (extra, msg) in enumerate(
        (
            ("source_id_max: {s: 8}\n", "source_id_max.s must be a whole number >= the scheme's largest id"),
            ("source_id_max: {t: 10}\n", "source_id_max names unknown scheme 't'"),
        )
    ):
        path = tmp_path / f"bad{n}.yaml"
        path.write_text(base + extra)
        with pytest.raises(UserError, match=msg):
            load_registry(str(path))
    (tmp_path / "ok.yaml").write_text(base + "source_id_max: {s: 9}\n")
    reg = load_registry(str(tmp_path / "ok.yaml"))
    assert detect_label_scheme(reg, [7, 10]).candidates == ()  # 10 is past s's 9 and past the class count (2)
    assert detect_label_scheme(reg, [7, 9]).scheme == "s"
    (tmp_path / "clash.yaml").write_text("name: y\nclasses: [{name: a}]\nsource_ids: {class_id+1: {1: a}}\n")
    with pytest.raises(UserError, match="built-in class id"):
        load_registry(str(tmp_path / "clash.yaml"))


def _dicom_sct_concepts() -> dict[str, set[str]]:
    """SNOMED CT code → every meaning DICOM PS3.16 gives it (pydicom's copy of the standard's concepts)."""
    from pydicom.sr._concepts_dict import concepts

    out: dict[str, set[str]] = {}
    for table in concepts["SCT"].values():
        for code, (meaning, _cids) in table.items():
            out.setdefault(code, set()).add(meaning)
    return out


@pytest.mark.parametrize("anatomy", ["spine", "teeth", "brain"])
def test_coded_anatomy_codes_are_dicoms(anatomy: str) -> None:
    """Every SNOMED CT code in the registries is one PS3.16 defines, with the meaning PS3.16 gives it."""
    from yolo_spine.registry import SCT_ANATOMICAL_STRUCTURE, SCT_BODY_STRUCTURE, SCT_LATERALITY, SCT_PHYSICAL_OBJECT

    dicom = _dicom_sct_concepts()
    reg = load_registry(anatomy)
    for code, meaning in (SCT_ANATOMICAL_STRUCTURE, SCT_PHYSICAL_OBJECT, *SCT_LATERALITY.values()):
        assert meaning in dicom[code], (code, meaning)
    assert SCT_BODY_STRUCTURE[0] in dicom
    for name in reg.names:
        coded = reg.coded(name)
        assert coded.code in dicom, (name, coded)
        if not coded.fallback:  # 32's PS3.16 meaning reads "Mandibular left lateral tooth"; ours names the incisor
            assert coded.meaning in dicom[coded.code] or name == "32", (name, coded, dicom[coded.code])


def test_coded_anatomy_per_registry() -> None:
    spine, teeth, brain = (load_registry(n) for n in ("spine", "teeth", "brain"))
    assert (spine.coded("C1").code, spine.coded("C1").meaning) == ("14806007", "C1 vertebra")
    assert (spine.coded("L5").code, spine.coded("sacrum").code) == ("49668003", "54735007")
    assert sum(not spine.coded(n).fallback for n in spine.names) == 25  # C1–L5 and the sacrum
    s1 = spine.coded("S1")
    assert s1.fallback and (s1.code, s1.meaning) == ("123037004", "Body structure")
    assert s1.category == ("91723000", "Anatomical Structure") and s1.laterality is None
    # every tooth has its own code, all different; restorations are objects, not anatomy
    tooth_codes = {teeth.coded(n).code for n in teeth.names if n.isdigit()}
    assert len(tooth_codes) == 32 and not any(teeth.coded(n).fallback for n in teeth.names if n.isdigit())
    assert teeth.coded("36").meaning == "Mandibular left first molar tooth"
    assert teeth.coded("crown").category == ("260787004", "Physical object") and teeth.coded("crown").fallback
    sinus = teeth.coded("left_maxillary_sinus")
    assert (sinus.code, sinus.laterality, sinus.laterality_code) == ("15924003", "left", ("7771000", "Left"))
    # ASPECTS regions: the fallback code with their side
    assert all(brain.coded(n).fallback for n in brain.names)
    assert brain.coded("M3_right").laterality_code == ("24028007", "Right")
    assert {brain.coded(n).laterality for n in brain.names} == {"left", "right"}
    with pytest.raises(KeyError):
        spine.coded("vertebrae_C6")  # canonical names only (resolve() maps aliases)


def test_coded_anatomy_is_validated(tmp_path: Path) -> None:
    cases = {
        "name: x\nclasses: [{name: a, snomed: {code: 123}}]\n": "snomed needs",
        "name: x\nclasses: [{name: a, snomed: {code: abc, meaning: A}}]\n": "snomed needs",
        "name: x\nclasses: [{name: a, laterality: up}]\n": "laterality must be one of left, right",
        "name: x\nclasses: [{name: a, category: thing}]\n": "category must be one of",
        "name: x\nclasses: [{name: a, snomd: {code: '1', meaning: A}}]\n": "unknown key 'snomd'",
    }
    for n, (text, message) in enumerate(cases.items()):
        path = tmp_path / f"bad{n}.yaml"
        path.write_text(text)
        with pytest.raises(UserError, match=message):
            load_registry(str(path))
    ok = tmp_path / "ok.yaml"
    ok.write_text("name: y\nclasses: [{name: b, snomed: {code: '1626008', meaning: T3 vertebra}, laterality: right}]\n")
    coded = load_registry(str(ok)).coded("b")
    assert (coded.code, coded.meaning, coded.laterality, coded.fallback) == ("1626008", "T3 vertebra", "right", False)
