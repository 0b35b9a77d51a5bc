# The two commands a new user needs: `make demo` (set up, then run) and `make test`.
PYTHON ?= python3
PIP = $(PYTHON) -m pip

.PHONY: setup system-deps python-deps demo test train bench-encode bench-ask

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

# The full recipe: resumable, hours on 2 cores; rerun after any interruption.
TRAIN_CONFIG ?= training/configs/more.toml
# The shipped model continues TRAIN_CONFIG's stage-1 head as a token-level head (TOKEN_CONFIG),
# tunes MiniLM's bottom 2 layers with it (READER_CONFIG; its stage 1 is reader_tuned2's), then
# hears WordNet's glosses too (GLOSS_CONFIG), then more of them (SHIP_CONFIG). Each of the last
# two caches only its glosses' shards, after the config before it has trained: caching a larger
# plan refills the smaller plan's last, partial shard.
TOKEN_CONFIG ?= training/configs/ablations/more_token.toml
READER_CONFIG ?= training/configs/ablations/reader_tuned2_less_mse.toml
GLOSS_CONFIG ?= training/configs/ablations/wordnet.toml
SHIP_CONFIG ?= training/configs/ablations/wordnet_more.toml
# The phonetic half (training/phonetic.py) trains on 30,000 of SHIP_CONFIG's clips cached one
# layer below Whisper's top (ablations/top1.toml's cache) and is added to the released model.
PHONETIC_CONFIG ?= training/configs/phonetic.toml
# Stage 1, then stage 2, of config $(1); each resumes if rerun.
stages = $(PYTHON) -m training.stage1 --config $(1) && $(PYTHON) -m training.stage2 --config $(1)
train: setup
	sh training/run_cache.sh $(TRAIN_CONFIG)
	$(call stages,$(TRAIN_CONFIG))
	$(call stages,$(TOKEN_CONFIG))
	$(call stages,$(READER_CONFIG))
	sh training/run_cache.sh $(GLOSS_CONFIG)
	$(call stages,$(GLOSS_CONFIG))
	sh training/run_cache.sh $(SHIP_CONFIG)
	$(call stages,$(SHIP_CONFIG))
	$(PYTHON) -m training.release --config $(SHIP_CONFIG)
	sh training/run_cache.sh training/configs/ablations/top1.toml
	$(PYTHON) -m training.phonetic --config $(PHONETIC_CONFIG)
	$(PYTHON) -m training.phonetic --config $(PHONETIC_CONFIG) --release seal_rag/models/seal-base-minilm

bench-encode: setup
	$(PYTHON) -m seal_rag.bench.encode

bench-ask: setup
	$(PYTHON) -m seal_rag.bench.ask
