# `make run`: set up .venv when needed and start the server on the embedded
# default (FileStorage under VAR_DIR). `make test`: the same set-up with the
# test extras, then the whole suite. Both skip what is already installed.
PYTHON ?= python3
VENV := .venv
PORT ?= 6543
VAR_DIR ?= $(CURDIR)/var
PYTEST_ARGS ?=
BIN := $(VENV)/bin
# the Ansible project the service runs (package data of pyramid_app)
ANSIBLE := $(CURDIR)/pyramid_app/ansible

.PHONY: run test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip 'setuptools<81' wheel

$(VENV)/.installed: setup.py | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: setup.py | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/pserve development.ini http_port=$(PORT) var_dir=$(VAR_DIR)

test: $(VENV)/.installed-test
	$(BIN)/pytest -n auto --dist loadgroup $(PYTEST_ARGS) tests

# the playbooks find their roles through their ansible.cfg
lint: $(VENV)/.installed-test
	ANSIBLE_CONFIG=$(ANSIBLE)/ansible.cfg $(BIN)/ansible-lint $(ANSIBLE)/playbooks $(ANSIBLE)/roles

bench: $(VENV)/.installed-test
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) *.egg-info
