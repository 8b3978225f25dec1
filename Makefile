# Everything a fresh Debian machine needs, installed on first use (run as root).
PYTHON  ?= /usr/bin/python3
VENV    ?= $(CURDIR)/.venv
BIN     := $(VENV)/bin
APT_PKGS := python3 python3-venv busybox-static iproute2 util-linux attr zstd
IMAGE   := build/demo-image.tar
export PATH := $(BIN):$(PATH)

.PHONY: all deps demo test test-interop bench clean

all: deps

# apt for what Python cannot bring, a venv for the rest, and `overlaykit` on root's PATH.
deps: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	ln -sf $(BIN)/overlaykit /usr/local/bin/overlaykit
	touch $@

$(IMAGE): $(VENV)/.installed scripts/build-test-image.py overlaykit/image/writer.py
	@mkdir -p build
	$(BIN)/python scripts/build-test-image.py $@

demo: deps $(IMAGE)
	scripts/demo.sh $(IMAGE)

test: deps $(IMAGE)
	$(BIN)/python -m pytest -q

# Debian's docker.io (dockerd, started by the tests on a socket of their own) and skopeo.
test-interop: deps
	@missing=""; for p in docker.io skopeo; do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; fi
	$(BIN)/python -m pytest -q -m interop -o addopts=''

bench: deps $(IMAGE)
	$(BIN)/python bench/run.py

clean:
	rm -rf build
