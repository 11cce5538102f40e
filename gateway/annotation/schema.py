"""Label schemas (a project's controlled vocabulary) and validation of submissions.

Submissions become training data: a label outside the vocabulary or a box outside the
image poisons a dataset silently. So the schema (written by a project owner) is validated
completely at load, and every submission against it, each with the JSON path of the fault.

Schema JSON (unknown keys are refused everywhere)::

    {"languages": ["en", "de"],                     # 1-20 distinct tags: "en", "pt-BR"
     "attributes": [                                # optional, default []
       {"id": "occluded", "kind": "boolean", "required": true,      # required: default false
        "labels": {"en": "Occluded", "de": "Verdeckt"}},
       {"id": "truncation", "kind": "enum", "labels": {...},
        "values": [{"id": "none", "labels": {...}}, ...]}],         # enum only, 1-100 values
     "classes": [                                   # 1-500 classes
       {"id": "car", "labels": {...}, "types": ["bbox", "polygon"],
        "attributes": ["occluded", "truncation"]},                  # optional, default []
       {"id": "person", "labels": {...}, "types": ["bbox", "keypoints"],
        "keypoints": ["head", "left_hand"],         # required iff "keypoints" in types
        "skeleton": [["head", "left_hand"]]},       # optional, keypoint classes only
       {"id": "night", "labels": {...}, "types": ["tag"]}]}

Ids match ``^[a-z][a-z0-9_]{0,63}$`` and are unique among their siblings (classes,
attributes, one attribute's values, one class's keypoints). Every label object has exactly
one non-empty text per listed language. Types come from bbox, polygon, keypoints, tag.

Submission JSON: ``{"annotations": [...]}`` with at most 1000 entries (``[]`` is valid)::

    {"type": "bbox", "class": "car", "bbox": [x, y, w, h], "attributes": {"occluded": true}}
    {"type": "polygon", "class": "car", "points": [[x, y], [x, y], [x, y], ...]}
    {"type": "keypoints", "class": "person", "keypoints": [[x, y, v], ...]}
    {"type": "tag", "class": "night"}

Numbers are finite ints or floats (never booleans). Geometry lies in [0, width] x
[0, height]; boxes have w, h > 0; polygons have 3-10000 points and a non-zero area (self
intersection is not checked); keypoints give one [x, y, v] per keypoint the class names,
v in {0, 1, 2} (COCO: not labelled, hidden, visible), at least one v > 0, and only points
with v > 0 must be inside (v = 0 points are normalized to [0, 0, 0]). A class is tagged at
most once. Attributes are those of the class, of the right kind; required ones present.
The normalized form always has "attributes" (in schema order) and float coordinates.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

TYPES = ("bbox", "polygon", "keypoints", "tag")
KINDS = ("boolean", "enum")
GEOMETRY = {"bbox": "bbox", "polygon": "points", "keypoints": "keypoints", "tag": None}
MAX_ANNOTATIONS = 1000
MAX_POINTS = 10_000
MAX_PROBLEMS = 100
_LIMITS = {"languages": 20, "classes": 500, "attributes": 100, "values": 100, "keypoints": 100}
_ID = re.compile(r"[a-z][a-z0-9_]{0,63}")
_LANGUAGE = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})*")
_MAX_TEXT = 200
_MAX_EDGES = 1000


class SchemaError(ValueError):
    """A label schema is invalid; the message starts with the JSON path of the fault."""


class SubmissionError(ValueError):
    """A submission is invalid; ``problems`` lists every fault found as {path, message}."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        shown = "; ".join(f"{p['path']}: {p['message']}" for p in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(f"{shown}{more}")
        self.problems = problems


@dataclass(frozen=True)
class EnumValue:
    id: str
    labels: Mapping[str, str]

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "labels": dict(self.labels)}


