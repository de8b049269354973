"""``jaxsel simulate``: write a digital-twin experiment as a static folder plus ground truth."""

from __future__ import annotations

import difflib
from pathlib import Path

from jaxsel.cli._help import HelpFormatter, examples


def add_parser(sub) -> None:
    p = sub.add_parser(
        "simulate",
        help="simulate the digital-twin V1 population and write it to disk",
        description="Simulate an experiment on the digital twin (a V1 population with known "
        "ground truth) and write OUT/static (a Sensorium/Lurz static folder any "
        "loader reads) and OUT/ground_truth (parameters, true reliability, "
        "noise-free response function inputs). OUT must be new or empty unless "
        "--force; nothing is left half-written on failure.",
        epilog=examples(
            "jaxsel simulate --out runs/twin --neurons 300 --seed 3",
            "jaxsel simulate --out runs/twin-pink --stimuli pink --test 50 --repeats 20",
            "jaxsel simulate --out runs/mice --sessions 3 --neurons 200",
            "jaxsel simulate --out runs/twin-calcium --preset sensorium",
        ),
        formatter_class=HelpFormatter,
    )
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument(
        "--preset",
        default="clean",
        metavar="NAME",
        help="start from this twin preset: clean (spike counts, very reliable), sensorium "
        "(calcium-like responses, Sensorium 2022 trial counts and reliability), allen "
        "(Neuropixels spike counts, 118 images x 50 repeats); the options below change it",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--neurons", type=int, default=300, help="number of neurons")
    p.add_argument("--train", type=int, help="train images (clean: 4000, shown once)")
    p.add_argument("--validation", type=int, help="validation images (clean: 500)")
    p.add_argument("--test", type=int, help="test images (clean: 100)")
    p.add_argument("--repeats", type=int, help="repeats per test image (clean: 10)")
    p.add_argument(
        "--stimuli",
        choices=("dead_leaves", "pink", "mix"),
        help="stimulus family (clean: dead_leaves)",
    )
    p.add_argument(
        "--sessions",
        type=int,
        default=None,
        metavar="S",
        help="simulate S sessions (animals) with behaviour and eye position: writes "
        "OUT/sessions/<id> (static folders with data/behavior and data/pupil_center; "
        "load_sessions reads them) and OUT/ground_truth/<id>",
    )
    p.add_argument(
        "--shared-images",
        action="store_true",
        help="with --sessions: show every session the same images",
    )
    p.add_argument("--force", action="store_true", help="replace an existing OUT")
    p.set_defaults(run=run)


_OPTIONS = {
    "--neurons": ("neurons", 1, "n_neurons"),
    "--train": ("train", 1, "n_train"),
    "--validation": ("validation", 1, "n_validation"),
    "--test": ("test", 1, "n_test"),
    "--repeats": ("repeats", 2, "test_repeats"),
}


def run(args) -> int:
    from jaxsel._errors import ConfigError
    from jaxsel.data import TWIN_PRESETS, write_twin

    if args.preset not in TWIN_PRESETS:
        close = difflib.get_close_matches(args.preset, list(TWIN_PRESETS), n=1, cutoff=0.5)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ConfigError(
            f"--preset {args.preset}: unknown twin preset ({hint}valid presets: "
            f"{', '.join(TWIN_PRESETS)})"
        )
    fields = {}
    for opt, (attr, lo, field) in _OPTIONS.items():
        v = getattr(args, attr)
        if v is None:
            continue
        if v < lo:
            why = " (the oracle correlation needs each test image shown at least twice)"
            raise ConfigError(
                f"{opt} {v}: expected an integer >= {lo}" + (why if attr == "repeats" else "")
            )
        fields[field] = v
    if args.stimuli is not None:
        fields["stimuli"] = args.stimuli
    if args.sessions is not None or args.shared_images:
        return _run_sessions(args, fields)
    ds, twin = write_twin(args.out, force=args.force, seed=args.seed, preset=args.preset, **fields)
    kinds = {k: int((twin.kinds == k).sum()) for k in sorted(set(twin.kinds))}
    print(
        f"simulated {ds.sizes['neuron']} neurons x {ds.sizes['trial']} trials "
        f"({', '.join(f'{v} {k}' for k, v in kinds.items())}), preset {args.preset}"
    )
    print(f"dataset:      {args.out / 'static'}")
    print(f"ground truth: {args.out / 'ground_truth'}")
    return 0


def _run_sessions(args, fields: dict) -> int:
    from jaxsel._errors import ConfigError
    from jaxsel.data import write_twin_sessions

    if args.sessions is None or args.sessions < 1:
        raise ConfigError(
            f"--sessions {args.sessions}: expected an integer >= 1"
            + (" (--shared-images needs --sessions S)" if args.sessions is None else "")
        )
    sessions, _ = write_twin_sessions(
        args.out,
        force=args.force,
        seed=args.seed,
        n_sessions=args.sessions,
        shared_images=args.shared_images,
        preset=args.preset,
        **fields,
    )
    ds = next(iter(sessions.values()))
    print(
        f"simulated {len(sessions)} sessions x {ds.sizes['neuron']} neurons x "
        f"{ds.sizes['trial']} trials, with behaviour and pupil centre"
    )
    print(f"sessions:     {args.out / 'sessions'}")
    print(f"ground truth: {args.out / 'ground_truth'}")
    return 0
