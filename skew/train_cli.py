"""``skew train``'s command line: its arguments, light to import (no torch) so ``--help`` is quick.

The work itself is :func:`skew.train.run_cli`, imported when the command runs.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser(prog="skew")
    >>> p = add_cli(parser.add_subparsers(dest="command"))
    >>> parser.parse_args(["train", "--seeds", "0,1", "--quick"]).seeds
    [0, 1]
"""

from __future__ import annotations

import argparse

from skew._argtypes import float_list as _float_list
from skew._argtypes import names as _names
from skew._argtypes import out_path as _out_arg
from skew._argtypes import seed as _seed
from skew._argtypes import seed_list as _int_list

__all__ = ["DEFAULT_OUT", "DEFAULT_SCHEMES", "MODELS", "add_cli"]

#: The schemes compared by default (the paper's Table 3 set).
DEFAULT_SCHEMES = ("default", "xavier_uniform", "kaiming_normal", "orthogonal", "lsuv", "sinusoidal")
_OPTIMIZERS = ("sgd", "adam")
#: The models ``skew train`` trains on digits (their options: ``skew.train._MODEL_OPTIONS``).
MODELS = ("mlp", "cnn")
#: Where ``skew train`` writes by default: its own directory, never figures/ (only ``skew figures`` does).
DEFAULT_OUT = "skew-train"


def add_cli(subparsers) -> argparse.ArgumentParser:
    """Register ``skew train`` on an ``argparse`` sub-parsers object; returns its parser."""
    p = subparsers.add_parser(
        "train",
        help="train models on digits per init scheme: max val accuracy and AUC, curves, skew over training",
        description=(
            "Train the built-in MLP and CNN on sklearn's digits with each initialization scheme and seed; "
            "write training_table.csv/.md (max validation accuracy with patience early stop, AUC; mean ± "
            "std over seeds), training_curves.png and training_skew.png."
        ),
    )
    p.add_argument("--models", type=_names, default=None, help="comma-separated, e.g. mlp,cnn (default both)")
    p.add_argument("--inits", type=_names, default=None,
                   help=f"comma-separated scheme names (default {','.join(DEFAULT_SCHEMES)}; "
                        "with --weight-decay/--auto-wd: default)")
    p.add_argument("--seeds", type=_int_list, default=None, help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--epochs", type=int, default=None,
                   help="epoch budget per run (default 40; 10 with --quick)")
    p.add_argument("--patience", type=int, default=10, help="early-stop patience in epochs (default 10)")
    p.add_argument("--optimizer", choices=_OPTIMIZERS, default="sgd", help="default sgd (momentum 0.9)")
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate (default 0.01 for sgd, 1e-3 for adam)")
    p.add_argument("--batch-size", type=int, default=32, help="training batch size (default 32)")
    p.add_argument("--track-every", type=int, default=None,
                   help="Tracker period in steps (default: each epoch)")
    p.add_argument("--quick", action="store_true",
                   help="small run: mlp, seeds 0,1, 10 epochs (about 15 s)")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads torch trains with (default 1, as skew figures: these small models gain "
                        "nothing from more, and on busy cores 2 threads made --quick 20-30x slower)")
    p.add_argument("--seed", type=_seed, default=0,
                   help="data seed: the train/validation split is drawn from its data stream (skew.seeding); "
                   "each run's init, batch order and dropout come from its own --seeds value (default 0)")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show the full traceback on errors")
    p.add_argument("--out", type=_out_arg, default=DEFAULT_OUT,
                   help=f"output directory (default {DEFAULT_OUT}; `skew figures` writes the figures/ copy)")
    wd = p.add_argument_group(
        "weight decay (OUI paper)",
        "with --weight-decay and/or --auto-wd, sweep the weight decay instead of comparing inits: write "
        "training_wd_table.csv/.md (final training OUI, max val accuracy, AUC per weight decay; whether the "
        "OUI band 0.6-0.8 picked the best one), training_wd_curves.png and training_wd_structure.png "
        "(pattern_change and weight_change: does the structure settle before the weights?)",
    )
    wd.add_argument("--weight-decay", type=_float_list, default=None, metavar="LIST",
                    help="comma-separated weight decays, e.g. 0,1e-4,1e-3,1e-2 (default 30 epochs, seeds 0,1)")
    wd.add_argument("--auto-wd", action="store_true",
                    help="also run the OUI authors' weight-decay controller (skew.train.OUIWeightDecay)")
    wd.add_argument("--oui-at", choices=("layers", "activations"), default=None,
                    help="where the training OUI is read (default activations, as the OUI authors: skew.train_wd.OUI_AT)")
    p.set_defaults(func=_run)
    return p




def _run(args: argparse.Namespace) -> int:
    from skew.train import run_cli

    return run_cli(args)
