# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# On a cluster: `make install-gpu VENV=/shared/me/embedpipe-venv`, then `make doctor` (docs/cluster.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch first, pinned: the CPU build of 2.13.0 lies on disk on the build machines; a plain
# `torch` requirement would pull a multi-GB CUDA build instead.
TORCH_SPEC ?= torch==2.13.0
# install-gpu: the PyTorch wheel index of the CUDA build. cu130 is the build PyPI's own Linux wheel of
# torch 2.13.0 is (it requires cuda-toolkit 13.0: NVIDIA driver 580 or newer); for an older driver name
# a cu12x index PyTorch publishes for TORCH_SPEC's version (https://pytorch.org/get-started/locally/).
TORCH_INDEX ?= https://download.pytorch.org/whl/cu130
# make doctor CONFIG=<run.yaml>: check what that run needs (without it: a report only)
CONFIG ?=
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: demo test test-fast lint docs dag clean install-gpu doctor

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

# A GPU install, in a venv at VENV (on a cluster: a path on the filesystem the compute nodes mount): the
# CUDA build of torch from TORCH_INDEX, then embedpipe with the [gpu] extra (editable: this checkout
# is the code the jobs run). Rerunning it is safe; it ends with the doctor's report of this machine.
install-gpu:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "embedpipe needs Python 3.11 or newer: \
	make install-gpu PYTHON=python3.11 (module load python/3.11, or a conda env with python=3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q --index-url "$(TORCH_INDEX)" "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[gpu]"
	$(BIN)/python -m embedpipe doctor
	@echo ""
	@echo "Installed in $(abspath $(VENV)). On a GPU node: make doctor VENV=$(VENV) CONFIG=<run.yaml>,"
	@echo "or: $(BIN)/snakemake doctor --profile profiles/slurm --configfile <run.yaml>"

# What a job finds here (torch, GPUs, decoders, folders, the Hub token by name); exit 1 when CONFIG's run
# needs what is missing. Needs an installed VENV (make install-gpu, or make demo).
doctor:
	@test -x $(BIN)/python || { echo "no $(BIN)/python: make install-gpu VENV=$(VENV) (or make demo) first"; exit 1; }
	$(BIN)/python -m embedpipe doctor $(if $(CONFIG),--config $(CONFIG))

# A trial of the video demo first (2 files a shard): its plan predicts the full demo, whose card then
# holds the prediction against what the run took.
demo: $(BIN)/.installed
	$(BIN)/snakemake --cores 2 --configfile config/demo.yaml --config extract='{limit: 2}'
	$(BIN)/snakemake --cores 2 --configfile config/demo.yaml
	$(BIN)/snakemake --cores 2 --configfile config/demo_audio.yaml
	$(BIN)/snakemake export_json --cores 2 --configfile config/demo_audio.yaml
	$(BIN)/snakemake --cores 2 --configfile config/demo_ecg.yaml
	$(BIN)/snakemake export_ecg_json --cores 2 --configfile config/demo_ecg.yaml
	$(BIN)/snakemake --cores 2 --configfile config/demo_ecg_jepa.yaml
	$(BIN)/snakemake --cores 2 --configfile config/demo_pretrain.yaml
	$(BIN)/snakemake --cores 2 --configfile config/demo_image.yaml
	$(BIN)/snakemake export_pt --cores 2 --configfile config/demo_image.yaml
	@echo ""
	@echo "Demo done."
	@echo "  Audio (Metis)   : results/demo-audio/parquet/, results/demo-audio/export/semantic_audio_embeddings.json"
	@echo "  ECG (ECGFounder): results/demo-ecg/parquet/, results/demo-ecg/export/ecgfounder_json/"
	@echo "  ECG (ECG-JEPA)  : results/demo-ecg-jepa/parquet/"
	@echo "  MyJEPA pretrain : results/demo-pretrain/pretrain/{final.pt,metrics.csv,loss.png}, results/demo-pretrain/{parquet,evaluation}/"
	@echo "  Images (V-JEPA 2): results/demo-image/parquet/ (+ tokens/), results/demo-image/export/deepearth_pt/"
	@echo "  Parquet dataset : results/demo/parquet/"
	@echo "  merge_all       : results/demo/vjepa2-tiny_embeddings_all.{pt,npy,keys.txt}"
	@echo "  Dataset card    : results/demo/parquet/README.md (its Plan against actual: the trial's prediction)"
	@echo "  Plan (trial)    : results/demo-trial2/plan.json, results/demo-trial2/plan.md"
	@echo "  Errors          : results/demo/embeddings/*.errors.parquet"
	@echo "  Metrics         : results/demo/validation/metrics.json"
	@echo "  Report          : $(abspath results/demo/validation/report.html)"

# Two workers, a test file each at a time: a file's module fixtures (a whole run) are made once, and
# the SLURM tests, which share the one test cluster, never run on both workers at once.
test: $(BIN)/.installed
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder

# --strict: a page missing from mkdocs.yml's nav, a broken link or anchor fails the build.
docs: $(BIN)/.installed
	$(BIN)/mkdocs build --strict --site-dir site

# The unit tier: everything but the tests that run Snakemake or the SLURM cluster (a few minutes).
test-fast: $(BIN)/.installed
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder -m "not workflow and not slurm"

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/snakemake --lint --configfile config/demo.yaml

dag: $(BIN)/.installed
	$(BIN)/snakemake --configfile config/demo.yaml --dag | dot -Tsvg > dag.svg

clean:
	rm -rf results logs .snakemake
