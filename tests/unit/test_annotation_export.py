"""COCO and YOLO exports of accepted annotations, checked number by number."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.annotation.export import ExportImage, to_coco, to_yolo
from gateway.annotation.schema import LabelSchema, parse_label_schema, validate_submission

pytestmark = pytest.mark.unit


def _labels(en: str, de: str) -> dict[str, str]:
    return {"en": en, "de": de}


SCHEMA = parse_label_schema({
    "languages": ["en", "de"],
    "attributes": [
        {"id": "occluded", "kind": "boolean", "labels": _labels("Occluded", "Verdeckt")},
    ],
    "classes": [
        {"id": "car", "labels": _labels("Car", "Auto"), "types": ["bbox", "polygon"],
         "attributes": ["occluded"]},
        {"id": "night", "labels": _labels("Night", "Nacht"), "types": ["tag"]},
        {"id": "person", "labels": _labels("Person", "Mensch"), "types": ["bbox", "keypoints"],
         "keypoints": ["head", "left_hand", "right_hand"],
         "skeleton": [["head", "left_hand"], ["head", "right_hand"]]},
        {"id": "rain", "labels": _labels("Rain", "Regen"), "types": ["tag"]},
    ],
})

IMAGES = [
    ExportImage("t1", "item-1", "a1.jpg", 100, 200),
    ExportImage("t2", "item-2", "b2.png", 50, 50),  # accepted as empty: a true negative
    ExportImage("t3", "item-3", "c3.jpg", 64, 64),  # nothing accepted yet
    ExportImage("t4", "item-4", "d4.jpg", 64, 64),  # no accepted submission in the list
]


def _accepted(schema: LabelSchema = SCHEMA) -> dict[str, list[list[dict[str, Any]]]]:
    first = validate_submission(schema, {"annotations": [
        {"type": "bbox", "class": "car", "bbox": [10, 20, 30, 40],
         "attributes": {"occluded": True}},
        {"type": "polygon", "class": "car", "points": [[0, 0], [10, 0], [10, 10]]},
        {"type": "keypoints", "class": "person", "keypoints": [[5, 6, 2], [0, 0, 0], [15, 26, 1]]},
        {"type": "tag", "class": "night"},
    ]}, 100, 200)
    second = validate_submission(schema, {"annotations": [
        {"type": "bbox", "class": "person", "bbox": [0, 0, 100, 200]},
        {"type": "tag", "class": "rain"},
    ]}, 100, 200)
    return {"t1": [first, second], "t2": [[]], "t4": []}


def test_coco_export_of_a_hand_made_example() -> None:
    coco = to_coco(SCHEMA, IMAGES, _accepted(), "de")
    assert coco["info"]["version"] == "1.0"
    assert coco["licenses"] == []
    assert coco["categories"] == [
        # tag classes are no categories; ids are dense, in schema order
        {"id": 1, "name": "car", "supercategory": "", "label": "Auto"},
        {"id": 2, "name": "person", "supercategory": "", "label": "Mensch",
         "keypoints": ["head", "left_hand", "right_hand"], "skeleton": [[1, 2], [1, 3]]},
    ]
    assert coco["images"] == [
        {"id": 1, "file_name": "a1.jpg", "width": 100, "height": 200, "task_id": "t1",
         "item_id": "item-1", "tags": ["night", "rain"]},
        {"id": 2, "file_name": "b2.png", "width": 50, "height": 50, "task_id": "t2",
         "item_id": "item-2", "tags": []},
    ]
    assert coco["annotations"] == [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 20, 30, 40], "area": 1200,
         "iscrowd": 0, "segmentation": [], "attributes": {"occluded": True}, "submission": 0},
        {"id": 2, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 50,
         "iscrowd": 0, "segmentation": [[0, 0, 10, 0, 10, 10]], "attributes": {},
         "submission": 0},
        # the bounding box of the labelled keypoints only; v = 0 stays in the flat list
        {"id": 3, "image_id": 1, "category_id": 2, "bbox": [5, 6, 10, 20], "area": 200,
         "iscrowd": 0, "segmentation": [], "keypoints": [5, 6, 2, 0, 0, 0, 15, 26, 1],
         "num_keypoints": 2, "attributes": {}, "submission": 0},
        {"id": 4, "image_id": 1, "category_id": 2, "bbox": [0, 0, 100, 200], "area": 20000,
         "iscrowd": 0, "segmentation": [], "attributes": {}, "submission": 1},
    ]


def test_coco_export_is_deterministic_json() -> None:
    first = json.dumps(to_coco(SCHEMA, IMAGES, _accepted(), "en"), allow_nan=False)
    assert first == json.dumps(to_coco(SCHEMA, IMAGES, _accepted(), "en"), allow_nan=False)
    assert json.loads(first)["categories"][0]["label"] == "Car"


def test_coco_image_ids_follow_the_order_given() -> None:
    coco = to_coco(SCHEMA, list(reversed(IMAGES)), _accepted(), "en")
    assert [(i["id"], i["task_id"]) for i in coco["images"]] == [(1, "t2"), (2, "t1")]
    assert {a["image_id"] for a in coco["annotations"]} == {2}


def test_coco_needs_a_language_of_the_schema() -> None:
    with pytest.raises(ValueError, match="'fr' is not a language"):
        to_coco(SCHEMA, IMAGES, _accepted(), "fr")


def test_yolo_export_of_a_hand_made_example() -> None:
    files = to_yolo(SCHEMA, IMAGES, _accepted())
    assert files == {
        # only classes with boxes or polygons; the line number is the YOLO class
        "classes.txt": "car\nperson\n",
        "labels/a1.txt": (
            "0 0.250000 0.200000 0.300000 0.200000\n"  # bbox [10, 20, 30, 40] in 100 x 200
            "0 0.000000 0.000000 0.100000 0.000000 0.100000 0.050000\n"  # polygon
            "1 0.500000 0.500000 1.000000 1.000000\n"  # the whole image, second submission
        ),
        "labels/b2.txt": "",  # a true negative is an empty label file
    }


@pytest.mark.parametrize("export", [to_yolo, lambda s, i, a: to_coco(s, i, a, "en")])
def test_exports_refuse_inconsistent_input(export: Any) -> None:
    with pytest.raises(ValueError, match="twice"):
        export(SCHEMA, [IMAGES[0], IMAGES[0]], {})
    with pytest.raises(ValueError, match="without an image"):
        export(SCHEMA, IMAGES[1:], _accepted())


def test_exports_refuse_classes_missing_from_the_schema() -> None:
    accepted = {"t2": [[{"type": "bbox", "class": "bus", "bbox": [0, 0, 1, 1],
                         "attributes": {}}]]}
    with pytest.raises(ValueError, match="'bus'"):
        to_coco(SCHEMA, IMAGES, accepted, "en")
    with pytest.raises(ValueError, match="'bus'"):
        to_yolo(SCHEMA, IMAGES, accepted)


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["x/a.jpg", "y/a.png"], "both write labels/a.txt"),  # stems collide
        ([".jpg", "b.jpg"], "no usable stem"),
    ],
)
def test_yolo_label_file_names(names: list[str], message: str) -> None:
    images = [ExportImage(f"t{n}", f"i{n}", name, 10, 10) for n, name in enumerate(names)]
    with pytest.raises(ValueError, match=message):
        to_yolo(SCHEMA, images, {image.task_id: [[]] for image in images})


def test_yolo_label_file_takes_the_stem_only() -> None:
    images = [ExportImage("t", "i", "../dir\\sub/photo.v2.jpg", 10, 10)]
    assert list(to_yolo(SCHEMA, images, {"t": [[]]})) == ["classes.txt", "labels/photo.v2.txt"]


@given(st.integers(1, 4000), st.integers(1, 4000), st.data())
def test_yolo_boxes_round_trip_within_rounding(width: int, height: int, data: st.DataObject
                                               ) -> None:
    x = data.draw(st.integers(0, width - 1))
    y = data.draw(st.integers(0, height - 1))
    w = data.draw(st.integers(1, width - x))
    h = data.draw(st.integers(1, height - y))
    annotations = validate_submission(SCHEMA, {"annotations": [
        {"type": "bbox", "class": "person", "bbox": [x, y, w, h]}]}, width, height)
    image = ExportImage("t", "i", "p.jpg", width, height)
    line = to_yolo(SCHEMA, [image], {"t": [annotations]})["labels/p.txt"]
    cls, cx, cy, nw, nh = line.split()
    values = [float(v) for v in (cx, cy, nw, nh)]
    assert cls == "1"
    assert all(0.0 <= v <= 1.0 for v in values)
    assert values[2] * width == pytest.approx(w, abs=1e-6 * width)
    assert (values[0] - values[2] / 2) * width == pytest.approx(x, abs=1e-6 * width)
    assert values[3] * height == pytest.approx(h, abs=1e-6 * height)
    assert (values[1] - values[3] / 2) * height == pytest.approx(y, abs=1e-6 * height)
