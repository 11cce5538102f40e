"""Agreement between annotators who labelled the same items (overlap).

Why: overlap is how a project measures whether its labels are reproducible; a reviewer
uses the per-item numbers to find contested items, the per-annotator numbers to find
someone who misunderstood the guidelines, the project numbers to judge the schema.

Choices, so that the numbers mean one thing:

* Boxes: two annotators' bbox annotations of an item are matched greedily one-to-one,
  highest IoU first, only within the same class and only at IoU >= threshold; the score
  is the sum of matched IoUs divided by the larger of the two box counts (an unmatched
  box on either side costs as much as a miss). Both empty is full agreement (1.0).
  Polygons and keypoints are not scored.
* Tags: an annotator's category for an item is its *tag set*, the sorted distinct tag
  class ids joined by "+" ("" for no tags, itself a category: agreeing that nothing
  applies is agreement). Per item, tag agreement is the share of annotator pairs whose
  categories are equal (Fleiss' P_i).
* Project kappa over the items with two or more annotators: Cohen's kappa when every such
  item was labelled by the same two annotators (Cohen assumes two fixed raters); otherwise
  Fleiss' kappa, which assumes raters drawn per item. Items may differ in their number of
  annotators: each item's agreement then uses its own count, and the category shares pool
  all ratings, which is exactly Fleiss (1971) when the counts are equal.
* A kappa is None when undefined: no items, or chance agreement 1 (one category used
  throughout), where kappa is 0/0 however well people agree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from itertools import combinations
from statistics import fmean
from typing import Any

Annotations = Sequence[Mapping[str, Any]]


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two [x, y, w, h] boxes; 0.0 when the union is empty."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    width = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    height = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = width * height
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def box_agreement(a: Annotations, b: Annotations, threshold: float = 0.5) -> float:
    """Matched-IoU score of two annotators' boxes on one item (see the module docstring)."""
    boxes_a = [x for x in a if x.get("type") == "bbox"]
    boxes_b = [x for x in b if x.get("type") == "bbox"]
    if not boxes_a and not boxes_b:
        return 1.0
    candidates = sorted(
        ((iou(p["bbox"], q["bbox"]), i, j)
         for i, p in enumerate(boxes_a) for j, q in enumerate(boxes_b)
         if p["class"] == q["class"]),
        key=lambda c: (-c[0], c[1], c[2]))
    used_a: set[int] = set()
    used_b: set[int] = set()
    total = 0.0
    for score, i, j in candidates:
        if score >= threshold and score > 0 and i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            total += score
    return total / max(len(boxes_a), len(boxes_b))


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float | None:
    """Cohen's kappa of two raters over the same items, in the same order."""
    if len(a) != len(b):
        raise ValueError("both raters must rate the same items")
    if not a:
        return None
    n = len(a)
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    count_a, count_b = Counter(a), Counter(b)
    chance = sum(count_a[c] * count_b[c] for c in count_a) / (n * n)
    return _kappa(observed, chance)


def fleiss_kappa(ratings: Sequence[Sequence[str]]) -> float | None:
    """Fleiss' kappa: one row per item, the categories its raters gave (two or more)."""
    if any(len(row) < 2 for row in ratings):
        raise ValueError("every item needs at least two ratings")
    if not ratings:
        return None
    observed = fmean(_pair_agreement(row) for row in ratings)
    totals = Counter(category for row in ratings for category in row)
    count = sum(totals.values())
    chance = sum((t / count) ** 2 for t in totals.values())
    return _kappa(observed, chance)


def _kappa(observed: float, chance: float) -> float | None:
    if chance >= 1.0:
        return None
    return (observed - chance) / (1.0 - chance)


def _pair_agreement(row: Sequence[str]) -> float:
    """Share of rater pairs that agree on one item (Fleiss' P_i)."""
    n = len(row)
    return sum(k * (k - 1) for k in Counter(row).values()) / (n * (n - 1))


def tag_category(annotations: Annotations) -> str:
    """An annotator's tag set on one item as a single category ("" for no tags)."""
    return "+".join(sorted({str(x["class"]) for x in annotations if x.get("type") == "tag"}))


def agreement_report(submissions: Mapping[str, Mapping[str, Annotations]],
                     threshold: float = 0.5) -> dict[str, object]:
    """Per item, per annotator and project agreement; see the module docstring.

    ``submissions`` maps item id -> annotator id -> normalized annotations. Result::

        {"threshold": 0.5,
         "items": {item: {"annotators": [...], "box": float | None, "tags": float | None}},
         "annotators": {annotator: {"items": int, "box": float | None, "tags": ...}},
         "project": {"items": int, "box": ..., "tags": ...,
                     "kappa": float | None, "kappa_method": "cohen" | "fleiss" | None}}

    Agreement needs two annotators: single-annotator items get None and count nowhere.
    """
    items: dict[str, dict[str, Any]] = {}
    per_annotator: dict[str, dict[str, list[float]]] = {}
    for item_id in sorted(submissions):
        by_annotator = submissions[item_id]
        items[item_id] = _item(by_annotator, threshold, per_annotator)
    shared = {k: v for k, v in items.items() if len(v["annotators"]) >= 2}
    return {"threshold": threshold, "items": items,
            "annotators": {a: _annotator_summary(per_annotator.get(a, {}))
                           for a in sorted({a for s in submissions.values() for a in s})},
            "project": _project(shared, submissions)}


def _item(by_annotator: Mapping[str, Annotations], threshold: float,
          per_annotator: dict[str, dict[str, list[float]]]) -> dict[str, Any]:
    """One item's mean pairwise agreement; adds each annotator's own mean to per_annotator."""
    names = sorted(by_annotator)
    categories = {name: tag_category(by_annotator[name]) for name in names}
    pairs = {(p, q): (box_agreement(by_annotator[p], by_annotator[q], threshold),
                      float(categories[p] == categories[q]))
             for p, q in combinations(names, 2)}
    if not pairs:
        return {"annotators": names, "box": None, "tags": None}
    for name in names:
        mine = [scores for pair, scores in pairs.items() if name in pair]
        summary = per_annotator.setdefault(name, {"box": [], "tags": []})
        summary["box"].append(fmean(box for box, _ in mine))
        summary["tags"].append(fmean(tags for _, tags in mine))
    return {"annotators": names, "box": fmean(box for box, _ in pairs.values()),
            "tags": fmean(tags for _, tags in pairs.values())}


def _annotator_summary(scores: Mapping[str, list[float]]) -> dict[str, Any]:
    box, tags = scores.get("box", []), scores.get("tags", [])
    return {"items": len(box), "box": fmean(box) if box else None,
            "tags": fmean(tags) if tags else None}


def _project(shared: Mapping[str, Mapping[str, Any]],
             submissions: Mapping[str, Mapping[str, Annotations]]) -> dict[str, Any]:
    rows = [[tag_category(submissions[item][a]) for a in entry["annotators"]]
            for item, entry in shared.items()]
    raters = {tuple(entry["annotators"]) for entry in shared.values()}
    method: str | None
    if len(raters) == 1 and len(next(iter(raters))) == 2:
        method = "cohen"
        kappa = cohen_kappa([row[0] for row in rows], [row[1] for row in rows])
    else:
        method = "fleiss" if rows else None
        kappa = fleiss_kappa(rows)
    return {"items": len(shared),
            "box": fmean(e["box"] for e in shared.values()) if shared else None,
            "tags": fmean(e["tags"] for e in shared.values()) if shared else None,
            "kappa": kappa, "kappa_method": method}
