"""Copy a finished training run's weights into the package, with the record of how they were made.

    python scripts/ship_unet.py RUN_FOLDER --dataset-command "mmrecon dataset ..." [--note "..."]

Writes src/napari_mmrecon/weights/unet.pt (the run's unet.pt, unchanged) and unet.json beside it:
the dataset's and the training's commands, the data recipe and seeds, the commits, the held-out
(validation) metrics of the last epoch and the loss curve. Refuses a run that is not finished.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path

from napari_mmrecon.backend.learn.unet import load_checkpoint

WEIGHTS = Path(__file__).parents[1] / "src" / "napari_mmrecon" / "weights"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="the training run folder (mmrecon train -o)")
    parser.add_argument("--dataset-command", required=True, help="the command that wrote the training data")
    parser.add_argument("--note", default="", help="anything else a reader must know about the run")
    args = parser.parse_args()
    run = json.loads((args.run / "run.json").read_text())
    if not run.get("finished"):
        raise SystemExit(f"{args.run} is not a finished training run")
    model, meta = load_checkpoint(args.run / "unet.pt")
    with open(args.run / "loss.csv", newline="") as f:
        curve = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    WEIGHTS.mkdir(exist_ok=True)
    shutil.copyfile(args.run / "unet.pt", WEIGHTS / "unet.pt")
    shutil.copyfile(args.run / "loss.png", WEIGHTS / "loss.png")
    record = {
        "weights": "unet.pt", "network": model.config(),
        "data": {"command": args.dataset_command, "path": meta["data"], "seed": meta["dataset_seed"],
                 "git_commit": meta["dataset_git_commit"], "recipe": meta["recipe"], "views": meta["views"],
                 "mfm_tip": meta["mfm_tip"], "cantilever": meta["cantilever"],
                 "training_samples": meta["training_samples"], "data_ranges": meta["data_ranges"]},
        "command": meta["command"], "git_commit": meta["git_commit"], "seed": meta["seed"],
        "settings": meta["settings"], "epochs": meta["epochs"], "training_ranges": meta["training_ranges"],
        "heldout": meta["metrics"], "loss_curve": curve, "note": args.note, "created": meta["created"],
    }
    (WEIGHTS / "unet.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {WEIGHTS / 'unet.pt'} and unet.json (held-out angle {meta['metrics'].get('val_angle_deg')})")


if __name__ == "__main__":
    main()