@dataclass(frozen=True)
class Attribute:
    id: str
    kind: str
    required: bool
    labels: Mapping[str, str]
    values: tuple[EnumValue, ...] = ()

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "kind": self.kind, "required": self.required,
                               "labels": dict(self.labels)}
        if self.kind == "enum":
            out["values"] = [v.as_json() for v in self.values]
        return out


@dataclass(frozen=True)
class LabelClass:
    id: str
    labels: Mapping[str, str]
    types: tuple[str, ...]
    attributes: tuple[str, ...] = ()
    keypoints: tuple[str, ...] = ()
    skeleton: tuple[tuple[str, str], ...] = ()

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "labels": dict(self.labels),
                               "types": list(self.types), "attributes": list(self.attributes)}
        if "keypoints" in self.types:
            out["keypoints"] = list(self.keypoints)
            out["skeleton"] = [list(pair) for pair in self.skeleton]
        return out


@dataclass(frozen=True)
class LabelSchema:
    languages: tuple[str, ...]
    classes: Mapping[str, LabelClass]
    attributes: Mapping[str, Attribute]

    def as_json(self) -> dict[str, Any]:
        """Canonical form: every default spelled out; parsing it gives an equal schema."""
        return {"languages": list(self.languages),
                "attributes": [a.as_json() for a in self.attributes.values()],
                "classes": [c.as_json() for c in self.classes.values()]}


# ---- schema parsing: raise on the first fault --------------------------------------------


def parse_label_schema(data: object) -> LabelSchema:
    top = _object(data, "", {"languages", "classes"}, {"attributes"})
    languages = _languages(top["languages"])
    attributes: dict[str, Attribute] = {}
    for path, raw in _entries(top.get("attributes", []), "attributes", _LIMITS["attributes"]):
        attribute = _attribute(raw, path, languages)
        attributes[_unique(attribute.id, attributes, f"{path}.id")] = attribute
    classes: dict[str, LabelClass] = {}
    for path, raw in _entries(top["classes"], "classes", _LIMITS["classes"], 1):
        label_class = _class(raw, path, languages, attributes)
        classes[_unique(label_class.id, classes, f"{path}.id")] = label_class
    return LabelSchema(languages, MappingProxyType(classes), MappingProxyType(attributes))


