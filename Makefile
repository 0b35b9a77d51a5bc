# The two commands a new user needs: `make demo` (set up, then run) and `make test`.
PYTHON ?= python3
PIP = $(PYTHON) -m pip

.PHONY: setup system-deps python-deps demo test train train-noflite bench-encode bench-ask

setup: system-deps python-deps

# TTS voices and sox for speech; chromium for the browser test of `seal-rag serve`'s page;
# wordnet-base for its glosses, a training text (training/text_sources.py), without its
# recommends: they would add man pages to the prose.
system-deps:
	@if ! command -v espeak-ng >/dev/null || ! command -v flite >/dev/null || ! command -v sox >/dev/null \
	    || ! command -v chromium >/dev/null; then \
	  apt-get update -qq && apt-get install -y -qq espeak-ng flite sox libsndfile1 chromium >/dev/null; fi
	@if [ ! -f /usr/share/wordnet/data.noun ]; then \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends wordnet-base >/dev/null; fi

python-deps:
	# torch first and pinned: pip then takes the CPU build from the local wheel directory.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev]'
	$(PIP) install -q -e 'integrations/llama-index-seal[openai]' -e 'integrations/langchain-seal[openai,test]'
	@# pyenv only sees new console scripts (seal-rag) after a rehash.
	@if command -v pyenv >/dev/null; then pyenv rehash; fi

DEMO_DB ?= .seal_rag/demo
DEMO_MODE ?= speech

demo: setup
	$(PYTHON) -m seal_rag.cli ingest demos/kb --db $(DEMO_DB)
	$(PYTHON) -m seal_rag.cli ask demos/questions/q5.wav --db $(DEMO_DB) --mode $(DEMO_MODE) -k 3 --timings
	$(PYTHON) demos/quickstart.py

test: setup
	$(PYTHON) -m pytest -q

# The recipe of the shipped model, from scratch: resumable, about 8 h on 2 cores; rerun after
# any interruption. One flat config per step, in order (training/configs/, each says what it
# does and why): steps 1-5 train the semantic half, each continuing the head of the one before;
# step 5's is released; step 6 trains the phonetic half and adds it to the released model.
# Steps 4 and 5 each cache only their glosses' shards, after the step before has trained:
# caching a larger plan refills the smaller plan's last, partial shard.
RECIPE = training/configs/seal-base-minilm
# Stage 1, then stage 2, of config $(1); each resumes if rerun.
stages = $(PYTHON) -m training.stage1 --config $(1) && $(PYTHON) -m training.stage2 --config $(1)
train: setup
	sh training/run_cache.sh $(RECIPE)-1-pooled.toml
	$(call stages,$(RECIPE)-1-pooled.toml)
	$(call stages,$(RECIPE)-2-token.toml)
	$(call stages,$(RECIPE)-3-reader.toml)
	sh training/run_cache.sh $(RECIPE)-4-glosses.toml
	$(call stages,$(RECIPE)-4-glosses.toml)
	sh training/run_cache.sh $(RECIPE)-5-more-glosses.toml
	$(call stages,$(RECIPE)-5-more-glosses.toml)
	$(PYTHON) -m training.release --config $(RECIPE)-5-more-glosses.toml
	sh training/run_cache.sh $(RECIPE)-6-phonetic.toml
	$(PYTHON) -m training.phonetic --config $(RECIPE)-6-phonetic.toml
	$(PYTHON) -m training.phonetic --config $(RECIPE)-6-phonetic.toml --release seal_rag/models/seal-base-minilm

# Issue 32's experiment, not shipped: the shipped model with a recognizer that never heard flite
# (espeak-ng and piper speak its clips), so flite can benchmark the model as served: asked of a
# knowledge base, its semantic half is spelled from the decoded phonemes (seal_rag/spelling.py),
# learned from no voice (training/README.md, Splits). Its recognizer learns 60,000 clips. About 4 h 15 min
# on 2 cores; resumable.
NOFLITE_PHONETIC = training/experiments/configs/phonetic_espeak_piper_60k.toml
NOFLITE_DIR ?= $(HOME)/.cache/seal_rag/models/noflite
train-noflite: setup
	sh training/run_cache.sh $(NOFLITE_PHONETIC)
	$(PYTHON) -m training.phonetic --config $(NOFLITE_PHONETIC)
	rm -rf $(NOFLITE_DIR) && mkdir -p $(NOFLITE_DIR)
	cp seal_rag/models/seal-base-minilm/config.json seal_rag/models/seal-base-minilm/model.safetensors $(NOFLITE_DIR)/
	$(PYTHON) -m training.phonetic --config $(NOFLITE_PHONETIC) --release $(NOFLITE_DIR)

bench-encode: setup
	$(PYTHON) -m seal_rag.bench.encode

bench-ask: setup
	$(PYTHON) -m seal_rag.bench.ask
