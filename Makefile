# DeepSync: the table of contents. `make help` lists the targets.
# Stages skip work already done (keyed by the config in Python, not by file times).

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DS     := $(BIN)/deepsync

# Optional settings, passed through to the CLI when given:
#   SOURCE=synthetic|kaggle|dir   DATA_DIR=/path   KAGGLE_DATASET=owner/slug
#   PROFILE=file.toml             SET="section.key=value ..."
#   BENCH_ARGS="--files 12 --reps 3" (bench-features), "--steps 20 --variants bf16,bf16-cl"
#              (bench-train; it uses PROFILE=gpu-inception unless given),
#              "--sizes 32,16 --models baseline,feng_knn" (bench-scale)
#   SUBMIT=1 MSG="..." (make submit sends to Kaggle)   KAGGLE=1 (make leaderboard asks Kaggle)
#   FILE=path.csv (validate, score)   FILES="a.csv b.csv" WEIGHTS=2,1 OUT=path.csv (blend)
#   STUDY="--only a,b --seeds 1,2 --scenarios band,spikes --grid file.toml" (make study: the
#          scenario grid on PROFILE=scenarios; given another PROFILE, its default grid)
#   PATIENTS="1 2 3" (make kernel: one kernel per patient; kernels use PROFILE=gpu unless given)
SOURCE         ?=
DATA_DIR       ?=
KAGGLE_DATASET ?=
PROFILE        ?=
SET            ?=
BENCH_ARGS     ?=
SUBMIT         ?=
MSG            ?=
KAGGLE         ?=
FILE           ?=
FILES          ?=
WEIGHTS        ?=
OUT            ?= submissions/blend.csv
PATIENTS       ?=
STUDY          ?=

GLOBAL_ARGS := $(if $(PROFILE),--profile $(PROFILE)) $(foreach s,$(SET),--set $(s))
DEMO_ARGS   := --profile $(or $(PROFILE),demo) $(foreach s,$(SET),--set $(s))
STUDY_ARGS  := --profile $(or $(PROFILE),scenarios) $(foreach s,$(SET),--set $(s))
STUDY_GRID  := --grid $(if $(PROFILE),default,scenarios)
KERNEL_ARGS := --profile $(or $(PROFILE),gpu) $(foreach s,$(SET),--set $(s))
DATA_ARGS   := $(if $(SOURCE),--source $(SOURCE)) $(if $(DATA_DIR),--data-dir $(DATA_DIR)) \
               $(if $(KAGGLE_DATASET),--kaggle-dataset $(KAGGLE_DATASET))

.PHONY: help setup data features train leak-check submit validate score blend leaderboard report \
        kernel kernel-local kaggle-dataset kernel-push kernel-status kernel-output \
        bench-features bench-scale clean-scale bench-train demo study test test-all lint format clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements.txt
	$(BIN)/python -m pip install --disable-pip-version-check -q --no-deps -e .
	@touch $@

setup: $(VENV)/.installed ## create .venv from requirements.txt (once; reused after)

data: setup ## fetch or generate the segments, verify them, write the segment index
	$(DS) $(GLOBAL_ARGS) data $(DATA_ARGS)

features: setup ## cache per-electrode log spectrograms and band powers (resumable)
	$(DS) $(GLOBAL_ARGS) features

train: setup ## fit train.models (baseline, CNN, window models) per patient on hour-grouped folds
	$(DS) $(GLOBAL_ARGS) train

leak-check: setup ## the baseline's CV AUC on hour-grouped vs hour-blind folds
	$(DS) $(GLOBAL_ARGS) train --leak-check

submit: setup ## write, validate and score the run's submission; SUBMIT=1 MSG="..." sends it
	$(DS) $(GLOBAL_ARGS) submit $(if $(SUBMIT),--submit) $(if $(MSG),--message "$(MSG)")

validate: setup ## check FILE=path.csv against the sample submission
	@test -n "$(FILE)" || { echo "make validate: give FILE=path/to/submission.csv" >&2; exit 2; }
	$(DS) $(GLOBAL_ARGS) validate $(FILE)

score: setup ## FILE=path.csv's pooled AUC on the Public (and Private) test files
	@test -n "$(FILE)" || { echo "make score: give FILE=path/to/submission.csv" >&2; exit 2; }
	$(DS) $(GLOBAL_ARGS) score $(FILE)

blend: setup ## rank-average FILES="a.csv b.csv" (WEIGHTS=2,1) into OUT
	@test -n "$(FILES)" || { echo 'make blend: give FILES="a.csv b.csv"' >&2; exit 2; }
	$(DS) $(GLOBAL_ARGS) blend $(FILES) $(if $(WEIGHTS),--weights $(WEIGHTS)) --out $(OUT)

leaderboard: setup ## local CV vs public and private scores; KAGGLE=1 reads Kaggle's back
	$(DS) $(GLOBAL_ARGS) leaderboard $(if $(KAGGLE),--kaggle)

report: setup ## one HTML page of pictures for the run (reports/<run>/index.html)
	$(DS) $(GLOBAL_ARGS) report

kernel: setup ## render Kaggle kernel bundles in kernels/ (PATIENTS="1 2 3": one per patient)
	$(DS) $(KERNEL_ARGS) kernel $(if $(PATIENTS),--patients $(PATIENTS))

kernel-local: setup ## run the rendered kernel scripts here, inputs laid out as on Kaggle
	$(DS) $(KERNEL_ARGS) kernel-local

kaggle-dataset: setup ## upload the feature cache (or the segments) as a private Kaggle dataset
	$(DS) $(KERNEL_ARGS) kaggle-dataset

kernel-push: setup ## push the rendered kernels to Kaggle
	$(DS) $(KERNEL_ARGS) kernel-push

kernel-status: setup ## a table of the pushed kernels' states
	$(DS) $(KERNEL_ARGS) kernel-status

kernel-output: setup ## fetch the kernels' outputs, merge the patients, make the submission
	$(DS) $(KERNEL_ARGS) kernel-output

bench-features: setup ## benchmark the feature stage against loadmat and scipy (prints figures)
	$(BIN)/python -m deepsync.bench.features $(BENCH_ARGS)

bench-scale: setup ## every stage at 1/32..1/4 of the real size: seconds, peak RSS, growth, projection
	$(BIN)/python -m deepsync.bench.scale $(BENCH_ARGS)

clean-scale: ## remove the bench-scale sets (data/scale)
	rm -rf data/scale

bench-train: setup ## CNN training speed: fp32, bf16, channels_last, compile, the loader (GPU)
	$(BIN)/python -m deepsync.bench.train --profile $(or $(PROFILE),gpu-inception) \
		$(foreach s,$(SET),--set $(s)) $(BENCH_ARGS)

study: setup ## every variant on each preictal scenario (or PROFILE's one set): one table
	$(DS) $(STUDY_ARGS) study $(STUDY_GRID) $(STUDY)

demo: setup ## data to submission on the embedded synthetic set (demo profile, CPU)
	$(DS) $(DEMO_ARGS) data --source synthetic
	$(DS) $(DEMO_ARGS) features
	$(DS) $(DEMO_ARGS) train
	$(DS) $(DEMO_ARGS) submit
	$(DS) $(DEMO_ARGS) report

test: setup ## the test suite (no GPU, no network)
	$(BIN)/python -m pytest

test-all: setup ## the test suite with the slow end-to-end tests
	$(BIN)/python -m pytest -m ''

lint: setup ## ruff lint and format check
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

format: setup ## ruff format and fix
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

clean: ## remove generated data, caches, runs and reports (keeps .venv and submissions/)
	rm -rf data runs cache reports
