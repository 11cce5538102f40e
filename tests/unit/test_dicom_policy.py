"""PS3.15 Table E.1-1 as data: compound actions, options, safe private tags, and the
policy loader's ``dicom`` section (every error names its field path)."""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

import pytest
import yaml
from pydicom.datadict import dictionary_VR, tag_for_keyword

from policies import PolicyError, load_policy, parse_policy
from policies.dicom import (
    ACTIONS,
    BASIC_PROFILE_CODE,
    EXCLUSIVE,
    OPTIONS,
    PIXEL_OPTIONS,
    PROFILE,
    compile_profile,
    resolve,
    safe_private_tags,
    sequence_tags,
    table_rows,
)

pytestmark = pytest.mark.unit

MODIFIED = "retain_longitudinal_modified_dates"
FULL = "retain_longitudinal_full_dates"


def tag(keyword: str) -> int:
    value = tag_for_keyword(keyword)
    assert value is not None, keyword
    return value


def action(keyword: str, *options: str) -> str:
    return compile_profile(frozenset(options)).actions[tag(keyword)]


# --------------------------------------------------------------------------- resolve
@pytest.mark.parametrize(("compound", "is_sequence", "expected"), [
    ("X", False, "X"), ("X", True, "X"), ("K", True, "K"), ("C", False, "C"),
    ("D*", False, "D"),  # a footnote star is not part of the action
    # a plain attribute: D keeps a Type 1 present and still drops the value
    ("X/Z/D", False, "D"), ("X/D", False, "D"), ("Z/D", False, "D"),
    ("X/Z", False, "Z"),
    # a sequence: Z (an empty sequence is valid for Type 2), else X; never D
    ("X/Z/D", True, "Z"), ("Z/D", True, "Z"), ("X/Z", True, "Z"), ("X/D", True, "X"),
    # U wins where offered: references keep working
    ("X/Z/U*", True, "U"), ("X/Z/U*", False, "U"), ("X/Z/U", True, "U"),
])
def test_resolve(compound: str, is_sequence: bool, expected: str) -> None:
    assert resolve(compound, is_sequence) == expected


def test_the_bundled_table_compiles_to_simple_actions() -> None:
    rows = table_rows()
    exact = [r for r in rows if r["tag"].startswith("(") and "X" not in r["tag"][1:5]
             and "G" not in r["tag"]]
    assert len(rows) == 621 and len(exact) == 617
    assert any("/" in r["basicProfile"] for r in rows)  # compound actions are in the table
    for options in (frozenset(), frozenset(OPTIONS) - {FULL} - PIXEL_OPTIONS):
        profile = compile_profile(options)
        assert profile.revision == PROFILE
        assert len(profile.actions) == len(exact)
        assert set(profile.actions.values()) <= ACTIONS
        assert {profile.curves, profile.overlay_data, profile.overlay_comments,
                profile.private} <= ACTIONS


@pytest.mark.parametrize(("keyword", "expected"), [
    ("ReferencedImageSequence", "U"),  # X/Z/U*, sequence
    ("SourceImageSequence", "U"),
    ("ReferencedStudySequence", "Z"),  # X/Z, sequence
    ("InstitutionCodeSequence", "Z"),  # X/Z/D, sequence
    ("OperatorIdentificationSequence", "X"),  # X/D, sequence
    ("InstitutionName", "D"),  # X/Z/D
    ("DeviceSerialNumber", "D"),
    ("AcquisitionDate", "Z"),  # X/Z
    ("ContentDate", "D"),  # Z/D
    ("PatientSex", "Z"),
    ("PatientAge", "X"),
    ("SOPInstanceUID", "U"),
    ("StudyDate", "Z"),
    ("ContentSequence", "D"),
])
def test_basic_profile_actions(keyword: str, expected: str) -> None:
    assert action(keyword) == expected


def test_sequences_are_known_from_the_dictionary() -> None:
    seqs = sequence_tags()
    assert tag("ReferencedImageSequence") in seqs and tag("ContentSequence") in seqs
    assert all(dictionary_VR(t) == "SQ" for t in seqs)
    assert tag("InstitutionName") not in seqs


