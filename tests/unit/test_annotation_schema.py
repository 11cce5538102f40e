"""Label schemas are validated completely at load, submissions against them, with paths."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from gateway.annotation.schema import (
    MAX_PROBLEMS,
    LabelSchema,
    SchemaError,
    SubmissionError,
    parse_label_schema,
    validate_submission,
)

pytestmark = pytest.mark.unit

W, H = 1024, 768


def _labels(en: str, de: str) -> dict[str, str]:
    return {"en": en, "de": de}


def _schema_json() -> dict[str, Any]:
    return {
        "languages": ["en", "de"],
        "attributes": [
            {"id": "occluded", "kind": "boolean", "required": True,
             "labels": _labels("Occluded", "Verdeckt")},
            {"id": "truncation", "kind": "enum", "labels": _labels("Truncation", "Abschnitt"),
             "values": [{"id": "none", "labels": _labels("None", "Keine")},
                        {"id": "partial", "labels": _labels("Partial", "Teilweise")}]},
        ],
        "classes": [
            {"id": "car", "labels": _labels("Car", "Auto"), "types": ["bbox", "polygon"],
             "attributes": ["occluded", "truncation"]},
            {"id": "person", "labels": _labels("Person", "Person"),
             "types": ["bbox", "keypoints"], "keypoints": ["head", "left_hand", "right_hand"],
             "skeleton": [["head", "left_hand"], ["head", "right_hand"]]},
            {"id": "night", "labels": _labels("Night", "Nacht"), "types": ["tag"]},
        ],
    }


@pytest.fixture
def schema() -> LabelSchema:
    return parse_label_schema(_schema_json())


# ---- schema ---------------------------------------------------------------------------------


def test_schema_parses_with_defaults_filled(schema: LabelSchema) -> None:
    assert schema.languages == ("en", "de")
    assert list(schema.classes) == ["car", "person", "night"]
    assert schema.classes["car"].labels["de"] == "Auto"
    assert schema.classes["person"].keypoints == ("head", "left_hand", "right_hand")
    assert schema.classes["person"].skeleton == (("head", "left_hand"), ("head", "right_hand"))
    assert schema.classes["night"].attributes == ()
    assert schema.attributes["occluded"].required is True
    assert schema.attributes["truncation"].required is False  # default
    assert [v.id for v in schema.attributes["truncation"].values] == ["none", "partial"]


def test_as_json_is_the_canonical_form(schema: LabelSchema) -> None:
    canonical = schema.as_json()
    assert canonical["attributes"][1]["required"] is False
    assert "values" not in canonical["attributes"][0]
    assert canonical["classes"][2] == {"id": "night", "labels": _labels("Night", "Nacht"),
                                       "types": ["tag"], "attributes": []}
    assert canonical["classes"][1]["skeleton"] == [["head", "left_hand"], ["head", "right_hand"]]
    assert parse_label_schema(canonical) == schema
    assert parse_label_schema(canonical).as_json() == canonical


def test_schema_parsing_does_not_keep_references_to_the_input() -> None:
    data = _schema_json()
    schema = parse_label_schema(data)
    data["classes"][0]["labels"]["en"] = "Truck"
    assert schema.classes["car"].labels["en"] == "Car"


def _drop(*path: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        target = data
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
    return change


def _set(value: Any, *path: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        # a label missing in one language
        (_drop("classes", 2, "labels", "de"),
         "classes[2].labels: 'de' missing (languages: en, de)"),
        # a label in a language the schema does not list
        (_set("Voiture", "classes", 0, "labels", "fr"),
         "classes[0].labels: 'fr' is not one of the languages (en, de)"),
        # empty text
        (_set(" ", "classes", 0, "labels", "en"),
         "classes[0].labels.en: must be a non-empty text of at most 200 characters"),
        # text that is not a string
        (_set(7, "attributes", 0, "labels", "de"),
         "attributes[0].labels.de: must be a non-empty text of at most 200 characters"),
        # unknown key at the top
        (_set("red", "colour"),
         "schema: unknown key 'colour' (allowed: attributes, classes, languages)"),
        # unknown key in a class
        (_set("red", "classes", 0, "colour"), "classes[0]: unknown key 'colour' "
         "(allowed: attributes, id, keypoints, labels, skeleton, types)"),
        # required key missing
        (_drop("classes"), "classes: is required"),
        (_drop("attributes", 0, "kind"), "attributes[0].kind: is required"),
        # ids: pattern, length, uniqueness
        (_set("Car", "classes", 0, "id"), "classes[0].id: 'Car' is not an id (a lowercase "
         "letter, then up to 63 lowercase letters, digits or '_')"),
        # 65 characters (and the message echoes only the start of a long value)
        (_set("c" * 65, "classes", 0, "id"), "classes[0].id: '" + "c" * 36 + "... is not an "
         "id (a lowercase letter, then up to 63 lowercase letters, digits or '_')"),
        (_set("car", "classes", 1, "id"), "classes[1].id: duplicate 'car'"),
        (_set("occluded", "attributes", 1, "id"), "attributes[1].id: duplicate 'occluded'"),
        # types
        (_set(["bbox", "circle"], "classes", 0, "types"),
         "classes[0].types[1]: 'circle' is not one of bbox, polygon, keypoints, tag"),
        (_set([], "classes", 0, "types"), "classes[0].types: must have 1 to 4 entries, got 0"),
        (_set(["bbox", "bbox"], "classes", 0, "types"), "classes[0].types[1]: duplicate 'bbox'"),
        (_set("bbox", "classes", 0, "types"), "classes[0].types: must be a list"),
        # keypoints only and always for keypoint classes
        (_drop("classes", 1, "keypoints"),
         "classes[1].keypoints: is required when types include 'keypoints'"),
        (_set(["a"], "classes", 0, "keypoints"),
         "classes[0].keypoints: only allowed when types include 'keypoints'"),
        (_set(["head", "head"], "classes", 1, "keypoints"),
         "classes[1].keypoints[1]: duplicate 'head'"),
        (_set([["head", "tail"]], "classes", 1, "skeleton"),
         "classes[1].skeleton[0]: must be a pair of two different keypoint names"),
        (_set([["head", "head"]], "classes", 1, "skeleton"),
         "classes[1].skeleton[0]: must be a pair of two different keypoint names"),
        (_set([["head", "left_hand"], ["left_hand", "head"]], "classes", 1, "skeleton"),
         "classes[1].skeleton[1]: duplicate edge 'left_hand'-'head'"),
        # class attributes must be declared, once
        (_set(["occluded", "truncated"], "classes", 0, "attributes"),
         "classes[0].attributes[1]: 'truncated' is not a declared attribute"),
        (_set(["occluded", "occluded"], "classes", 0, "attributes"),
         "classes[0].attributes[1]: duplicate 'occluded'"),
        # attribute kinds
        (_set("number", "attributes", 0, "kind"),
         "attributes[0].kind: 'number' is not one of boolean, enum"),
        (_set("yes", "attributes", 0, "required"), "attributes[0].required: must be true or false"),
        (_drop("attributes", 1, "values"), "attributes[1].values: is required for kind 'enum'"),
        (_set([], "attributes", 0, "values"), "attributes[0].values: only allowed for kind 'enum'"),
        (_set([], "attributes", 1, "values"),
         "attributes[1].values: must have 1 to 100 entries, got 0"),
        (_drop("attributes", 1, "values", 0, "labels", "de"),
         "attributes[1].values[0].labels: 'de' missing (languages: en, de)"),
        (_set("none", "attributes", 1, "values", 1, "id"),
         "attributes[1].values[1].id: duplicate 'none'"),
        # languages
        (_set([], "languages"), "languages: must have 1 to 20 entries, got 0"),
        (_set(["EN"], "languages"),
         "languages[0]: 'EN' is not a language tag like 'en' or 'pt-BR'"),
        (_set(["en", "en"], "languages"), "languages[1]: duplicate 'en'"),
    ],
)
def test_schema_errors_name_the_path(change: Callable[[dict[str, Any]], None],
                                     message: str) -> None:
    data = _schema_json()
    change(data)
    with pytest.raises(SchemaError) as caught:
        parse_label_schema(data)
    assert str(caught.value) == message


def test_schema_must_be_an_object() -> None:
    with pytest.raises(SchemaError, match=r"^schema: must be an object$"):
        parse_label_schema([])


def test_regional_language_tags_are_accepted() -> None:
    data = _schema_json()
    data["languages"] = ["pt-BR"]
    for entry in [*data["attributes"], *data["attributes"][1]["values"], *data["classes"]]:
        entry["labels"] = {"pt-BR": "x"}
    assert parse_label_schema(data).languages == ("pt-BR",)


_ids = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)


@st.composite
def _schemas(draw: st.DrawFn) -> dict[str, Any]:
    """Random valid schemas in any key order, some defaults left out."""
    languages = draw(st.lists(st.sampled_from(["en", "de", "fr", "pt-BR"]), min_size=1,
                              unique=True))
    text = st.text(min_size=1, max_size=5).filter(str.strip)
    labels = st.fixed_dictionaries({lang: text for lang in languages})
    attribute_ids = draw(st.lists(_ids, unique=True, max_size=3))
    attributes: list[dict[str, Any]] = []
    for attribute_id in attribute_ids:
        kind = draw(st.sampled_from(["boolean", "enum"]))
        entry: dict[str, Any] = {"id": attribute_id, "kind": kind, "labels": draw(labels)}
        if entry["kind"] == "enum":
            entry["values"] = [{"id": v, "labels": draw(labels)}
                               for v in draw(st.lists(_ids, min_size=1, max_size=3, unique=True))]
        if draw(st.booleans()):
            entry["required"] = draw(st.booleans())
        attributes.append(entry)
    classes: list[dict[str, Any]] = []
    for class_id in draw(st.lists(_ids, min_size=1, max_size=4, unique=True)):
        types = draw(st.lists(st.sampled_from(["bbox", "polygon", "keypoints", "tag"]),
                              min_size=1, unique=True))
        entry = {"id": class_id, "labels": draw(labels), "types": types}
        if draw(st.booleans()) and attribute_ids:
            entry["attributes"] = draw(st.lists(st.sampled_from(attribute_ids), unique=True))
        if "keypoints" in types:
            entry["keypoints"] = draw(st.lists(_ids, min_size=2, max_size=4, unique=True))
        classes.append(entry)
    data: dict[str, Any] = {"languages": languages, "classes": classes}
    if draw(st.booleans()) or attributes:
        data["attributes"] = attributes
    return data


@given(_schemas())
def test_as_json_round_trips(data: dict[str, Any]) -> None:
    schema = parse_label_schema(copy.deepcopy(data))
    assert parse_label_schema(schema.as_json()) == schema
    assert parse_label_schema(schema.as_json()).as_json() == schema.as_json()
    assert [c["id"] for c in schema.as_json()["classes"]] == [c["id"] for c in data["classes"]]


# ---- submissions ----------------------------------------------------------------------------


def _problems(schema: LabelSchema, data: object, width: int = W, height: int = H
              ) -> list[dict[str, str]]:
    with pytest.raises(SubmissionError) as caught:
        validate_submission(schema, data, width, height)
    return caught.value.problems


def test_a_valid_submission_is_normalized(schema: LabelSchema) -> None:
    data = {"annotations": [
        {"type": "bbox", "class": "car", "bbox": [10, 20.5, 30, 40],
         "attributes": {"truncation": "partial", "occluded": False}},
        {"type": "polygon", "class": "car", "points": [[0, 0], [1024, 0], [1024, 768]],
         "attributes": {"occluded": True}},
        {"type": "keypoints", "class": "person",
         "keypoints": [[5, 6, 2], [2000, -1, 0], [7, 8, 1]]},
        {"type": "tag", "class": "night"},
    ]}
    assert validate_submission(schema, data, W, H) == [
        # attributes come back in schema order, numbers as floats
        {"type": "bbox", "class": "car", "bbox": [10.0, 20.5, 30.0, 40.0],
         "attributes": {"occluded": False, "truncation": "partial"}},
        {"type": "polygon", "class": "car",
         "points": [[0.0, 0.0], [1024.0, 0.0], [1024.0, 768.0]], "attributes": {"occluded": True}},
        # a point with v = 0 is not labelled: its coordinates are dropped, not checked
        {"type": "keypoints", "class": "person",
         "keypoints": [[5.0, 6.0, 2], [0.0, 0.0, 0], [7.0, 8.0, 1]], "attributes": {}},
        {"type": "tag", "class": "night", "attributes": {}},
    ]


def test_an_empty_submission_is_valid(schema: LabelSchema) -> None:
    assert validate_submission(schema, {"annotations": []}, W, H) == []


def test_negative_zero_is_normalized(schema: LabelSchema) -> None:
    data = {"annotations": [{"type": "bbox", "class": "person", "bbox": [-0.0, 0, 1, 1]}]}
    assert str(validate_submission(schema, data, W, H)[0]["bbox"]) == "[0.0, 0.0, 1.0, 1.0]"


_OK = {"occluded": False}


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        # the example of the issue: the right edge beyond the image
        ({"type": "bbox", "class": "car", "bbox": [1000, 2, 30, 4], "attributes": _OK},
         [("annotations[0].bbox", "x + width 1030 exceeds the image width 1024")]),
        ({"type": "bbox", "class": "car", "bbox": [-1, -2.5, 10, 771], "attributes": _OK},
         [("annotations[0].bbox", "x -1 is negative"),
          ("annotations[0].bbox", "y -2.5 is negative"),
          ("annotations[0].bbox", "y + height 768.5 exceeds the image height 768")]),
        ({"type": "bbox", "class": "car", "bbox": [1, 1, 0, -3], "attributes": _OK},
         [("annotations[0].bbox", "width 0 must be positive"),
          ("annotations[0].bbox", "height -3 must be positive")]),
        # booleans, strings, NaN, infinity, overflowing ints are not numbers
        ({"type": "bbox", "class": "car", "bbox": [True, "1", float("nan"), 10 ** 400],
          "attributes": _OK},
         [(f"annotations[0].bbox[{i}]", "must be a finite number") for i in range(4)]),
        ({"type": "bbox", "class": "car", "bbox": [1, 2, 3], "attributes": _OK},
         [("annotations[0].bbox", "must be [x, y, width, height]")]),
        # polygons: enough points, finite, inside, not degenerate
        ({"type": "polygon", "class": "car", "points": [[0, 0], [1, 1]], "attributes": _OK},
         [("annotations[0].points", "must be a list of 3 to 10000 [x, y] points")]),
        ({"type": "polygon", "class": "car", "points": [[0, 0], [1025, 1], [3, float("inf")]],
          "attributes": _OK},
         [("annotations[0].points[1]", "(1025, 1) lies outside the image (1024 x 768)"),
          ("annotations[0].points[2][1]", "must be a finite number")]),
        ({"type": "polygon", "class": "car", "points": [[0, 0], [1, 1], [2, 2]], "attributes": _OK},
         [("annotations[0].points", "the polygon has zero area")]),
        # keypoints: one per named keypoint, integer visibility, labelled ones inside
        ({"type": "keypoints", "class": "person", "keypoints": [[1, 1, 2]]},
         [("annotations[0].keypoints",
           "class 'person' has 3 keypoints (head, left_hand, right_hand), got 1")]),
        ({"type": "keypoints", "class": "person",
          "keypoints": [[1, 1, 3], [1, 1, 2.0], [1, 800, 1]]},
         [("annotations[0].keypoints[0][2]", "visibility must be the integer 0, 1 or 2"),
          ("annotations[0].keypoints[1][2]", "visibility must be the integer 0, 1 or 2"),
          ("annotations[0].keypoints[2]", "(1, 800) lies outside the image (1024 x 768)")]),
        ({"type": "keypoints", "class": "person", "keypoints": [[0, 0, 0]] * 3},
         [("annotations[0].keypoints", "no keypoint is labelled (every v is 0)")]),
        # vocabulary: type, class, class allowed for the type
        ({"type": "circle", "class": "night"},
         [("annotations[0].type", "'circle' is not one of bbox, polygon, keypoints, tag")]),
        ({"class": "night"}, [("annotations[0].type", "is required")]),
        ({"type": "tag", "class": "bus"},
         [("annotations[0].class", "'bus' is not a class of this schema")]),
        ({"type": "tag"}, [("annotations[0].class", "is required")]),
        ({"type": "tag", "class": "car", "attributes": _OK},
         [("annotations[0].class",
           "class 'car' does not allow type 'tag' (allowed: bbox, polygon)")]),
        ({"type": "bbox", "class": "night"},
         [("annotations[0].class", "class 'night' does not allow type 'bbox' (allowed: tag)"),
          ("annotations[0].bbox", "is required")]),
        # keys of another type are unknown
        ({"type": "tag", "class": "night", "bbox": [1, 1, 1, 1]},
         [("annotations[0]",
           "unknown key 'bbox' for type 'tag' (allowed: attributes, class, type)")]),
        # attributes: of the class, of the right kind, required present
        ({"type": "bbox", "class": "car", "bbox": [1, 1, 1, 1]},
         [("annotations[0].attributes", "required attribute 'occluded' missing")]),
        ({"type": "bbox", "class": "car", "bbox": [1, 1, 1, 1],
          "attributes": {"occluded": 1, "truncation": "full", "colour": "red", "Bad Key": 1}},
         [("annotations[0].attributes.occluded", "must be true or false"),
          ("annotations[0].attributes.truncation", "'full' is not one of none, partial"),
          ("annotations[0].attributes.colour",
           "not an attribute of class 'car' (allowed: occluded, truncation)"),
          ("annotations[0].attributes['Bad Key']",
           "not an attribute of class 'car' (allowed: occluded, truncation)")]),
        ({"type": "tag", "class": "night", "attributes": {"occluded": True}},
         [("annotations[0].attributes.occluded",
           "not an attribute of class 'night' (allowed: none)")]),
        ({"type": "tag", "class": "night", "attributes": []},
         [("annotations[0].attributes", "must be an object")]),
        ("car", [("annotations[0]", "must be an object")]),
    ],
)
def test_submission_problems_name_the_path(schema: LabelSchema, annotation: object,
                                           expected: list[tuple[str, str]]) -> None:
    problems = _problems(schema, {"annotations": [annotation]})
    assert [(p["path"], p["message"]) for p in problems] == expected


def test_every_problem_is_listed_not_just_the_first(schema: LabelSchema) -> None:
    good = {"type": "tag", "class": "night"}
    data = {"annotations": [
        {"type": "bbox", "class": "car", "bbox": [0, 0, 2000, 10], "attributes": _OK},
        good,
        {"type": "tag", "class": "bus"},
        good,  # the same tag twice
    ]}
    problems = _problems(schema, data)
    assert problems == [
        {"path": "annotations[0].bbox", "message": "x + width 2000 exceeds the image width 1024"},
        {"path": "annotations[2].class", "message": "'bus' is not a class of this schema"},
        {"path": "annotations[3].class", "message": "'night' is already tagged at annotations[1]"},
    ]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ([], ("submission", 'must be an object {"annotations": [...]} and nothing else')),
        ({"annotations": [], "extra": 1},
         ("submission", 'must be an object {"annotations": [...]} and nothing else')),
        ({"annotations": {}}, ("annotations", "must be a list")),
        ({"annotations": [{"type": "tag", "class": "night"}] * 1001},
         ("annotations", "at most 1000 annotations, got 1001")),
    ],
)
def test_submission_shape(schema: LabelSchema, data: object, expected: tuple[str, str]) -> None:
    assert [(p["path"], p["message"]) for p in _problems(schema, data)] == [expected]


def test_a_thousand_annotations_are_accepted(schema: LabelSchema) -> None:
    box = {"type": "bbox", "class": "person", "bbox": [0, 0, 1, 1]}
    assert len(validate_submission(schema, {"annotations": [box] * 1000}, W, H)) == 1000


def test_problems_are_capped(schema: LabelSchema) -> None:
    points = [[2000, 2000]] * 500
    problems = _problems(schema, {"annotations": [
        {"type": "polygon", "class": "car", "points": points, "attributes": _OK}]})
    assert len(problems) == MAX_PROBLEMS + 1
    assert problems[-1] == {"path": "annotations", "message": "400 more problems not listed"}


def test_submission_error_message_summarizes(schema: LabelSchema) -> None:
    with pytest.raises(SubmissionError) as caught:
        validate_submission(schema, {"annotations": [{"type": "tag", "class": "bus"}] * 7}, W, H)
    assert isinstance(caught.value, ValueError)
    assert str(caught.value).startswith("annotations[0].class: 'bus' is not a class")
    assert str(caught.value).endswith("(and 2 more)")


@pytest.mark.parametrize(("width", "height"), [(0, 10), (10, -1), (True, 10), (10.0, 10)])
def test_image_size_must_be_positive_integers(schema: LabelSchema, width: Any,
                                              height: Any) -> None:
    with pytest.raises(ValueError, match="positive integers"):
        validate_submission(schema, {"annotations": []}, width, height)


_sizes = st.integers(min_value=1, max_value=5000)


@st.composite
def _inside(draw: st.DrawFn) -> tuple[int, int, list[float]]:
    width, height = draw(_sizes), draw(_sizes)
    x0, x1 = sorted(draw(st.lists(st.floats(0, width), min_size=2, max_size=2, unique=True)))
    y0, y1 = sorted(draw(st.lists(st.floats(0, height), min_size=2, max_size=2, unique=True)))
    box = [x0, y0, x1 - x0, y1 - y0]
    assume(box[2] > 0 and box[3] > 0 and x0 + box[2] <= width and y0 + box[3] <= height)
    return width, height, box


@given(_inside())
def test_any_box_inside_the_image_validates(case: tuple[int, int, list[float]]) -> None:
    width, height, box = case
    schema = parse_label_schema(_schema_json())
    data = {"annotations": [{"type": "bbox", "class": "person", "bbox": box}]}
    assert validate_submission(schema, data, width, height)[0]["bbox"] == box


@given(_inside(), st.sampled_from(["left", "top", "right", "bottom"]),
       st.floats(min_value=0.001, max_value=1e6))
def test_any_box_crossing_the_border_is_refused(case: tuple[int, int, list[float]], side: str,
                                               excess: float) -> None:
    width, height, (x, y, w, h) = case
    if side == "left":
        x, w = -excess, w + excess
    elif side == "top":
        y, h = -excess, h + excess
    elif side == "right":
        w = width - x + excess
    else:
        h = height - y + excess
    schema = parse_label_schema(_schema_json())
    data = {"annotations": [{"type": "bbox", "class": "person", "bbox": [x, y, w, h]}]}
    problems = _problems(schema, data, width, height)
    assert problems and {p["path"] for p in problems} == {"annotations[0].bbox"}
