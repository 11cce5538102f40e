"""Annotation over HTTP: the whole flow, the permission matrix walked exhaustively, and an
annotator trying every id-bearing route with ids that are not theirs."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from typing import Any

import pytest
from PIL import Image

from audit.store import AuditQuery
from gateway.annotation.matrix import ANY, LEASE, MATRIX, MEMBER, OWNER, ROLES
from gateway.api.openapi import specs
from gateway.auditing import sequence_now
from tests.helpers import auth, wait_for_status

pytestmark = pytest.mark.integration

SCHEMA = {
    "languages": ["en", "de"],
    "attributes": [{"id": "occluded", "kind": "boolean", "required": True,
                    "labels": {"en": "Occluded", "de": "Verdeckt"}}],
    "classes": [
        {"id": "face", "labels": {"en": "Face", "de": "Gesicht"}, "types": ["bbox"],
         "attributes": ["occluded"]},
        {"id": "night", "labels": {"en": "Night", "de": "Nacht"}, "types": ["tag"]},
    ],
}
BOX = {"annotations": [{"type": "bbox", "class": "face", "bbox": [4, 4, 20, 16],
                        "attributes": {"occluded": False}}]}


def _png(seed: int, size: tuple[int, int] = (64, 48)) -> bytes:
    img = Image.new("RGB", size, (seed * 40 % 256, 90, 160))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


@dataclass
class World:
    client: Any
    tokens: dict[str, str]  # owner, a1, a2, outsider (annotator, not a member), reviewer,
    #                         auditor, other_owner, admin
    ids: dict[str, str]  # principal ids by the same names
    dataset: str
    items: list[str]
    project: str
    other_project: str
    other_dataset: str

    def call(self, who: str, method: str, path: str, **kwargs: Any) -> Any:
        return self.client.open(path, method=method, headers=auth(self.tokens[who]), **kwargs)


def _user(runtime: Any, role: str) -> tuple[str, str]:
    import uuid

    from gateway.accounts import create_token, create_user

    with runtime.session() as session:
        user = create_user(runtime, session, f"{role}-{uuid.uuid4().hex[:8]}", role)
        _, secret = create_token(runtime, session, user, None)
        session.commit()
        return user.id, secret


@pytest.fixture
def world(client: Any, runtime: Any, admin_token: str) -> World:
    tokens: dict[str, str] = {"admin": admin_token}
    ids: dict[str, str] = {}
    for name, role in (("owner", "uploader"), ("a1", "annotator"), ("a2", "annotator"),
                       ("outsider", "annotator"), ("reviewer", "reviewer"),
                       ("auditor", "auditor"), ("other_owner", "uploader")):
        ids[name], tokens[name] = _user(runtime, role)
    owner = auth(tokens["owner"])
    dataset = client.post("/v1/datasets", json={"name": "d"}, headers=owner).get_json()["id"]
    items = []
    for seed in range(3):
        resp = client.post(f"/v1/datasets/{dataset}/items", headers=owner,
                           data={"file": (io.BytesIO(_png(seed)), "x.png")},
                           content_type="multipart/form-data")
        items.append(resp.get_json()["id"])
    for item in items:
        assert wait_for_status(client, tokens["owner"], item)["status"] == "ready"
    project = client.post("/v1/projects", headers=owner, json={
        "name": "faces", "dataset_id": dataset, "label_schema": SCHEMA, "overlap": 2,
        "lease_seconds": 600}).get_json()
    assert project["progress"]["tasks"] == 3, project
    for name, role in (("a1", "annotator"), ("a2", "annotator"), ("reviewer", "reviewer"),
                       ("auditor", "auditor")):
        resp = client.post(f"/v1/projects/{project['id']}/members", headers=owner,
                           json={"principal_id": ids[name], "role": role})
        assert resp.status_code == 200, resp.get_json()
    other_owner = auth(tokens["other_owner"])
    other_ds = client.post("/v1/datasets", json={"name": "o"},
                           headers=other_owner).get_json()["id"]
    other = client.post("/v1/projects", headers=other_owner, json={
        "name": "other", "dataset_id": other_ds, "label_schema": SCHEMA}).get_json()["id"]
    return World(client, tokens, ids, dataset, items, project["id"], other, other_ds)


def _lease(world: World, who: str) -> dict[str, Any]:
    resp = world.call(who, "POST", f"/v1/projects/{world.project}/tasks/next")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return dict(resp.get_json())


def test_annotate_review_agree_export(world: World) -> None:
    first = _lease(world, "a1")
    assert "item_id" not in json.dumps(first)
    media = world.call("a1", "GET", first["links"]["media"])
    assert media.status_code == 200 and media.mimetype == "image/png"
    assert Image.open(io.BytesIO(media.data)).size == (first["width"], first["height"])

    bad = world.call("a1", "POST", first["links"]["submit"], json={"annotations": [
        {"type": "bbox", "class": "car", "bbox": [0, 0, 10, 10]},
        {"type": "bbox", "class": "face", "bbox": [60, 0, 10, 10],
         "attributes": {"occluded": True}}]})
    assert bad.status_code == 400
    paths = [p["path"] for p in bad.get_json()["problems"]]
    assert any(p.startswith("annotations[0]") for p in paths)
    assert any(p.startswith("annotations[1]") for p in paths)

    assert world.call("a1", "POST", first["links"]["submit"], json=BOX).status_code == 200
    # overlap 2: a2 is offered the same items; a1 is never offered one twice
    seen_by_a2 = set()
    while (resp := world.call("a2", "POST",
                              f"/v1/projects/{world.project}/tasks/next")).status_code == 200:
        lease = resp.get_json()
        seen_by_a2.add(lease["task_id"])
        shifted = {"annotations": [dict(BOX["annotations"][0], bbox=[5, 4, 20, 16])]}
        assert world.call("a2", "POST", lease["links"]["submit"],
                          json=shifted).status_code == 200
    assert resp.status_code == 204 and first["task_id"] in seen_by_a2 and len(seen_by_a2) == 3

    report = world.call("auditor", "GET", f"/v1/projects/{world.project}/agreement").get_json()
    on_item = report["items"][first["task_id"]]
    # boxes [4,4,20,16] and [5,4,20,16]: IoU 304/336
    assert sorted(on_item["annotators"]) == sorted([world.ids["a1"], world.ids["a2"]])
    assert abs(on_item["box"] - 304 / 336) < 1e-6
    assert set(report["annotators"]) == {world.ids["a1"], world.ids["a2"]}

    subs = world.call("reviewer", "GET",
                      f"/v1/projects/{world.project}/submissions").get_json()["submissions"]
    assert len(subs) == 4
    on_first = [s for s in subs if s["task_id"] == first["task_id"]]
    assert len(on_first) == 2
    decisions = {on_first[0]["assignment_id"]: "accept", on_first[1]["assignment_id"]: "reject"}
    for assignment_id, decision in decisions.items():
        resp = world.call("reviewer", "POST", f"/v1/assignments/{assignment_id}/review",
                          json={"decision": decision, "comment": "checked"})
        assert resp.status_code == 200 and resp.get_json()["state"] == decision + "ed"


    # 3 items x overlap 2 = 6 slots, a1 and a2 took 4, the rejection gave one back
    progress = world.call("owner", "GET", f"/v1/projects/{world.project}").get_json()
    assert progress["progress"]["slots_left"] == 3
    assert (progress["progress"]["accepted"], progress["progress"]["rejected"]) == (1, 1)

    coco = world.call("owner", "POST", f"/v1/projects/{world.project}/exports",
                      json={"format": "coco", "language": "de"})
    assert coco.status_code == 200
    document = coco.get_json()
    assert len(document["annotations"]) == 1 and len(document["images"]) == 1
    assert document["images"][0]["file_name"].endswith(".png")  # the anonymized copy's name
    assert {c["label"] for c in document["categories"]} >= {"Gesicht"}
    yolo = world.call("owner", "POST", f"/v1/projects/{world.project}/exports",
                      json={"format": "yolo"})
    names = zipfile.ZipFile(io.BytesIO(yolo.data)).namelist()
    assert "classes.txt" in names and any(n.startswith("labels/") for n in names)
    denied = world.call("a1", "POST", f"/v1/projects/{world.project}/exports",
                        json={"format": "coco"})
    assert denied.status_code == 403


def test_lease_lifecycle_release_skip_renew(world: World) -> None:
    lease = _lease(world, "a1")
    renewed = world.call("a1", "POST", f"/v1/assignments/{lease['id']}/renew")
    assert renewed.status_code == 200
    assert renewed.get_json()["lease_expires_at"] >= lease["lease_expires_at"]
    assert world.call("a1", "POST", f"/v1/assignments/{lease['id']}/release").status_code == 200
    assert world.call("a1", "GET", lease["links"]["media"]).status_code == 409
    again = _lease(world, "a1")  # released: it may come back to a1
    skipped = world.call("a1", "POST", f"/v1/assignments/{again['id']}/skip")
    assert skipped.get_json()["state"] == "skipped"
    offered = set()
    while (resp := world.call("a1", "POST",
                              f"/v1/projects/{world.project}/tasks/next")).status_code == 200:
        offered.add(resp.get_json()["task_id"])
        world.call("a1", "POST", f"/v1/assignments/{resp.get_json()['id']}/submit", json=BOX)
    assert again["task_id"] not in offered


# --------------------------------------------------------------------------- the matrix
def _events(runtime: Any, request_id: str) -> list[Any]:
    sequence_now(runtime.engine, runtime.audit)
    with runtime.engine.connect() as conn:
        records = runtime.audit.query(conn, AuditQuery(limit=100_000))
    return [r.event for r in records if r.event.request_id == request_id]


def test_every_annotation_route_is_in_the_matrix(app: Any) -> None:
    declared = {(spec.method, rule) for rule, spec in specs(app)
                if spec is not None and spec.tag in ("projects", "assignments")}
    assert declared == set(MATRIX)
    from gateway.auth.roles import grants

    by_route = {(spec.method, rule): spec for rule, spec in specs(app) if spec is not None}
    for route, row in MATRIX.items():
        for role in row:  # a role the table allows must hold the route's permission
            assert grants(role, by_route[route].permission), (route, role)


# Which principal plays each role, and whether that principal owns / is a member / holds
# the lease, in each variant the walk tries.
VARIANTS: dict[str, list[tuple[str, dict[str, bool]]]] = {
    "admin": [("admin", {"owner": True, "member": False, "lease": False})],
    "uploader": [("owner", {"owner": True, "member": False, "lease": False}),
                 ("other_owner", {"owner": False, "member": False, "lease": False})],
    "annotator": [("a1", {"owner": False, "member": True, "lease": True}),
                  ("a2", {"owner": False, "member": True, "lease": False}),
                  ("outsider", {"owner": False, "member": False, "lease": False})],
    "reviewer": [("reviewer", {"owner": False, "member": True, "lease": False})],
    "auditor": [("auditor", {"owner": False, "member": True, "lease": False})],
}


def _expected(condition: str | None, facts: dict[str, bool]) -> bool:
    return {ANY: True, OWNER: facts["owner"], MEMBER: facts["member"],
            LEASE: facts["lease"] and facts["member"], None: False}[condition]


def _request(world: World, route: tuple[str, str], assignment: str,
             who: str) -> tuple[str, dict]:
    method, rule = route
    path = rule.replace("<project_id>", world.project).replace("<assignment_id>", assignment)
    own_dataset = world.other_dataset if who == "other_owner" else world.dataset
    bodies: dict[str, dict[str, Any]] = {
        "/v1/projects": {"json": {"name": "n", "dataset_id": own_dataset,
                                  "label_schema": SCHEMA}},
        "/members": {"json": {"principal_id": world.ids["a2"], "role": "annotator"}},
        "/gold": {"json": {"item_id": world.items[0], "annotation": BOX}},
        "/submit": {"json": BOX},
        "/review": {"json": {"decision": "accept"}},
        "/exports": {"json": {"format": "coco"}},
    }
    kwargs = next((v for k, v in bodies.items() if path.endswith(k) and method == "POST"), {})
    return path, kwargs


def test_the_matrix_is_enforced_for_every_route_role_and_ownership(
        world: World, runtime: Any) -> None:
    # a second project of the same owner: allowed submits/releases/skips end a1's lease,
    # and a1 is never offered a task twice, so a1 needs more than three tasks here
    spare = world.call("owner", "POST", "/v1/projects", json={
        "name": "spare", "dataset_id": world.dataset, "label_schema": SCHEMA}).get_json()
    world.call("owner", "POST", f"/v1/projects/{spare['id']}/members",
               json={"principal_id": world.ids["a1"], "role": "annotator"})

    def fresh_lease() -> dict[str, Any]:
        for project in (world.project, spare["id"]):
            resp = world.call("a1", "POST", f"/v1/projects/{project}/tasks/next")
            if resp.status_code == 200:
                return dict(resp.get_json())
        raise AssertionError("a1 ran out of tasks")

    lease = fresh_lease()
    for route, row in sorted(MATRIX.items()):
        for role in ROLES:
            for who, facts in VARIANTS[role]:
                # a live lease each time: an allowed submit/release/skip ends it
                current = world.call("a1", "GET", f"/v1/assignments/{lease['id']}/media")
                if current.status_code != 200:
                    lease = fresh_lease()
                path, kwargs = _request(world, route, lease["id"], who)
                resp = world.call(who, route[0], path, **kwargs)
                allowed = _expected(row.get(role), facts)
                events = _events(runtime, resp.headers["X-Request-ID"])
                outcomes = [e.outcome for e in events]
                if allowed:
                    assert resp.status_code not in (401, 403, 404), (route, who,
                                                                     resp.get_json())
                    assert outcomes != ["denied"], (route, who)
                else:
                    assert resp.status_code in (403, 404), (route, who, resp.status_code)
                    assert outcomes == ["denied"], (route, who, outcomes)


def test_an_annotator_cannot_reach_anything_with_foreign_ids(world: World,
                                                             runtime: Any) -> None:
    theirs = _lease(world, "a2")  # another annotator's task
    foreign: list[str] = [*world.items, world.other_project, theirs["id"], theirs["task_id"],
                          world.dataset]
    item_original = world.call("a1", "GET", f"/v1/items/{world.items[0]}/original")
    assert item_original.status_code == 403
    tried = 0
    for (method, rule), _row in MATRIX.items():
        if "<" not in rule:
            continue
        for some_id in foreign:
            if rule.startswith("/v1/projects/") and some_id == world.project:
                continue
            path = rule.replace("<project_id>", some_id).replace("<assignment_id>", some_id)
            kwargs: dict[str, Any] = {"json": BOX} if path.endswith("/submit") else {}
            if path.endswith("/review"):
                kwargs = {"json": {"decision": "accept"}}
            if path.endswith("/exports"):
                kwargs = {"json": {"format": "coco"}}
            if path.endswith("/members"):
                kwargs = {"json": {"principal_id": world.ids["a1"], "role": "annotator"}}
            if path.endswith("/gold"):
                kwargs = {"json": {"item_id": world.items[0], "annotation": BOX}}
            resp = world.call("a1", method, path, **kwargs)
            assert resp.status_code in (403, 404), (method, path, resp.status_code)
            events = _events(runtime, resp.headers["X-Request-ID"])
            assert [e.outcome for e in events] == ["denied"], (method, path)
            tried += 1
    assert tried >= 60
    # and the other annotator's work was untouched
    assert world.call("a2", "GET", theirs["links"]["media"]).status_code == 200