def test_options_override_the_basic_profile() -> None:
    assert action("StudyDate", MODIFIED) == "C"
    assert action("StudyDate", FULL) == "K"
    assert action("SOPInstanceUID", "retain_uids") == "K"
    assert action("DeviceSerialNumber", "retain_device_identity") == "K"
    assert action("PatientSex", "retain_patient_characteristics") == "K"
    assert action("PatientAge", "retain_patient_characteristics") == "K"
    assert action("InstitutionName", "retain_institution_identity") == "K"
    assert action("StudyDescription", "clean_descriptors") == "C"
    assert action("ContentSequence", "clean_structured_content") == "C"
    assert action("GraphicAnnotationSequence", "clean_graphics") == "C"
    assert compile_profile(frozenset({"clean_graphics"})).curves == "C"
    assert compile_profile(frozenset({"retain_safe_private"})).private == "C"
    # an option without a value in a row leaves the basic profile's action
    assert action("PatientName", "retain_uids") == action("PatientName") == "Z"
    assert action("PatientBirthDate", MODIFIED) == "Z"


def test_clean_beats_keep_whatever_the_order() -> None:
    """Calibration dates: K for Retain Device Identity, C for modified dates."""
    assert action("DateOfLastCalibration") == "X"
    assert action("DateOfLastCalibration", "retain_device_identity") == "K"
    assert action("DateOfLastCalibration", MODIFIED) == "C"
    assert action("DateOfLastCalibration", "retain_device_identity", MODIFIED) == "C"
    assert action("DateOfLastCalibration", MODIFIED, "retain_device_identity") == "C"


def test_date_time_pairs_are_the_cleaned_date_and_time_of_one_instant() -> None:
    profile = compile_profile(frozenset({MODIFIED}))
    pairs = getattr(profile, "date_time_pairs", None)
    if pairs is None:
        pytest.skip("this Profile has no date_time_pairs")
    assert (tag("StudyDate"), tag("StudyTime")) in pairs
    assert (tag("ContentDate"), tag("ContentTime")) in pairs
    for date_tag, time_tag in pairs:
        assert dictionary_VR(date_tag) == "DA" and dictionary_VR(time_tag) == "TM"
        assert profile.actions[date_tag] == profile.actions[time_tag] == "C"
    assert compile_profile(frozenset()).date_time_pairs == ()  # nothing shifted: no pairs


def test_option_codes_are_cid_7050() -> None:
    codes = [code for _, code, _ in OPTIONS.values()]
    assert sorted(codes) == [str(c) for c in range(113101, 113113)]
    assert BASIC_PROFILE_CODE[0] == "113100"
    assert set(EXCLUSIVE) == {FULL, MODIFIED}
    assert {name for name, (col, _, _) in OPTIONS.items() if col is None} == PIXEL_OPTIONS
    columns = {key for row in table_rows() for key in row}
    assert {col for col, _, _ in OPTIONS.values() if col} <= columns


# --------------------------------------------------------------------------- safe private
def test_safe_private_tags_come_from_tcia_keep_rows() -> None:
    safe = safe_private_tags()
    assert len(safe) > 1000
    assert (0x0019, "GEMS_ACQU_01", 0x03) in safe  # Cell Number At Theta: k
    assert (0x0019, "GEMS_ACQU_01", 0x0C) not in safe  # d
    assert (0x0019, "GEMS_ACQU_01", 0x10) not in safe  # d
    assert (0x2001, "PHILIPS IMAGING DD 001", 0xC1) in safe  # creators are upper-cased


def test_every_safe_key_is_a_private_group_with_a_plain_creator() -> None:
    malformed = [k for k in safe_private_tags() if not k[0] & 1 or "(" in k[1]]
    assert malformed == []


def test_a_nested_keep_row_does_not_make_a_top_level_delete_row_safe() -> None:
    text = resources.files("policies").joinpath("ps3_15/tcia_private_tags.csv").read_text(
        "utf-8-sig")
    assert '"(0029,SIEMENS MEDCOM HEADER"",31)",PMTF Information 1,LO,d' in text
    assert (0x0029, "SIEMENS MEDCOM HEADER", 0x31) not in safe_private_tags()


# --------------------------------------------------------------------------- the loader
def _default() -> dict[str, Any]:
    return yaml.safe_load(resources.files("policies").joinpath("default.yaml").read_text())


