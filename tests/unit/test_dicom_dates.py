"""Dates and times: one keyed shift per patient, every interval kept (Retain Longitudinal
Temporal Information with Modified Dates), and what the other date options do."""

from __future__ import annotations

import dataclasses
import io
from datetime import datetime, timedelta
from typing import Any

import pydicom
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from gateway.anonymize.dicom import Pseudonymizer, anonymize_dicom
from gateway.anonymize.dicom.dates import shift_date, shift_datetime, shift_pair, shift_time
from policies import Policy, load_policy
from policies.dicom import PIXEL_OPTIONS

pytestmark = pytest.mark.unit

SECRET = b"unit-test-dicom-dates-secret-0001"
MODIFIED = "retain_longitudinal_modified_dates"
FULL = "retain_longitudinal_full_dates"
ROOT = "1.2.826.0.1.3680043.10.544."


def policy(options: set[str] | None = None, shift_days: tuple[int, int] | None = None) -> Policy:
    base = load_policy()
    dicom = dataclasses.replace(
        base.dicom,
        options=frozenset(base.dicom.options - PIXEL_OPTIONS if options is None else options),
        date_shift_days=shift_days or base.dicom.date_shift_days)
    return dataclasses.replace(base, dicom=dicom)


def shifter(p: Policy, secret: bytes = SECRET) -> Pseudonymizer:
    return Pseudonymizer(secret, p.dicom.date_shift_days)


def dataset(patient_id: str = "PAT-0001", n: int = 1, study_date: str = "20200101",
            study_time: str = "235959") -> Dataset:
    """StudyDate/Time crossing midnight whatever the shift (any shift adds >= 1 second)."""
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    ds.SOPInstanceUID = f"{ROOT}{n}.1"
    ds.StudyDate = study_date
    ds.SeriesDate = "20200102"  # no SeriesTime: a lone date
    ds.ContentDate = "20200103"
    ds.AcquisitionDateTime = "20200102083000.123+0100"
    ds.StudyTime = study_time
    ds.ContentTime = "081530.25"
    ds.TimezoneOffsetFromUTC = "+0100"
    ds.Modality = "MR"
    ds.PatientName = "Quist^Ottilie"
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19610203"
    ds.StudyInstanceUID = f"{ROOT}{n}.2"
    ds.SeriesInstanceUID = f"{ROOT}{n}.3"
    ds.ContentSequence = Sequence([_item(
        DateTime="20200101230000",
        ContentSequence=Sequence([_item(
            DateTime="20200104000001-0500",
            ContentSequence=Sequence([_item(DateTime="2020010112")]))]))])
    return ds


def _item(**attrs: Any) -> Dataset:
    ds = Dataset()
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    return ds


def encode(ds: Dataset) -> bytes:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def run(ds: Dataset, p: Policy | None = None, secret: bytes = SECRET) -> Dataset:
    p = p or policy()
    result = anonymize_dicom(encode(ds), p, shifter(p, secret))
    return pydicom.dcmread(io.BytesIO(result.data))


def instant(day: str, time: str = "000000") -> datetime:
    return datetime.strptime(day + time.split(".")[0].ljust(6, "0"), "%Y%m%d%H%M%S")


def dt(value: str) -> datetime:
    """A DT without fraction or offset, padded to seconds."""
    core = value.split(".")[0].split("+")[0]
    core = core[:4] + core[4:].split("-")[0] if len(core) > 4 else core
    return datetime.strptime(core.ljust(14, "0") if len(core) > 4 else core + "0101000000",
                             "%Y%m%d%H%M%S")


# --------------------------------------------------------------------------- the engine
def test_paired_dates_move_as_one_instant_across_midnight() -> None:
    p = policy()
    shift = shifter(p).date_shift("PAT-0001")
    out = run(dataset(), p)
    moved = instant(out.StudyDate, out.StudyTime) - instant("20200101", "235959")
    assert moved == shift  # exact to the second
    assert out.StudyDate == (instant("20200101", "235959") + shift).strftime("%Y%m%d")
    # the time wrapped past midnight, so the date moved one day more than the whole days
    assert (instant(out.StudyDate) - instant("20200101")).days == shift.days + 1
    assert instant(out.ContentDate, out.ContentTime) - instant("20200103", "081530") == shift
    assert out.ContentTime.endswith(".25")  # precision kept


