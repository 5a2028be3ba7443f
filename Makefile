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
TEST_ENV := CAPTION_DATASET=shapes CAPTION_CNN_WEIGHTS=none CAPTION_FAST=1 CAPTION_DATA_DIR=$(TEST_DATA_DIR)

.PHONY: setup lab course test test-fast lint bench prefetch doctor clean

setup: $(STAMP)  ## create or update the environment in .venv

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (found " + sys.version.split()[0] + "); set PYTHON=python3.11")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@# switching flavour: the two TensorFlow wheels must not be installed side by side
	@$(PY) -m pip uninstall --quiet --yes $(if $(filter cpu,$(TF)),tensorflow,tensorflow-cpu) 2>/dev/null || true
	$(PY) -m pip install --quiet -e ".[$(TF),lab,test]"
	@rm -f $(VENV)/.installed-*
	@touch $@

lab: $(STAMP)  ## open JupyterLab on the lessons
	$(VENV)/bin/jupyter lab notebooks/ --KernelManager.transport_encryption=auto $(if $(filter 0,$(shell id -u)),--allow-root)

course: $(STAMP)  ## run every lesson headless, in order, on the configured dataset
	$(PY) scripts/run_course.py

test: lint  ## the whole test suite: lint, unit tests, every notebook under nbval, every exercise solution
	rm -rf $(TEST_DATA_DIR)
	$(TEST_ENV) $(PY) -m pytest tests notebooks --nbval-lax --nbval-cell-timeout=900 --durations=15

test-fast: lint  ## a quick local loop: the unit tests without the slow ones (no notebooks); CI runs `make test`
	$(TEST_ENV) CAPTION_DATA_DIR=$(TEST_DATA_DIR)-fast $(PY) -m pytest tests -m "not slow" -q

lint: $(STAMP)  ## ruff: lint rules and formatting, as pyproject.toml configures them
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: $(STAMP)  ## speed and memory, course path vs the classic approach -> benchmarks/RESULTS.md
	$(PY) -m benchmarks

prefetch: $(STAMP)  ## download everything a workshop needs, a day ahead
	$(PY) -m helpers prefetch

doctor: $(STAMP)  ## what is installed, which caches are filled, what to do next
	$(PY) -m helpers doctor

clean:  ## remove the environment and test scratch data (keeps data/ and artifacts/)
	rm -rf $(VENV) $(TEST_DATA_DIR) .pytest_cache