def _with(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(_default())
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return data


def test_default_dicom_section() -> None:
    dicom = load_policy().dicom
    assert dicom.profile == PROFILE
    assert MODIFIED in dicom.options and FULL not in dicom.options
    assert dicom.options >= PIXEL_OPTIONS
    assert dicom.date_shift_days == (-3650, -365)
    assert "US" in dicom.burned_in_text.modalities
    assert dicom.burned_in_text.mask == "all"
    assert "XC" in dicom.photographic


def test_a_policy_without_a_dicom_section_gets_the_default_one() -> None:
    data = _default()
    del data["dicom"]
    assert parse_policy(data).dicom == load_policy().dicom


def test_a_valid_custom_dicom_section() -> None:
    data = _default()
    data["dicom"].update(options=["retain_uids", "retain_safe_private", FULL],
                         date_shift_days=[1, 30], photographic=[" xc "])
    dicom = parse_policy(data).dicom
    assert dicom.options == frozenset({"retain_uids", "retain_safe_private", FULL})
    assert dicom.date_shift_days == (1, 30)
    assert dicom.photographic == ("XC",)
    assert parse_policy(data).sha256 != load_policy().sha256


@pytest.mark.parametrize(("path", "value", "message"), [
    (("dicom", "options"), [MODIFIED, "retain_everything"],
     "dicom.options[1]: 'retain_everything' is not a PS3.15 option"),
    (("dicom", "options"), [FULL, MODIFIED],
     f"dicom.options: '{FULL}' and '{MODIFIED}' exclude each other"),
    (("dicom", "options"), "retain_uids", "dicom.options: must be a list of option names"),
    (("dicom", "options"), [1], "dicom.options: must be a list of option names"),
    (("dicom", "date_shift_days"), [-10, 10], "dicom.date_shift_days: must be [low, high]"),
    (("dicom", "date_shift_days"), [0, 0], "dicom.date_shift_days: must be"),
    (("dicom", "date_shift_days"), [-5, 0], "dicom.date_shift_days: must be"),
    (("dicom", "date_shift_days"), [-1, -30], "dicom.date_shift_days: must be"),
    (("dicom", "date_shift_days"), [-30], "dicom.date_shift_days: must be"),
    (("dicom", "date_shift_days"), [-30.0, -1], "dicom.date_shift_days: must be"),
    (("dicom", "date_shift_days"), [True, 3], "dicom.date_shift_days: must be"),
    (("dicom", "profile"), "ps3.15-2023a",
     f"dicom.profile: 'ps3.15-2023a' is not the bundled '{PROFILE}'"),
    (("dicom", "profile"), "", "dicom.profile: must be a non-empty string"),
    (("dicom", "flavour"), "x", "dicom.flavour: unknown key"),
    (("dicom",), [], "dicom: must be a mapping"),
    (("dicom", "burned_in_text", "mask"), "blur",
     "dicom.burned_in_text.mask: 'blur' is not one of"),
    (("dicom", "burned_in_text", "min_confidence"), 101,
     "dicom.burned_in_text.min_confidence: must be <= 100"),
    (("dicom", "burned_in_text", "padding"), -1, "dicom.burned_in_text.padding: must be >= 0"),
    (("dicom", "burned_in_text", "modalities"), ["US", " "],
     "dicom.burned_in_text.modalities: must be a list of non-empty strings"),
    (("dicom", "photographic"), "XC", "dicom.photographic: must be a list"),
])
def test_bad_dicom_sections_are_refused_with_the_field_path(
        path: tuple[Any, ...], value: Any, message: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy(_with(path, value))
    assert str(info.value).startswith(message), str(info.value)


@pytest.mark.parametrize("key", ["profile", "options", "burned_in_text"])
def test_required_dicom_keys(key: str) -> None:
    data = _default()
    del data["dicom"][key]
    with pytest.raises(PolicyError, match=rf"^dicom\.{key}: required"):
        parse_policy(data)


def test_every_option_name_is_accepted_alone() -> None:
    for option in OPTIONS:
        data = _with(("dicom", "options"), [option])
        assert parse_policy(data).dicom.options == frozenset({option})


def test_loader_error_lists_the_allowed_options() -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy(_with(("dicom", "options"), ["nope"]))
    assert all(name in str(info.value) for name in OPTIONS)
    json.dumps(str(info.value))  # a plain message, no objects