def test_intervals_survive_within_and_across_files() -> None:
    p = policy()
    a = run(dataset(n=1), p)
    b = run(dataset(n=2, study_date="20200215", study_time="101010"), p)
    before = instant("20200215", "101010") - instant("20200101", "235959")
    assert instant(b.StudyDate, b.StudyTime) - instant(a.StudyDate, a.StudyTime) == before
    assert (instant(a.ContentDate, a.ContentTime) - instant(a.StudyDate, a.StudyTime)
            == instant("20200103", "081530") - instant("20200101", "235959"))
    assert a.SeriesDate == b.SeriesDate  # same patient, same lone date, same output


def test_lone_dates_move_by_whole_days_within_the_policy_range() -> None:
    p = policy(shift_days=(-30, -10))
    shifts = []
    for i in range(25):
        patient = f"PAT-{i:04d}"
        out = run(dataset(patient_id=patient, n=i), p)
        days = (instant(out.SeriesDate) - instant("20200102")).days
        assert -30 <= days <= -10
        assert days == shifter(p).date_shift(patient).days
        shifts.append(shifter(p).date_shift(patient))
    assert len(set(shifts)) >= 20  # different patients, (generally) different shifts


def test_datetimes_keep_offset_and_fraction_and_move_by_the_whole_shift() -> None:
    p = policy()
    shift = shifter(p).date_shift("PAT-0001")
    out = run(dataset(), p)
    value = out.AcquisitionDateTime
    assert value.endswith(".123+0100") and value != "20200102083000.123+0100"
    assert dt(value) - dt("20200102083000") == shift
    level1 = out.ContentSequence[0]
    level2 = level1.ContentSequence[0]
    level3 = level2.ContentSequence[0]
    assert dt(level1.DateTime) - dt("20200101230000") == shift
    assert level2.DateTime.endswith("-0500")
    assert dt(level2.DateTime[:-5]) - dt("20200104000001") == shift
    assert dt(level3.DateTime) - datetime(2020, 1, 1, 12) == shift


def test_modified_dates_are_marked() -> None:
    out = run(dataset())
    assert out.LongitudinalTemporalInformationModified == "MODIFIED"
    codes = [i.CodeValue for i in out.DeidentificationMethodCodeSequence]
    assert "113100" in codes and "113107" in codes and "113106" not in codes
    assert out.TimezoneOffsetFromUTC == "+0000"
    assert out.PatientBirthDate == ""  # Z whatever the date option


def test_another_secret_gives_another_shift() -> None:
    a = run(dataset())
    b = run(dataset(), secret=b"another-secret-for-the-dates-0002")
    assert (a.StudyDate, a.StudyTime) != (b.StudyDate, b.StudyTime)


def test_without_a_date_option_dates_are_removed() -> None:
    out = run(dataset(), policy(options=set()))
    assert out.LongitudinalTemporalInformationModified == "REMOVED"
    assert out.StudyDate == "" and out.StudyTime == ""  # Z
    assert out.ContentDate == "19000101"  # Z/D -> D: a dummy
    assert out.AcquisitionDateTime == "19000101000000"
    assert "TimezoneOffsetFromUTC" not in out  # X
    assert [i.CodeValue for i in out.DeidentificationMethodCodeSequence] == ["113100"]
    originals = {"20200101", "20200102", "20200103", "235959", "081530.25"}
    for elem in out.iterall():
        if elem.VR in ("DA", "TM", "DT"):
            assert str(elem.value) not in originals, elem


def test_full_dates_are_kept_unmodified() -> None:
    out = run(dataset(), policy(options={FULL}))
    assert out.LongitudinalTemporalInformationModified == "UNMODIFIED"
    assert (out.StudyDate, out.StudyTime) == ("20200101", "235959")
    assert out.AcquisitionDateTime == "20200102083000.123+0100"
    assert "113106" in [i.CodeValue for i in out.DeidentificationMethodCodeSequence]
    assert out.PatientBirthDate == ""


def test_an_unparseable_date_is_replaced_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pydicom.config.settings, "writing_validation_mode",
                        pydicom.config.IGNORE)
    ds = dataset()
    ds.ContentDate = "20201345"
    ds.SeriesDate = "yesterday"
    out = run(ds)
    assert out.ContentDate == "19000101" and out.SeriesDate == "19000101"
    # the partner time still moves by the shift's seconds
    shift = shifter(policy()).date_shift("PAT-0001")
    moved = (instant("19000101", out.ContentTime) - instant("19000101", "081530")).seconds
    assert moved == shift.seconds


