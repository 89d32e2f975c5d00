# diffusion-lessons: the two commands of the README, and the steps behind them.
#   make tour   set up, run every lesson on the offline default (figures + summary), build the docs site
#   make test   set up, run the whole test suite (property tests, lessons, docs build, browser test)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
OUT    ?= tour-output
export OMP_NUM_THREADS ?= 2
export HF_HUB_OFFLINE ?= 1

.PHONY: tour test lint setup system-deps figures benchmarks docs docs-instructor serve clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[docs,test,diffusers]'
	touch $@

setup: $(VENV)/.installed

# Debian packages: Chromium for the browser test, Fashion-MNIST for the offline "going further" lesson.
system-deps:
	@if [ ! -x /usr/bin/chromium ] || [ ! -d /usr/share/datasets/fashion-mnist ]; then \
	  if command -v apt-get >/dev/null; then \
	    SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	    $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium dataset-fashion-mnist >/dev/null; \
	  else echo "Install Chromium (for the browser test) with your system's package manager."; fi; \
	fi

tour: setup
	$(BIN)/diffusion-lessons tour --out $(OUT)
	$(BIN)/mkdocs build --strict --site-dir site
	@echo "Figures and summary: $(OUT)/   Docs site: site/index.html (or: make serve)"

test: setup system-deps lint
	$(BIN)/python -m pytest -q

# The code is read on the site: 88 columns, formatted and linted (ruff, configured in pyproject.toml).
LINTED := diffusion_lessons tests benchmarks docs/hooks docs/notebooks docs/instructors/solutions
lint: setup
	$(BIN)/ruff format --check --quiet $(LINTED)
	$(BIN)/ruff check --quiet $(LINTED)

# Every figure and result file of the docs site, from the shipped checkpoints (each script's docstring
# gives its running time).
figures: setup
	$(BIN)/diffusion-lessons figures
	$(BIN)/diffusion-lessons evaluate --checkpoint checkpoints/small.pt --per-digit 100 --guidance 0 \
	    --json docs/figures/07_evaluate_w0.json \
	    --figure docs/figures/08_clip_vs_classifier.png > docs/figures/07_evaluate_w0.txt
	$(BIN)/diffusion-lessons evaluate --checkpoint checkpoints/small.pt --per-digit 100 \
	    --json docs/figures/07_evaluate.json > docs/figures/07_evaluate.txt
	$(BIN)/python benchmarks/sampler_steps.py
	$(BIN)/python benchmarks/skip_ablation.py
	$(BIN)/python benchmarks/recipe/report.py --figure
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/finetune_on_top.py

# Speed and time-to-quality measurements (benchmarks/results/); the second needs the run folder runs/small.
benchmarks: setup
	$(BIN)/python benchmarks/training_speed.py --threads 1 2
	$(BIN)/python benchmarks/sampling_speed.py
	$(BIN)/python benchmarks/time_to_quality.py --run runs/small --per-digit 30
	$(BIN)/python benchmarks/sampler_quality.py --per-digit 50

# The student site (no answer key) into site/, and the instructor site (with it) into site-instructor/.
docs: setup
	$(BIN)/mkdocs build --strict --site-dir site

docs-instructor: setup
	$(BIN)/mkdocs build --strict -f mkdocs-instructor.yml --site-dir site-instructor

serve: setup
	$(BIN)/mkdocs serve

clean:
	rm -rf site site-instructor $(OUT) .pytest_cache .hypothesis
