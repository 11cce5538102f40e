"""Who may call which annotation endpoint on which object: the permission matrix as data.

One row per route; per global role, the condition under which the call is allowed:

* ``ANY``: the role's permission suffices (list endpoints filter to what the caller may
  see);
* ``OWNER``: the caller created the project (admins are owners of every project);
* ``MEMBER``: the caller is a member of the project *in this role* (an annotator added as
  reviewer does not review);
* ``LEASE``: the caller is the annotator holding the assignment, and still a member.

A role missing from a row is denied. The HTTP layer enforces exactly this table
(``gateway.api.project_access``) and the tests walk it exhaustively: every route of the
annotation blueprints must have a row, and every (route, role, ownership) combination is
tried. A caller refused by the table learns nothing: the object is "not found".
"""

from __future__ import annotations

ANY = "any"
OWNER = "owner"
MEMBER = "member"
LEASE = "lease"

ROLES = ("admin", "uploader", "annotator", "reviewer", "auditor")
PROJECT_ROLES = ("annotator", "reviewer", "auditor")

_P = "/v1/projects/<project_id>"
_A = "/v1/assignments/<assignment_id>"

MATRIX: dict[tuple[str, str], dict[str, str]] = {
    ("POST", "/v1/projects"): {"admin": ANY, "uploader": ANY},
    ("GET", "/v1/projects"): {role: ANY for role in ROLES},
    ("GET", _P): {"admin": ANY, "uploader": OWNER, "annotator": MEMBER, "reviewer": MEMBER,
                  "auditor": MEMBER},
    ("POST", _P + "/members"): {"admin": ANY, "uploader": OWNER},
    ("POST", _P + "/tasks/sync"): {"admin": ANY, "uploader": OWNER},
    ("POST", _P + "/gold"): {"admin": ANY, "uploader": OWNER},
    ("POST", _P + "/tasks/next"): {"annotator": MEMBER},
    ("POST", _A + "/renew"): {"annotator": LEASE},
    ("POST", _A + "/release"): {"annotator": LEASE},
    ("POST", _A + "/skip"): {"annotator": LEASE},
    ("POST", _A + "/submit"): {"annotator": LEASE},
    ("GET", _A + "/media"): {"annotator": LEASE},
    ("GET", _P + "/submissions"): {"admin": ANY, "uploader": OWNER, "reviewer": MEMBER},
    ("POST", _A + "/review"): {"admin": ANY, "uploader": OWNER, "reviewer": MEMBER},
    ("GET", _P + "/agreement"): {"admin": ANY, "uploader": OWNER, "reviewer": MEMBER,
                                 "auditor": MEMBER},
    ("POST", _P + "/exports"): {"admin": ANY, "uploader": OWNER},
}


def condition(method: str, rule: str, role: str) -> str | None:
    """The condition for ``role`` on this route, or None: denied."""
    return MATRIX.get((method, rule), {}).get(role)
