"""Recompute the Fréchet floor of result files at their own sample size.

Run:  .venv/bin/python benchmarks/recipe/refloor.py benchmarks/results/recipe/X.json ...

The first screening runs stored the floor at n = 1,000 beside distances measured on 500
samples; the floor depends only on the data, so it is recomputed here with quality.py's
function at each file's n (floor_n) and written back.
"""

import json
import sys
from pathlib import Path

from quality import frechet_floor_heldout

from diffusion_lessons.data import load_digits
from diffusion_lessons.lesson07_classifier import feature_stats, load_classifier

classifier = load_classifier()
held_x, _ = load_digits("mnist-5k", "test")
train_x, _ = load_digits("mnist-5k", "train")
reference = feature_stats(classifier, held_x)
for name in sys.argv[1:]:
    r = json.loads(Path(name).read_text())
    r["floor"], r["floor_n"] = frechet_floor_heldout(
        classifier, train_x, reference, r["n"]
    )
    Path(name).write_text(json.dumps(r, indent=1))
    print(f"{name}: n {r['n']}, floor {r['floor']:.2f}")
