"""Policies are data, validated completely at load, with the field path in every error."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from policies import PolicyError, load_policy, parse_policy

pytestmark = pytest.mark.unit


def _default() -> dict[str, Any]:
    from importlib import resources

    return yaml.safe_load(resources.files("policies").joinpath("default.yaml").read_text())


def test_default_policy_loads_with_a_stable_hash() -> None:
    p = load_policy()
    assert p.id == "default"
    assert [d.name for d in p.image.detectors] == ["centerface", "mediapipe"]
    assert p.image.mask.style == "solid"
    assert p.image.leak_gate.enabled
    assert p.sha256 == load_policy("default").sha256
    assert len(p.sha256) == 64


def test_hash_changes_with_content() -> None:
    data = _default()
    data["image"]["mask"]["padding"] = 0.3
    assert parse_policy(data).sha256 != load_policy().sha256


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        # an unknown mask style
        (("image", "mask", "style"), "blur", "image.mask.style: 'blur' is not one of"),
        # thresholds are fractions
        (("image", "detectors", 0, "threshold"), 1.5, "image.detectors[0].threshold: must be"),
        # booleans are not numbers
        (("image", "detectors", 0, "threshold"), True,
         "image.detectors[0].threshold: must be a number"),
        # padding bounded
        (("image", "mask", "padding"), -0.1, "image.mask.padding: must be between"),
        # colour is three bytes
        (("image", "mask", "color"), [0, 0], "image.mask.color: must be three integers"),
        # the leak gate switch is a boolean
        (("image", "leak_gate", "enabled"), "yes",
         "image.leak_gate.enabled: must be true or false"),
        # an empty detector list would mask nothing
        (("image", "detectors"), [], "image.detectors: must be a non-empty list"),
        # pixel limits are positive integers
        (("image", "max_pixels"), 0, "image.max_pixels: must be >= 1"),
    ],
)
def test_bad_values_are_refused_with_their_path(path: tuple, value: Any, message: str) -> None:
    data = _default()
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(PolicyError) as err:
        parse_policy(data)
    assert message in str(err.value)


def test_unknown_keys_are_refused() -> None:
    data = _default()
    data["image"]["mask"]["opacity"] = 0.5
    with pytest.raises(PolicyError, match=r"image\.mask\.opacity: unknown key"):
        parse_policy(data)


def test_missing_keys_are_refused() -> None:
    data = _default()
    del data["image"]["leak_gate"]
    with pytest.raises(PolicyError, match=r"image\.leak_gate: required"):
        parse_policy(data)


def test_duplicate_detectors_are_refused() -> None:
    data = _default()
    data["image"]["detectors"].append(copy.deepcopy(data["image"]["detectors"][0]))
    with pytest.raises(PolicyError, match="listed twice"):
        parse_policy(data)


def test_unreadable_and_invalid_files(tmp_path) -> None:
    with pytest.raises(PolicyError, match="cannot read policy file"):
        load_policy(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: [unclosed\n")
    with pytest.raises(PolicyError, match="not valid YAML at line"):
        load_policy(bad)


@pytest.mark.parametrize(
    ("retention", "message"),
    [
        ({"originals": "forever"}, "retention.originals: 'forever' is not one of"),
        ({"originals": "expire"}, "retention.expire_after_days: required when"),
        ({"originals": "expire", "expire_after_days": 0},
         "retention.expire_after_days: must be >= 1"),
        ({"originals": "keep", "expire_after_days": 3},
         "retention.expire_after_days: only allowed"),
    ],
)
def test_bad_retention_is_refused(retention: dict, message: str) -> None:
    data = _default()
    data["retention"] = retention
    with pytest.raises(PolicyError) as err:
        parse_policy(data)
    assert message in str(err.value)


def test_retention_defaults_to_keep_and_parses_expire() -> None:
    data = _default()
    del data["retention"]
    assert parse_policy(data).retention.originals == "keep"
    data["retention"] = {"originals": "expire", "expire_after_days": 30}
    assert parse_policy(data).retention.expire_after_days == 30
