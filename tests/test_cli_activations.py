"""``ntk-theory activations`` lists the whole registry (issue 12, item 6)."""

from __future__ import annotations

import json

import pytest
from reference import cli

from ntk_theory.activations import REGISTRY, parse_activation


def test_json_lists_every_family_with_parameters_defaults_aliases():
    rc, out, err = cli("activations", "--json")
    assert rc == 0, err
    rows = json.loads(out)
    assert len(rows) >= 26
    assert {r["name"] for r in rows} == set(REGISTRY)
    by = {r["name"]: r for r in rows}
    # facts of the registry, written out independently
    assert by["leaky_relu"]["parameters"] == [{"name": "slope", "default": 0.01, "required": False,
                                               "list": False}]
    assert [p["name"] for p in by["sigma_T"]["parameters"]] == ["s1", "s2", "a"]
    assert [p["required"] for p in by["sigma_T"]["parameters"]] == [True, True, False]
    assert by["swish"]["aliases"] == ["silu"] and by["step"]["aliases"] == ["heaviside"]
    assert by["staircase"]["staircase"] and not by["relu"]["staircase"]
    assert all(p["list"] for p in by["staircase"]["parameters"])
    for r in rows:
        act = parse_activation(r["example"])  # every example is a valid specification
        assert act.name == r["name"]
        for a in r["aliases"]:
            if not any(p["required"] for p in r["parameters"]):
                assert parse_activation(a).name == r["name"]


def test_json_validates_against_its_schema():
    jsonschema = pytest.importorskip("jsonschema")
    from ntk_theory.schemas import load_schema

    rc, out, _ = cli("activations", "--json")
    schema = load_schema("activations")
    jsonschema.Draft202012Validator(schema).validate(json.loads(out))
    bad = json.loads(out)
    bad[0]["extra"] = 1
    assert not jsonschema.Draft202012Validator(schema).is_valid(bad)


def test_text_and_moments_help_point_to_it():
    rc, out, _ = cli("activations")
    assert rc == 0
    for name in REGISTRY:
        assert f"\n{name} " in out
    rc, out, _ = cli("moments", "--help")
    assert rc == 0
    assert "ntk-theory activations" in " ".join(out.split())
