"""Carry a run folder's state over a change of the resume key that leaves its contents valid.

Since the MAD-PINN settings were taken out of the samples' resume key (they decide only the
baselines stage), a folder made before that change holds ``run.json`` and ``samples.pt`` keyed on
settings that include them. This script re-saves both under the current key, after checking that
the stored files are intact (their digests) and that their settings differ from the current ones
*only* by the keys the current key leaves out; anything else is refused.

    python scripts/rekey_run.py results/full/kdv
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from madng_lite.io import CheckpointError, load_json_state, load_state, save_json_state, save_state

DROPPED = lambda k: k.startswith("pinn_") or k == "n_baseline"  # noqa: E731


def rekey(folder: Path) -> None:
    run_env = json.loads((folder / "run.json").read_text())
    old = run_env["settings"]
    new = dict(old, config={k: v for k, v in old["config"].items() if not DROPPED(k)})
    if new == old:
        print(f"{folder}: already under the current key")
        return
    run = load_json_state(folder / "run.json", "run", old)                       # intact?
    samples_env = torch.load(folder / "samples.pt", weights_only=True)
    if json.loads(json.dumps(samples_env["settings"])) != old:
        raise CheckpointError(f"{folder}: run.json and samples.pt were made under different settings")
    samples = load_state(folder / "samples.pt", "samples", samples_env["settings"])
    save_state(folder / "samples.pt", "samples", samples, new)
    save_json_state(folder / "run.json", "run", run, new)
    print(f"{folder}: re-keyed (dropped {sorted(k for k in old['config'] if DROPPED(k))})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+")
    for f in ap.parse_args().folders:
        rekey(Path(f))
    return 0


if __name__ == "__main__":
    sys.exit(main())
