"""Coefficients of a deep network: the flow of τ, α, β, κ with depth
=================================================================

Per-layer coefficients τ_ℓ, α_{ℓ,1..4}, β_{ℓ,1..3}, κ_ℓ of docs/reference.rst §4
(:func:`ntk_theory.coefficients.coefficients`) for deep networks of one activation
each: ReLU, erf (started from two input scales) and tanh.  What the recursion does with
depth:

* **ReLU** is positively homogeneous: every layer multiplies τ² by
  Var ReLU(ξ) = 1/2 − 1/(2π) and α_{ℓ,1} by E[ReLU′]² = 1/4, so the scale decays
  geometrically and the linear (data) share α_{ℓ,1}τ_0²/τ_ℓ² of the CK's scale decays
  like (0.25/0.3408)^ℓ: a deep centered ReLU CK drifts towards its identity term.
  Checked here against these closed forms.
* **erf** has a non-zero fixed point τ* of τ ↦ √Var erf(τξ), with
  Var erf(τξ) = (2/π) arcsin(2τ²/(1 + 2τ²)); the flow approaches it from above and from
  below.  τ* is computed independently (SciPy root finding on the arcsine formula) and
  drawn as a dashed line.
* **tanh** (no closed form: certified quadrature) has Var tanh(τξ) = τ² − 2τ⁴ + O(τ⁶),
  tangent to the identity at 0, so τ_ℓ → 0 only slowly, τ_ℓ² ≈ 1/(2ℓ) (printed as
  2ℓ·τ_ℓ², which tends to 1).

Figure ``deep_coefficients.png`` in ``--out`` (default: current directory): τ_ℓ, the CK
share α_{ℓ,1}τ_0²/τ_ℓ² and the NTK share β_{ℓ,1}τ_0²/κ_ℓ² against ℓ.

    python3 examples/deep_coefficients.py --depth 20 --out /tmp/deep

``--quick`` (the docs gallery, CI): depth 8 (tanh: 5, its moments are numeric).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import brentq

from ntk_theory.coefficients import NetworkCoefficients, coefficients

#: (label, activation, τ_0) of each network drawn
NETWORKS = (("ReLU, τ0 = 1", "relu", 1.0), ("erf, τ0 = 1", "erf", 1.0),
            ("erf, τ0 = 0.2", "erf", 0.2), ("tanh, τ0 = 1", "tanh", 1.0))
#: ReLU per-layer factors (closed forms): Var ReLU(τξ)/τ² and E[ReLU']²
RELU_VAR, RELU_M1SQ = 0.5 - 1 / (2 * math.pi), 0.25
#: float64 recursion vs closed form: ~depth × 1e-16 rounding; 1e-12 is a wide margin
RELU_RTOL = 1e-12


def erf_fixed_point() -> float:
    """τ* > 0 with (2/π) arcsin(2τ²/(1 + 2τ²)) = τ² (independent of the toolkit)."""
    g = lambda t: 2 / math.pi * math.asin(2 * t * t / (1 + 2 * t * t)) - t * t  # noqa: E731
    return brentq(g, 0.1, 2.0, xtol=1e-14)


def table(net: NetworkCoefficients) -> str:
    lines = ["  ℓ      τ_ℓ       α1        α2        α3        α4        β1        β2        β3       κ_ℓ"]
    for c in net.layers:
        vals = (c.tau, *c.alpha, *c.beta, c.kappa)
        lines.append(f" {c.layer:2d} " + " ".join(f"{v:9.3e}" for v in vals))
    return "\n".join(lines)


def figure(nets: dict[str, NetworkCoefficients], tau_star: float, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax_tau, ax_ck, ax_ntk = fig.subplots(1, 3)
    for label, net in nets.items():
        ell = np.arange(net.L + 1)
        t0sq = net.tau0**2
        ck = [1.0] + [c.alpha[0] * t0sq / c.tau**2 for c in net.layers]
        ntk = [1.0] + [c.beta[0] * t0sq / c.kappa**2 for c in net.layers]
        line, = ax_tau.semilogy(ell, net.taus, marker="o", ms=3, label=label)
        ax_ck.semilogy(ell, ck, marker="o", ms=3, color=line.get_color())
        ax_ntk.semilogy(ell, ntk, marker="o", ms=3, color=line.get_color())
    ax_tau.axhline(tau_star, ls="--", color="0.4", label=f"erf fixed point τ* = {tau_star:.4f}")
    ax_tau.set_title(r"scale $\tau_\ell$")
    ax_ck.set_title(r"CK: linear share $\alpha_{\ell,1}\tau_0^2/\tau_\ell^2$")
    ax_ntk.set_title(r"NTK: linear share $\beta_{\ell,1}\tau_0^2/\kappa_\ell^2$")
    for ax in (ax_tau, ax_ck, ax_ntk):
        ax.set_xlabel(r"layer $\ell$")
    ax_tau.legend(fontsize=8)
    fig.savefig(path, dpi=110)


def main() -> int:
    ap = argparse.ArgumentParser(description="Per-layer NTK coefficients of deep networks (docs/reference.rst §4)")
    ap.add_argument("--depth", type=int, default=16, help="number of layers L (default 16)")
    ap.add_argument("--quick", action="store_true", help="CI settings: depth 8 (tanh 5)")
    ap.add_argument("--out", default=".", help="directory for the PNG figure (default: current directory)")
    args = ap.parse_args()
    depth = 8 if args.quick else args.depth

    nets = {}
    for label, act, tau0 in NETWORKS:
        L = min(depth, 5) if (args.quick and act == "tanh") else depth
        nets[label] = net = coefficients([act] * L, tau0)
        print(f"\n{label}, L = {L}\n{table(net)}")

    # ReLU against its closed forms: τ_ℓ² = (1/2 − 1/(2π))^ℓ τ_0², α_{ℓ,1} = 4^(−ℓ)
    relu = nets["ReLU, τ0 = 1"]
    err = max(max(abs(c.tau**2 / (RELU_VAR**c.layer * relu.tau0**2) - 1),
                  abs(c.alpha[0] / RELU_M1SQ**c.layer - 1)) for c in relu.layers)
    print(f"\nReLU: max relative deviation from τ_ℓ² = (1/2 − 1/(2π))^ℓ τ0² and α_ℓ1 = 4^−ℓ: {err:.1e}")
    tanh = nets["tanh, τ0 = 1"]
    print(f"tanh: Var tanh(τξ) = τ² − 2τ⁴ + O(τ⁶) predicts τ_ℓ² ≈ 1/(2ℓ) for large ℓ; "
          f"2ℓ·τ_ℓ² at ℓ = {tanh.L}: {2 * tanh.L * tanh.taus[-1] ** 2:.3f}")
    tau_star = erf_fixed_point()
    ends = {lab: n.taus[-1] for lab, n in nets.items() if lab.startswith("erf")}
    print(f"erf fixed point τ* = {tau_star:.6f} (brentq on the arcsine formula); τ_L: "
          + ", ".join(f"{lab}: {t:.6f}" for lab, t in ends.items()))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    figure(nets, tau_star, out / "deep_coefficients.png")
    print(f"figure: {out / 'deep_coefficients.png'}")
    lo, hi = sorted(ends.values())
    if err > RELU_RTOL or not lo < tau_star < hi:
        print("FAILED: ReLU closed forms or the erf flow towards τ* (from both sides) not reproduced")
        return 1
    return 0


if __name__ == "__main__":
    # exit status only on failure: the docs gallery runs this file in-process (no SystemExit)
    status = main()
    if status:
        if "sphinx_gallery" in sys.modules:  # in the docs build a SystemExit would end it silently
            raise RuntimeError(f"example deep_coefficients.py failed with exit status {status} "
                               "(its error message is on stderr above)")
        raise SystemExit(status)