# --------------------------------------------------------------------------- dates.py
SHIFT = timedelta(days=-400, seconds=3600)


@pytest.mark.parametrize(("value", "expected"), [
    ("20200101", "20181127"),
    ("20200301", "20190126"),  # across a leap day
    ("2020.03.01", "20190126"),  # ACR-NEMA style
    ("20200101-20200105", "20181127-20181201"),  # a range: both ends
    ("-20200105", "-20181201"),
    ("20200101-", "20181127-"),
    ("", None), ("2020", None), ("20201345", None), ("2020-01-01", None),
])
def test_shift_date(value: str, expected: str | None) -> None:
    assert shift_date(value, SHIFT) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("120000", "130000"),
    ("233000", "003000"),  # a lone time wraps
    ("1200", "130000"),  # never fewer digits than needed to show the change
    ("12", "130000"),
    ("120000.123456", "130000.123456"),
    ("12:00:00", "130000"),  # ACR-NEMA style
    ("235960", "005959"),  # leap second read as :59
    ("240000", None), ("126000", None), ("noon", None), ("", None),
])
def test_shift_time(value: str, expected: str | None) -> None:
    assert shift_time(value, SHIFT) == expected


def test_shift_pair_crosses_midnight() -> None:
    assert shift_pair("20200101", "233000", SHIFT) == ("20181128", "003000")
    assert shift_pair("20200101", "233000.5", SHIFT) == ("20181128", "003000.5")
    assert shift_pair("20200101", "bad", SHIFT) is None
    assert shift_pair("2020010", "120000", SHIFT) is None


def test_shift_pair_accepts_what_shift_date_accepts() -> None:
    assert shift_pair("2020.01.01", "233000", SHIFT) == ("20181128", "003000")


@pytest.mark.parametrize(("value", "expected"), [
    ("20200101120000", "20181127130000"),
    ("20200101233000.25+0100", "20181128003000.25+0100"),
    ("20200101233000-0500", "20181128003000-0500"),
    ("2020", "20181127010000"),
    ("202001011200", "20181127130000"),
    ("20201301", None), ("garbage", None),
])
def test_shift_datetime(value: str, expected: str | None) -> None:
    assert shift_datetime(value, SHIFT) == expected


def test_an_extreme_date_cannot_overflow() -> None:
    assert shift_date("00010101", SHIFT) is None


@settings(max_examples=200, deadline=None)
@given(
    moment=st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2099, 12, 31)),
    days=st.integers(-3650, 3650).filter(lambda d: d != 0),
    seconds=st.integers(1, 86399),
)
def test_pairs_and_datetimes_move_by_exactly_the_shift(moment: datetime, days: int,
                                                       seconds: int) -> None:
    shift = timedelta(days=days, seconds=seconds)
    moment = moment.replace(microsecond=0)
    day, time = moment.strftime("%Y%m%d"), moment.strftime("%H%M%S")
    pair = shift_pair(day, time, shift)
    assert pair is not None
    assert instant(*pair) - moment == shift
    moved_dt = shift_datetime(moment.strftime("%Y%m%d%H%M%S") + "+0200", shift)
    assert moved_dt is not None and moved_dt.endswith("+0200")
    assert dt(moved_dt[:-5]) - moment == shift
    lone = shift_date(day, shift)
    assert lone is not None and (instant(lone) - instant(day)).days == shift.days


@settings(max_examples=100, deadline=None)
@given(patient=st.text(min_size=1, max_size=40).filter(lambda s: s.strip()),
       low=st.integers(-5000, 5000), width=st.integers(0, 400))
def test_keyed_shift_stays_in_range_and_never_zero(patient: str, low: int, width: int) -> None:
    high = low + width
    if low <= 0 <= high:
        return
    p = Pseudonymizer(SECRET, (low, high))
    shift = p.date_shift(patient)
    assert low <= shift.days <= high
    assert 1 <= shift.seconds <= 86399
    assert Pseudonymizer(SECRET, (low, high)).date_shift(patient) == shift  # deterministic
