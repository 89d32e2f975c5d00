"""Do two checkpoints hold the same EMA weights, bit for bit?

Run:  .venv/bin/python benchmarks/recipe/same_weights.py A.pt B.pt

Prints ``same`` or ``different`` (and exits 1): the shipped run and the lever run of the
same configuration and seed should be the same model, so the lever's results score it.
"""

import sys

import torch


def main() -> None:
    a, b = (
        torch.load(p, map_location="cpu", weights_only=False)["ema"]
        for p in sys.argv[1:3]
    )
    same = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    print("same" if same else "different")
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