def _at(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _object(value: object, path: str, required: set[str], optional: Collection[str] = ()
            ) -> dict[str, Any]:
    where = path or "schema"
    if not isinstance(value, dict):
        raise SchemaError(f"{where}: must be an object")
    allowed = required | set(optional)
    for key in value:
        if key not in allowed:
            raise SchemaError(f"{where}: unknown key {_show(key)} "
                              f"(allowed: {', '.join(sorted(allowed))})")
    missing = sorted(required - set(value))
    if missing:
        raise SchemaError(f"{_at(path, missing[0])}: is required")
    return value


def _entries(value: object, path: str, limit: int, minimum: int = 0) -> list[tuple[str, Any]]:
    """The items of a bounded list, each with its own path."""
    if not isinstance(value, list):
        raise SchemaError(f"{path}: must be a list")
    if not minimum <= len(value) <= limit:
        raise SchemaError(f"{path}: must have {minimum} to {limit} entries, got {len(value)}")
    return [(f"{path}[{i}]", item) for i, item in enumerate(value)]


def _unique(key: str, seen: Mapping[str, object], path: str) -> str:
    if key in seen:
        raise SchemaError(f"{path}: duplicate {key!r}")
    return key


def _id(value: object, path: str) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise SchemaError(f"{path}: {_show(value)} is not an id (a lowercase letter, then up "
                          "to 63 lowercase letters, digits or '_')")
    return value


def _ids(value: object, path: str, limit: int, minimum: int = 0) -> tuple[str, ...]:
    out: dict[str, None] = {}
    for item_path, raw in _entries(value, path, limit, minimum):
        out[_unique(_id(raw, item_path), out, item_path)] = None
    return tuple(out)


def _languages(value: object) -> tuple[str, ...]:
    out: dict[str, None] = {}
    for path, raw in _entries(value, "languages", _LIMITS["languages"], 1):
        if not isinstance(raw, str) or not _LANGUAGE.fullmatch(raw):
            raise SchemaError(f"{path}: {_show(raw)} is not a language tag like 'en' or 'pt-BR'")
        out[_unique(raw, out, path)] = None
    return tuple(out)


def _labels(value: object, path: str, languages: tuple[str, ...]) -> Mapping[str, str]:
    if not isinstance(value, dict):
        raise SchemaError(f"{path}: must be an object of texts by language")
    listed = ", ".join(languages)
    for language in languages:
        if language not in value:
            raise SchemaError(f"{path}: {language!r} missing (languages: {listed})")
    for key in value:
        if key not in languages:
            raise SchemaError(f"{path}: {_show(key)} is not one of the languages ({listed})")
    for language in languages:
        text = value[language]
        if not isinstance(text, str) or not text.strip() or len(text) > _MAX_TEXT:
            raise SchemaError(f"{path}.{language}: must be a non-empty text of at most "
                              f"{_MAX_TEXT} characters")
    return MappingProxyType({language: value[language] for language in languages})


def _choice(value: object, path: str, options: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in options:
        raise SchemaError(f"{path}: {_show(value)} is not one of {', '.join(options)}")
    return value


def _attribute(value: object, path: str, languages: tuple[str, ...]) -> Attribute:
    m = _object(value, path, {"id", "kind", "labels"}, {"required", "values"})
    attribute_id = _id(m["id"], f"{path}.id")
    labels = _labels(m["labels"], f"{path}.labels", languages)
    kind = _choice(m["kind"], f"{path}.kind", KINDS)
    required = m.get("required", False)
    if not isinstance(required, bool):
        raise SchemaError(f"{path}.required: must be true or false")
    if (kind == "enum") != ("values" in m):
        raise SchemaError(f"{path}.values: " + ("is required for kind 'enum'" if kind == "enum"
                                                else "only allowed for kind 'enum'"))
    values = _enum_values(m["values"], f"{path}.values", languages) if kind == "enum" else ()
    return Attribute(attribute_id, kind, required, labels, values)


def _enum_values(value: object, path: str, languages: tuple[str, ...]
                 ) -> tuple[EnumValue, ...]:
    values: dict[str, EnumValue] = {}
    for item_path, raw in _entries(value, path, _LIMITS["values"], 1):
        item = _object(raw, item_path, {"id", "labels"})
        value_id = _unique(_id(item["id"], f"{item_path}.id"), values, f"{item_path}.id")
        values[value_id] = EnumValue(value_id, _labels(item["labels"], f"{item_path}.labels",
                                                       languages))
    return tuple(values.values())


def _class(value: object, path: str, languages: tuple[str, ...],
           attributes: Mapping[str, Attribute]) -> LabelClass:
    m = _object(value, path, {"id", "labels", "types"}, {"attributes", "keypoints", "skeleton"})
    class_id = _id(m["id"], f"{path}.id")
    labels = _labels(m["labels"], f"{path}.labels", languages)
    types: dict[str, None] = {}
    for item_path, raw in _entries(m["types"], f"{path}.types", len(TYPES), 1):
        types[_unique(_choice(raw, item_path, TYPES), types, item_path)] = None
    refs = _ids(m.get("attributes", []), f"{path}.attributes", _LIMITS["attributes"])
    for i, ref in enumerate(refs):
        if ref not in attributes:
            raise SchemaError(f"{path}.attributes[{i}]: {ref!r} is not a declared attribute")
    keypoints, skeleton = _keypoint_spec(m, path, "keypoints" in types)
    return LabelClass(class_id, labels, tuple(types), refs, keypoints, skeleton)


def _keypoint_spec(m: dict[str, Any], path: str, wanted: bool
                   ) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    if not wanted:
        for key in ("keypoints", "skeleton"):
            if key in m:
                raise SchemaError(f"{path}.{key}: only allowed when types include 'keypoints'")
        return (), ()
    if "keypoints" not in m:
        raise SchemaError(f"{path}.keypoints: is required when types include 'keypoints'")
    names = _ids(m["keypoints"], f"{path}.keypoints", _LIMITS["keypoints"], 1)
    pairs: dict[frozenset[str], tuple[str, str]] = {}
    for item_path, raw in _entries(m.get("skeleton", []), f"{path}.skeleton", _MAX_EDGES):
        if (not isinstance(raw, list) or len(raw) != 2 or raw[0] == raw[1]
                or not all(isinstance(n, str) and n in names for n in raw)):
            raise SchemaError(f"{item_path}: must be a pair of two different keypoint names")
        if frozenset(raw) in pairs:
            raise SchemaError(f"{item_path}: duplicate edge {raw[0]!r}-{raw[1]!r}")
        pairs[frozenset(raw)] = (raw[0], raw[1])
    return names, tuple(pairs.values())


def _show(value: object) -> str:
    """repr() cut short: messages may echo a client's value, but never much of it."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# ---- submissions: collect every problem ----------------------------------------------------


class _Problems:
    """Collects problems up to MAX_PROBLEMS (a hostile polygon must not produce millions)."""

    def __init__(self) -> None:
        self.found: list[dict[str, str]] = []
        self.dropped = 0

    def __len__(self) -> int:
        return len(self.found) + self.dropped

    def add(self, path: str, message: str) -> None:
        if len(self.found) < MAX_PROBLEMS:
            self.found.append({"path": path, "message": message})
        else:
            self.dropped += 1

    def raise_any(self) -> None:
        if self.dropped:
            self.found.append({"path": "annotations",
                               "message": f"{self.dropped} more problems not listed"})
        if self.found:
            raise SubmissionError(self.found)


@dataclass(frozen=True)
class _Image:
    width: int
    height: int

    def contains(self, x: float, y: float) -> bool:
        return 0 <= x <= self.width and 0 <= y <= self.height

    def outside(self, x: float, y: float) -> str:
        return f"({_num(x)}, {_num(y)}) lies outside the image ({self.width} x {self.height})"


def validate_submission(schema: LabelSchema, data: object, width: int, height: int
                        ) -> list[dict[str, object]]:
    """Check a submission against the schema and the image size; return it normalized."""
    if not all(type(n) is int and n > 0 for n in (width, height)):
        raise ValueError("image width and height must be positive integers")
    problems = _Problems()
    image = _Image(width, height)
    out: list[dict[str, object]] = []
    tagged: dict[str, str] = {}
    for i, raw in enumerate(_annotation_list(data, problems)):
        path = f"annotations[{i}]"
        normalized = _annotation(schema, raw, path, image, problems)
        if normalized is not None and normalized["type"] == "tag":
            class_id = str(normalized["class"])
            if class_id in tagged:
                problems.add(f"{path}.class", f"{class_id!r} is already tagged at "
                                              f"{tagged[class_id]}")
            tagged.setdefault(class_id, path)
        if normalized is not None:
            out.append(normalized)
    problems.raise_any()
    return out


def _annotation_list(data: object, problems: _Problems) -> list[Any]:
    if not isinstance(data, dict) or set(data) != {"annotations"}:
        problems.add("submission", 'must be an object {"annotations": [...]} and nothing else')
    elif not isinstance(data["annotations"], list):
        problems.add("annotations", "must be a list")
    elif len(data["annotations"]) > MAX_ANNOTATIONS:
        problems.add("annotations", f"at most {MAX_ANNOTATIONS} annotations, "
                                    f"got {len(data['annotations'])}")
    else:
        return data["annotations"]
    return []


def _annotation(schema: LabelSchema, raw: object, path: str, image: _Image,
                problems: _Problems) -> dict[str, object] | None:
    """One annotation normalized, or None when it has a problem (already recorded)."""
    before = len(problems)
    if not isinstance(raw, dict):
        problems.add(path, "must be an object")
        return None
    kind = _annotation_type(raw, path, problems)
    _unknown_keys(raw, path, kind, problems)
    label_class = _annotation_class(schema, raw, path, kind, problems)
    out: dict[str, object] = {"type": kind, "class": raw.get("class")}
    key = GEOMETRY[kind] if kind is not None else None
    if kind is not None and key is not None and key not in raw:
        problems.add(f"{path}.{key}", "is required")
    elif kind is not None and key is not None:
        out[key] = _GEOMETRY_CHECKS[kind](raw[key], f"{path}.{key}", image, label_class,
                                          problems)
    if label_class is not None:
        out["attributes"] = _attributes(schema, label_class, raw.get("attributes", {}),
                                        f"{path}.attributes", problems)
    return out if len(problems) == before else None


def _annotation_type(raw: dict[str, Any], path: str, problems: _Problems) -> str | None:
    kind = raw.get("type")
    if "type" not in raw:
        problems.add(f"{path}.type", "is required")
    elif not isinstance(kind, str) or kind not in TYPES:
        problems.add(f"{path}.type", f"{_show(kind)} is not one of {', '.join(TYPES)}")
    else:
        return kind
    return None


def _unknown_keys(raw: dict[str, Any], path: str, kind: str | None, problems: _Problems
                  ) -> None:
    geometry = [GEOMETRY[kind]] if kind is not None else list(GEOMETRY.values())
    allowed = {"type", "class", "attributes"} | {key for key in geometry if key is not None}
    for key in raw:
        if key not in allowed:
            for_type = f" for type {kind!r}" if kind else ""
            problems.add(path, f"unknown key {_show(key)}{for_type} "
                               f"(allowed: {', '.join(sorted(allowed))})")


def _annotation_class(schema: LabelSchema, raw: dict[str, Any], path: str, kind: str | None,
                      problems: _Problems) -> LabelClass | None:
    class_id = raw.get("class")
    if "class" not in raw:
        problems.add(f"{path}.class", "is required")
        return None
    label_class = schema.classes.get(class_id) if isinstance(class_id, str) else None
    if label_class is None:
        problems.add(f"{path}.class", f"{_show(class_id)} is not a class of this schema")
    elif kind is not None and kind not in label_class.types:
        problems.add(f"{path}.class", f"class {class_id!r} does not allow type {kind!r} "
                                      f"(allowed: {', '.join(label_class.types)})")
    return label_class


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number + 0.0 if math.isfinite(number) else None  # + 0.0 turns -0.0 into 0.0


def _numbers(value: object, path: str, count: int, shape: str, problems: _Problems
             ) -> list[float] | None:
    if not isinstance(value, list) or len(value) != count:
        problems.add(path, f"must be {shape}")
        return None
    numbers = [_finite(v) for v in value]
    for i, number in enumerate(numbers):
        if number is None:
            problems.add(f"{path}[{i}]", "must be a finite number")
    return None if None in numbers else [n for n in numbers if n is not None]


def _num(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def _bbox(value: object, path: str, image: _Image, _class: LabelClass | None,
          problems: _Problems) -> list[float] | None:
    box = _numbers(value, path, 4, "[x, y, width, height]", problems)
    if box is None:
        return None
    x, y, w, h = box
    checks = [(w <= 0, f"width {_num(w)} must be positive"),
              (h <= 0, f"height {_num(h)} must be positive"),
              (x < 0, f"x {_num(x)} is negative"),
              (y < 0, f"y {_num(y)} is negative"),
              (x + w > image.width, f"x + width {_num(x + w)} exceeds the image width "
                                    f"{image.width}"),
              (y + h > image.height, f"y + height {_num(y + h)} exceeds the image height "
                                     f"{image.height}")]
    for failed, message in checks:
        if failed:
            problems.add(path, message)
    return box


def _polygon(value: object, path: str, image: _Image, _class: LabelClass | None,
             problems: _Problems) -> list[list[float]] | None:
    if not isinstance(value, list) or not 3 <= len(value) <= MAX_POINTS:
        problems.add(path, f"must be a list of 3 to {MAX_POINTS} [x, y] points")
        return None
    before = len(problems)
    points = []
    for i, raw in enumerate(value):
        point = _numbers(raw, f"{path}[{i}]", 2, "[x, y]", problems)
        if point is not None and not image.contains(*point):
            problems.add(f"{path}[{i}]", image.outside(*point))
        points.append(point or [0.0, 0.0])
    if len(problems) == before and polygon_area(points) == 0:
        problems.add(path, "the polygon has zero area")
    return points


def polygon_area(points: list[list[float]]) -> float:
    """Shoelace area; shared with the COCO export so both agree on what "area" means."""
    twice = sum(x0 * y1 - x1 * y0
                for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1], strict=True))
    return abs(twice) / 2


def _keypoints(value: object, path: str, image: _Image, label_class: LabelClass | None,
               problems: _Problems) -> list[list[float]] | None:
    names = label_class.keypoints if label_class is not None else ()
    if not isinstance(value, list) or len(value) > _LIMITS["keypoints"]:
        problems.add(path, "must be a list of [x, y, v] triples, one per keypoint of the class")
        return None
    if label_class is not None and len(value) != len(names):
        problems.add(path, f"class {label_class.id!r} has {len(names)} keypoints "
                           f"({', '.join(names)}), got {len(value)}")
    before = len(problems)
    out = [_keypoint(raw, f"{path}[{i}]", image, problems) for i, raw in enumerate(value)]
    if len(problems) == before and all(point[2] == 0 for point in out):
        problems.add(path, "no keypoint is labelled (every v is 0)")
    return out


def _keypoint(raw: object, path: str, image: _Image, problems: _Problems) -> list[float]:
    numbers = _numbers(raw, path, 3, "[x, y, v]", problems)
    if numbers is None:
        return [0.0, 0.0, 0]
    x, y, v = numbers
    if not isinstance(raw, list) or type(raw[2]) is not int or v not in (0, 1, 2):
        problems.add(f"{path}[2]", "visibility must be the integer 0, 1 or 2")
        return [0.0, 0.0, 0]
    if v and not image.contains(x, y):
        problems.add(path, image.outside(x, y))
    return [x, y, int(v)] if v else [0.0, 0.0, 0]


_GEOMETRY_CHECKS: dict[str, Any] = {"bbox": _bbox, "polygon": _polygon, "keypoints": _keypoints}


def _attributes(schema: LabelSchema, label_class: LabelClass, value: object, path: str,
                problems: _Problems) -> dict[str, object]:
    if not isinstance(value, dict):
        problems.add(path, "must be an object")
        return {}
    allowed = ", ".join(label_class.attributes) or "none"
    for key, given in value.items():
        key_path = f"{path}.{key}" if isinstance(key, str) and _ID.fullmatch(key) else \
            f"{path}[{_show(key)}]"
        if key not in label_class.attributes:
            problems.add(key_path, f"not an attribute of class {label_class.id!r} "
                                   f"(allowed: {allowed})")
        else:
            _attribute_value(schema.attributes[key], given, key_path, problems)
    for attribute_id in label_class.attributes:
        if schema.attributes[attribute_id].required and attribute_id not in value:
            problems.add(path, f"required attribute {attribute_id!r} missing")
    return {a: value[a] for a in label_class.attributes if a in value}


def _attribute_value(attribute: Attribute, value: object, path: str, problems: _Problems
                     ) -> None:
    if attribute.kind == "boolean" and not isinstance(value, bool):
        problems.add(path, "must be true or false")
    if attribute.kind == "enum" and value not in [v.id for v in attribute.values]:
        problems.add(path, f"{_show(value)} is not one of "
                           f"{', '.join(v.id for v in attribute.values)}")
