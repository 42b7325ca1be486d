# Quick start: `make run` (the main job on the default config) and `make test` (the test suite).
# Both install what they need first: PyTorch's CPU wheel, this package, and the Fashion-MNIST data.
PY ?= python3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
FMNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: install data run test lint docs

install:
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test,dev,docs]"
	# 20 real CIFAR-100/-10 and Fashion-MNIST PNGs for smoke tests (data only: foolbox is never imported).
	$(PY) -m pip install -q --no-deps foolbox==3.3.4

data:
	@[ -f $(FMNIST) ] || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q dataset-fashion-mnist; }

run: install data
	batchrmt run --config default --out runs/default --resume

test: install data
	OMP_NUM_THREADS=1 $(PY) -m pytest -q

lint: install
	$(PY) -m ruff check rmt networks validation tests benchmarks examples
	$(PY) -m mypy rmt networks validation

docs: install
	$(PY) -m mkdocs build --strict --site-dir site
