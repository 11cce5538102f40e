"""Agreement between overlapping annotators: IoU matching, Cohen's and Fleiss' kappa."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.annotation.agreement import (
    agreement_report,
    box_agreement,
    cohen_kappa,
    fleiss_kappa,
    iou,
    tag_category,
)

pytestmark = pytest.mark.unit


def _box(x: float, y: float, w: float, h: float, cls: str = "car") -> dict[str, Any]:
    return {"type": "bbox", "class": cls, "bbox": [x, y, w, h], "attributes": {}}


def _tag(cls: str) -> dict[str, Any]:
    return {"type": "tag", "class": cls, "attributes": {}}


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([0, 0, 10, 10], [0, 0, 10, 10], 1.0),  # identical
        ([0, 0, 10, 10], [5, 0, 10, 10], 50 / 150),  # half shifted
        ([0, 0, 10, 10], [2, 2, 5, 5], 25 / 100),  # contained
        ([0, 0, 10, 10], [10, 0, 10, 10], 0.0),  # touching edges
        ([0, 0, 10, 10], [20, 20, 5, 5], 0.0),  # disjoint
        ([0, 0, 0, 0], [0, 0, 0, 0], 0.0),  # empty union: no division by zero
    ],
)
def test_iou(a: list[float], b: list[float], expected: float) -> None:
    assert iou(a, b) == pytest.approx(expected)
    assert iou(b, a) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("a", "b", "threshold", "expected"),
    [
        ([], [], 0.5, 1.0),  # nothing to find, and neither found anything
        ([_box(0, 0, 10, 10)], [], 0.5, 0.0),  # one missed box
        ([_box(0, 0, 10, 10)], [_box(0, 0, 10, 10)], 0.5, 1.0),
        ([_box(0, 0, 10, 10)], [_box(0, 0, 10, 10, "bus")], 0.5, 0.0),  # other class
        ([_box(0, 0, 10, 10)], [_box(5, 0, 10, 10)], 0.5, 0.0),  # IoU 1/3 below threshold
        ([_box(0, 0, 10, 10)], [_box(5, 0, 10, 10)], 0.3, 1 / 3),  # ... above a lower one
        # one-to-one: the second box of b finds no partner; divided by the larger count
        ([_box(0, 0, 10, 10)], [_box(0, 0, 10, 10), _box(0, 0, 10, 9)], 0.5, 0.5),
        ([_box(0, 0, 10, 10), _box(0, 0, 10, 9)], [_box(0, 0, 10, 10)], 0.5, 0.5),
        # greedy by IoU, not by order: A1 takes B2 (IoU 1) although B1 comes first
        ([_box(0, 0, 10, 10), _box(100, 0, 10, 10)],
         [_box(0, 0, 10, 8), _box(0, 0, 10, 10)], 0.5, 0.5),
        # polygons, keypoints and tags are not boxes
        ([_box(0, 0, 10, 10), _tag("night")], [_box(0, 0, 10, 10)], 0.5, 1.0),
    ],
)
def test_box_agreement(a: list[dict[str, Any]], b: list[dict[str, Any]], threshold: float,
                       expected: float) -> None:
    assert box_agreement(a, b, threshold) == pytest.approx(expected)


_boxes = st.lists(st.builds(_box, st.integers(0, 50), st.integers(0, 50), st.integers(1, 30),
                            st.integers(1, 30), st.sampled_from(["car", "bus"])), max_size=6)


@given(_boxes, _boxes)
def test_box_agreement_is_a_share(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> None:
    assert 0.0 <= box_agreement(a, b) <= 1.0
    assert box_agreement(a, a) == pytest.approx(1.0)


def test_cohen_kappa_textbook_example() -> None:
    # 50 items: yes/yes 20, yes/no 5, no/yes 10, no/no 15 -> p_o 0.7, p_e 0.5, kappa 0.4
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (["x", "y"], ["x", "y"], 1.0),
        (["x", "y"], ["y", "x"], -1.0),  # systematic disagreement
        ([], [], None),  # no items
        (["x", "x"], ["x", "x"], None),  # one category throughout: chance agreement is 1
    ],
)
def test_cohen_kappa_edges(a: list[str], b: list[str], expected: float | None) -> None:
    assert cohen_kappa(a, b) == (pytest.approx(expected) if expected is not None else None)


def test_cohen_kappa_needs_the_same_items() -> None:
    with pytest.raises(ValueError, match="same items"):
        cohen_kappa(["x"], ["x", "y"])


def _rows(counts: list[list[int]]) -> list[list[str]]:
    return [[f"c{j}" for j, n in enumerate(row) for _ in range(n)] for row in counts]


def test_fleiss_kappa_textbook_example() -> None:
    # Fleiss (1971) as worked on Wikipedia: 10 items, 14 raters, 5 categories -> 0.210
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0],
             [2, 2, 8, 1, 1], [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2],
             [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    assert fleiss_kappa(_rows(table)) == pytest.approx(0.20993, abs=5e-5)


@pytest.mark.parametrize(
    ("ratings", "expected"),
    [
        # two raters per item (Scott's pi): P = 3/4, P_e = (3/8)^2 + (5/8)^2 -> 7/15
        ([["a", "a"], ["a", "b"], ["b", "b"], ["b", "b"]], 7 / 15),
        # rows of different lengths: P = (1 + 0) / 2, P_e = (4/5)^2 + (1/5)^2
        ([["a", "a", "a"], ["a", "b"]], (0.5 - 0.68) / 0.32),
        ([["a", "b"], ["b", "a"]], -1.0),
        ([], None),  # no items
        ([["a", "a"], ["a", "a"]], None),  # one category throughout
    ],
)
def test_fleiss_kappa_by_hand(ratings: list[list[str]], expected: float | None) -> None:
    assert fleiss_kappa(ratings) == (pytest.approx(expected) if expected is not None else None)


def test_fleiss_kappa_needs_two_ratings_per_item() -> None:
    with pytest.raises(ValueError, match="two ratings"):
        fleiss_kappa([["a", "b"], ["a"]])


def test_tag_category_is_the_sorted_tag_set() -> None:
    assert tag_category([_tag("rain"), _box(0, 0, 1, 1), _tag("night"), _tag("rain")]) == \
        "night+rain"
    assert tag_category([_box(0, 0, 1, 1)]) == ""


def test_report_for_one_fixed_pair_uses_cohen() -> None:
    report = agreement_report({
        "i2": {"bob": [_box(5, 0, 10, 10), _tag("night")], "alice": [_box(0, 0, 10, 10)]},
        "i1": {"alice": [_box(0, 0, 10, 10), _tag("night")],
               "bob": [_tag("night"), _box(0, 0, 10, 10)]},
        "i3": {"carol": []},  # alone: no agreement to measure
    })
    assert report == {
        "threshold": 0.5,
        "items": {
            "i1": {"annotators": ["alice", "bob"], "box": 1.0, "tags": 1.0},
            "i2": {"annotators": ["alice", "bob"], "box": 0.0, "tags": 0.0},
            "i3": {"annotators": ["carol"], "box": None, "tags": None},
        },
        "annotators": {
            "alice": {"items": 2, "box": 0.5, "tags": 0.5},
            "bob": {"items": 2, "box": 0.5, "tags": 0.5},
            "carol": {"items": 0, "box": None, "tags": None},
        },
        # alice: night, ""; bob: night, night -> p_o 1/2, p_e 1/2 -> kappa 0
        "project": {"items": 2, "box": 0.5, "tags": 0.5, "kappa": 0.0, "kappa_method": "cohen"},
    }
    assert list(report["items"]) == ["i1", "i2", "i3"]  # type: ignore[call-overload]


def test_report_for_three_annotators_uses_fleiss() -> None:
    report = agreement_report({"j1": {
        "a": [_box(0, 0, 10, 10), _tag("night")],
        "b": [_box(0, 0, 10, 10), _tag("night")],
        "c": [],
    }})
    # pairs: (a, b) agree on both; (a, c) and (b, c) on nothing
    assert report["items"] == {"j1": {"annotators": ["a", "b", "c"], "box": pytest.approx(1 / 3),
                                      "tags": pytest.approx(1 / 3)}}
    assert report["annotators"] == {"a": {"items": 1, "box": 0.5, "tags": 0.5},
                                    "b": {"items": 1, "box": 0.5, "tags": 0.5},
                                    "c": {"items": 1, "box": 0.0, "tags": 0.0}}
    # one item, categories night, night, "": P = 1/3, P_e = 5/9 -> kappa -0.5
    project = report["project"]
    assert project == {"items": 1, "box": pytest.approx(1 / 3), "tags": pytest.approx(1 / 3),
                       "kappa": pytest.approx(-0.5), "kappa_method": "fleiss"}


def test_report_with_changing_pairs_uses_fleiss() -> None:
    # two raters per item but not the same two: Cohen's fixed-rater model does not apply
    report = agreement_report({
        "x": {"a": [_tag("night")], "b": [_tag("night")]},
        "y": {"b": [], "c": [_tag("night")]},
    })
    project: Any = report["project"]
    assert project["kappa_method"] == "fleiss"
    assert project["kappa"] == pytest.approx(fleiss_kappa([["night", "night"], ["", "night"]]))
    assert report["annotators"]["b"] == {"items": 2, "box": 1.0, "tags": 0.5}  # type: ignore[index]


def test_report_without_overlap_has_no_kappa() -> None:
    report = agreement_report({"x": {"a": []}, "y": {"b": []}})
    assert report["project"] == {"items": 0, "box": None, "tags": None, "kappa": None,
                                 "kappa_method": None}
    assert agreement_report({})["project"] == report["project"]


def test_report_threshold_is_passed_down() -> None:
    submissions = {"i": {"a": [_box(0, 0, 10, 10)], "b": [_box(5, 0, 10, 10)]}}
    assert agreement_report(submissions)["items"]["i"]["box"] == 0.0  # type: ignore[index]
    lenient = agreement_report(submissions, threshold=0.3)
    assert lenient["items"]["i"]["box"] == pytest.approx(1 / 3)  # type: ignore[index]
    assert lenient["threshold"] == 0.3
