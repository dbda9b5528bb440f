"""JSON schemas of the ``--json`` outputs and the documented ``.npz`` layout (issue 6, item 5).

Real CLI outputs are validated against ``ntk_theory/schemas/*.json`` with the
``jsonschema`` library; each schema must also *reject* an output with a key removed
or an unknown key added (so a schema that accepts everything fails).  The ``.npz``
table of ``docs/schemas.rst`` is parsed and compared with a file written by
``compress --out`` (names, dtypes, shapes), and the page's plain-NumPy loading code
is executed and compared with :func:`ntk_theory.compress.load_npz`.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re

import numpy as np
import pytest

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is in the 'test' extra (pip install -e .[test])")

from reference import cli  # noqa: E402

from ntk_theory.compress import load_npz  # noqa: E402
from ntk_theory.errors import ParameterError  # noqa: E402
from ntk_theory.schemas import SCHEMAS, load_schema  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "schemas.rst")
Validator = jsonschema.Draft202012Validator


def cli_json(*argv: str):
    rc, out, err = cli(*argv)
    assert rc == 0, err
    return json.loads(out)


def assert_valid(command: str, doc) -> None:
    errors = sorted(Validator(load_schema(command)).iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]


def assert_rejects_mutations(command: str, obj: dict) -> None:
    """The schema refuses ``obj`` without its first required key and with an unknown key."""
    schema = load_schema(command)
    v = Validator(schema)
    sub = schema if schema["type"] == "object" else schema["items"]
    for mutate in ("drop", "add"):
        bad = copy.deepcopy(obj)
        if mutate == "drop":
            del bad[sub["required"][0]]
        else:
            bad["no_such_key"] = 1
        doc = bad if schema["type"] == "object" else [bad]
        assert not v.is_valid(doc), (command, mutate)


def test_schemas_are_valid_and_documented():
    doc = open(DOC, encoding="utf-8").read()
    for name in SCHEMAS:
        Validator.check_schema(load_schema(name))
        assert f"ntk_theory/schemas/{name}.json" in doc, name
    with pytest.raises(ParameterError, match="available"):
        load_schema("nosuch")


def test_moments_json(tmp_path):
    out = cli_json("moments", "relu", "sigma_T:s1=-1,s2=0.5,a=2", "tanh", "--json", "--tau", "2")
    assert_valid("moments", out)
    assert out[1]["moments"]["E[s'^2]"] == "inf"  # the schema's "inf" branch is exercised
    assert_valid("moments", cli_json("moments", "relu", "--centered", "--digits", "20", "--json"))
    assert_rejects_mutations("moments", out[0])
    bad = copy.deepcopy(out)
    bad[0]["moments"]["E[s]"] = "nan"  # only ±inf may be a string
    assert not Validator(load_schema("moments")).is_valid(bad)


def test_coefficients_json():
    out = cli_json("coefficients", "relu", "sign", "--tau0", "1.5", "--json")
    assert_valid("coefficients", out)
    assert out["layers"][1]["kappa"] == "inf"
    assert_rejects_mutations("coefficients", out)
    bad = copy.deepcopy(out)
    bad["layers"][0]["alpha"] = bad["layers"][0]["alpha"][:3]
    assert not Validator(load_schema("coefficients")).is_valid(bad)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("npz") / "model.npz"
    out = cli_json("compress", "relu", "tanh", "--tau0", "1", "--widths", "7", "9", "5", "--sparsity", "0.5",
                   "--seed", "4", "--json", "--out", str(path))
    return path, out


def test_compress_json(model):
    _, out = model
    assert_valid("compress", out)
    assert_rejects_mutations("compress", out)
    stair = cli_json("compress", "relu", "--tau0", "1", "--family", "staircase:4", "--widths", "4", "4", "--json")
    assert_valid("compress", stair)
    assert any(isinstance(v, list) for v in stair["layers"][0]["params"].values())


def test_spectrum_json():
    out = cli_json("spectrum", "relu", "--n", "40", "--width", "60", "--quiet", "--json")
    assert_valid("spectrum", out)
    assert_rejects_mutations("spectrum", out)


def test_demo_json(tmp_path, monkeypatch):
    """The real demo code at reduced sizes (the default settings take about a minute)."""
    from ntk_theory import demo
    from ntk_theory.cli import cmd_demo

    small = demo.DemoSettings(n=60, p=40, widths=(120, 120, 120), splits=2, folds=2)
    monkeypatch.setattr(cmd_demo, "run_demo", lambda outdir: demo.run_demo(outdir, small))
    out = cli_json("demo", "--json", "--outdir", str(tmp_path))
    assert_valid("demo", out)
    assert_rejects_mutations("demo", out)


# --------------------------------------------------------------------------- #
# the .npz layout of docs/schemas.rst
# --------------------------------------------------------------------------- #
def documented_npz() -> dict[str, tuple[str, str]]:
    """``{name: (dtype, shape expression)}`` from the list-table of docs/schemas.rst."""
    text = open(DOC, encoding="utf-8").read().split(".. _npz-layout:", 1)[1]
    rows = re.findall(r"^   \* - ``([a-z_{}]+)``\n     - (\w+)\n     - ``([^`]+)``", text, flags=re.M)
    assert len(rows) >= 10, rows
    return {name: (dtype, shape) for name, dtype, shape in rows}


def test_npz_keys_dtypes_shapes_match_the_docs(model):
    path, out = model
    doc = documented_npz()
    d = out["widths"]
    L = len(d) - 1
    expected: dict[str, tuple[str, tuple[int, ...]]] = {}
    for name, (dtype, shape) in doc.items():
        idx = range(L) if "{i}" in name else [None]
        for i in idx:
            key = name.replace("{i}", str(i))
            expected[key] = (dtype, eval(shape, {"ceil": math.ceil}, {"L": L, "d": d, "i": i}))  # noqa: S307
    with np.load(path, allow_pickle=False) as z:
        assert set(z.files) == set(expected)
        for key, (dtype, shape) in expected.items():
            arr = z[key]
            assert arr.shape == shape, key
            assert (arr.dtype.kind == "U") if dtype == "str" else (arr.dtype == np.dtype(dtype)), (key, arr.dtype)
        # the documented meanings of a few arrays, against the JSON of the same run
        assert list(z["widths"]) == d and float(z["epsilon"]) == 0.5 and int(z["seed"]) == 4
        assert list(z["extra_tau_dense"]) == out["tau_dense"] and float(z["extra_delta"]) == out["delta"]
        assert list(z["extra_means"]) == [lay["mean"] for lay in out["layers"]]


def test_plain_numpy_loading_code_of_the_docs(model, tmp_path, monkeypatch):
    path, _ = model
    text = open(DOC, encoding="utf-8").read().split(".. _npz-layout:", 1)[1]
    code = text.split(".. code-block:: python\n", 1)[1]
    code = "\n".join(line[3:] for line in code.splitlines() if line.startswith("   ") or not line.strip())
    (tmp_path / "model.npz").write_bytes(path.read_bytes())
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(compile(code, "docs/schemas.rst", "exec"), ns)  # noqa: S102
    weights, extra = load_npz(path)
    assert len(ns["weights"]) == len(weights.layers)
    for w_doc, w_pkg in zip(ns["weights"], weights.matrices()):
        np.testing.assert_array_equal(w_doc, w_pkg)  # same float64 products: exact equality
    assert ns["activations"] == list(extra["activations"])
    np.testing.assert_array_equal(ns["means"], extra["means"])
