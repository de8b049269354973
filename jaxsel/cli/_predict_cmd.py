"""``jaxsel predict MODEL IMAGES.npy --out R.nc``: a saved model's rates for raw images."""

from __future__ import annotations

from pathlib import Path

from jaxsel._errors import DataError
from jaxsel.cli._help import HelpFormatter, examples


def add_parser(sub) -> None:
    p = sub.add_parser(
        "predict",
        help="predict responses of a saved model to images",
        description="Load a model folder written by save_model (or by the pipeline's train "
        "stage: RUN/models/NAME/model), run it on raw images from a .npy file "
        "(n, channel, y, x) or (n, y, x), in the training data's pixel units, "
        "and write a netCDF file with the variable 'responses' (image, neuron) "
        "and coords neuron_id (+ area/session when the model has them). No "
        "dataset is needed. OUT is written atomically.",
        epilog=examples(
            "jaxsel predict runs/demo/models/small/model images.npy --out responses.nc",
        ),
        formatter_class=HelpFormatter,
    )
    p.add_argument("model", type=Path, help="saved model folder")
    p.add_argument("images", type=Path, help=".npy file of raw images")
    p.add_argument("--out", required=True, type=Path, help="output netCDF file (.nc)")
    p.add_argument("--batch-size", type=int, default=256, help="images per model call")
    p.add_argument("--force", action="store_true", help="replace an existing OUT")
    p.set_defaults(run=run)


def _read_images(path: Path):
    import numpy as np

    if not path.is_file():
        raise DataError(
            "no such file",
            file=path,
            field="images",
            expected="a .npy file of raw images (n, channel, y, x) or (n, y, x)",
        )
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise DataError(
            f"cannot read it as .npy ({err})",
            file=path,
            field="images",
            expected="a .npy file written by numpy.save",
        ) from None


def run(args) -> int:
    from jaxsel.pipeline import save_nc
    from jaxsel.train import load_model, predict_responses

    out = Path(args.out)
    if out.exists() and not args.force:
        raise DataError(
            "exists", file=out, field="--out", expected="a new file; pass --force to replace it"
        )
    if not out.parent.is_dir():
        raise DataError(
            "the folder does not exist",
            file=out.parent,
            field="--out",
            expected="an existing folder for the output file",
        )
    model = load_model(args.model)
    images = _read_images(Path(args.images))
    try:
        responses = predict_responses(model, images, batch_size=args.batch_size)
    except DataError as err:
        raise DataError(f"{err}", file=args.images) from None
    save_nc(responses, out)
    print(
        f"predicted {responses.sizes['neuron']} neurons x {responses.sizes['image']} images "
        f"-> {out}"
    )
    return 0
