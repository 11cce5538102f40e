"""Export accepted annotations as COCO JSON or YOLO text files.

Why two formats: COCO keeps everything the schema can express (polygons, keypoints,
attributes, labels in a language); YOLO is what most detection trainers read directly.
Both are deterministic for the same input (images in the order given, then submissions
in the order accepted, then annotations in submission order), so an export can be
hashed, diffed and audited.

Choices:

* Only images with at least one accepted submission are exported. An accepted empty
  submission is a true negative (an image with no annotations, an empty YOLO file); an
  image nobody finished is unlabelled and must not look like a negative.
* Overlap: when a reviewer accepted several submissions of one task, all are exported;
  COCO annotations carry ``"submission"`` (index in the accepted list) so a consumer can
  pick one. Merging is a review decision, not an export one.
* COCO categories are the classes with a geometric type (bbox, polygon, keypoints), ids
  1..n in schema order, ``name`` the class id, ``label`` its text in the chosen language.
  Tags are not objects: they go to an extension field ``"tags"`` on each image (the sorted
  union over its accepted submissions). ``segmentation`` is COCO's list of flat polygons
  (``[[x1, y1, x2, y2, ...]]``), ``[]`` for boxes and keypoints; the ``bbox`` of a polygon
  or a keypoint set is its bounding box (of the labelled points only, for keypoints).
* YOLO: ``classes.txt`` lists the classes allowing bbox or polygon, line number = YOLO
  class number; ``labels/<stem>.txt`` holds "cls cx cy w h" per box and "cls x1 y1 ..."
  per polygon (YOLO segmentation), normalized to [0, 1] with 6 decimals. Keypoints and
  tags have no place in these files and are left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from gateway.annotation.schema import LabelClass, LabelSchema, polygon_area

Submission = Sequence[Mapping[str, Any]]
Accepted = Mapping[str, Sequence[Submission]]
INFO = {"description": "Accepted annotations exported by the gateway", "version": "1.0"}
_YOLO_TYPES = frozenset({"bbox", "polygon"})


@dataclass(frozen=True)
class ExportImage:
    task_id: str
    item_id: str
    file_name: str
    width: int
    height: int


def to_coco(schema: LabelSchema, images: list[ExportImage], accepted: Accepted,
            language: str) -> dict[str, Any]:
    """COCO "instances" JSON (with keypoints and extension fields; see the docstring)."""
    if language not in schema.languages:
        raise ValueError(f"{language!r} is not a language of the schema")
    exported = _exported(images, accepted)
    categories = [c for c in schema.classes.values() if set(c.types) - {"tag"}]
    category_ids = {c.id: n for n, c in enumerate(categories, start=1)}
    coco_images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for image_id, (image, submissions) in enumerate(exported, start=1):
        coco_images.append(_coco_image(image_id, image, submissions))
        for index, submission in enumerate(submissions):
            for annotation in submission:
                if annotation["type"] != "tag":
                    entry = _coco_annotation(annotation, category_ids)
                    entry.update(id=len(annotations) + 1, image_id=image_id, submission=index)
                    annotations.append(entry)
    return {"info": dict(INFO), "licenses": [], "images": coco_images,
            "categories": [_coco_category(n, c, language)
                           for n, c in enumerate(categories, start=1)],
            "annotations": annotations}


def to_yolo(schema: LabelSchema, images: list[ExportImage], accepted: Accepted
            ) -> dict[str, str]:
    """File name -> text: "classes.txt" and one "labels/<stem>.txt" per exported image."""
    numbers = {c.id: n for n, c in enumerate(
        c for c in schema.classes.values() if _YOLO_TYPES & set(c.types))}
    files = {"classes.txt": "".join(f"{class_id}\n" for class_id in numbers)}
    for image, submissions in _exported(images, accepted):
        name = f"labels/{_stem(image.file_name)}.txt"
        if name in files:
            raise ValueError(f"two images would both write {name}")
        lines = [_yolo_line(a, numbers, image) for s in submissions for a in s
                 if a["type"] in _YOLO_TYPES]
        files[name] = "".join(f"{line}\n" for line in lines)
    return files


def _exported(images: list[ExportImage], accepted: Accepted
              ) -> list[tuple[ExportImage, Sequence[Submission]]]:
    """The images to export with their submissions; refuses inconsistent input."""
    task_ids = [image.task_id for image in images]
    if len(set(task_ids)) != len(task_ids):
        raise ValueError("a task appears twice among the images")
    unknown = sorted(set(accepted) - set(task_ids))
    if unknown:
        raise ValueError(f"accepted submissions for tasks without an image: {unknown[:5]}")
    return [(image, accepted[image.task_id]) for image in images if accepted.get(image.task_id)]


def _coco_image(image_id: int, image: ExportImage, submissions: Sequence[Submission]
                ) -> dict[str, Any]:
    tags = sorted({str(a["class"]) for s in submissions for a in s if a["type"] == "tag"})
    return {"id": image_id, "file_name": image.file_name, "width": image.width,
            "height": image.height, "task_id": image.task_id, "item_id": image.item_id,
            "tags": tags}


def _coco_category(category_id: int, label_class: LabelClass, language: str
                   ) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": category_id, "name": label_class.id, "supercategory": "",
                             "label": label_class.labels[language]}
    if "keypoints" in label_class.types:
        index = {name: n for n, name in enumerate(label_class.keypoints, start=1)}
        entry["keypoints"] = list(label_class.keypoints)
        entry["skeleton"] = [[index[a], index[b]] for a, b in label_class.skeleton]
    return entry


def _coco_annotation(annotation: Mapping[str, Any], category_ids: Mapping[str, int]
                     ) -> dict[str, Any]:
    class_id = annotation["class"]
    if class_id not in category_ids:
        raise ValueError(f"annotation class {class_id!r} is not an object class of the schema")
    entry: dict[str, Any] = {"category_id": category_ids[class_id], "iscrowd": 0,
                             "segmentation": [], "attributes": dict(annotation["attributes"])}
    kind = annotation["type"]
    if kind == "bbox":
        x, y, w, h = annotation["bbox"]
        entry.update(bbox=[x, y, w, h], area=w * h)
    elif kind == "polygon":
        points = [list(p) for p in annotation["points"]]
        entry.update(bbox=_bounds(points), area=polygon_area(points),
                     segmentation=[[c for p in points for c in p]])
    else:
        triples = annotation["keypoints"]
        box = _bounds([p[:2] for p in triples if p[2] > 0])
        entry.update(bbox=box, area=box[2] * box[3], num_keypoints=sum(p[2] > 0 for p in triples),
                     keypoints=[c for p in triples for c in p])
    return entry


def _bounds(points: Sequence[Sequence[float]]) -> list[float]:
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]


def _yolo_line(annotation: Mapping[str, Any], numbers: Mapping[str, int],
               image: ExportImage) -> str:
    class_id = annotation["class"]
    if class_id not in numbers:
        raise ValueError(f"annotation class {class_id!r} is not a box or polygon class")
    if annotation["type"] == "bbox":
        x, y, w, h = annotation["bbox"]
        values = [(x + w / 2) / image.width, (y + h / 2) / image.height,
                  w / image.width, h / image.height]
    else:
        values = [c / size for x, y in annotation["points"]
                  for c, size in ((x, image.width), (y, image.height))]
    return " ".join([str(numbers[class_id]), *(f"{v:.6f}" for v in values)])


def _stem(file_name: str) -> str:
    stem = PurePosixPath(file_name.replace("\\", "/")).stem
    if not stem or stem.startswith("."):
        raise ValueError("an image file name has no usable stem for its YOLO label file")
    return stem
