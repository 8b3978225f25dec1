# Everything a fresh Debian machine needs, installed on first use (run as root).
PYTHON  ?= /usr/bin/python3
VENV    ?= $(CURDIR)/.venv
BIN     := $(VENV)/bin
APT_PKGS := python3 python3-venv busybox-static iproute2 util-linux attr zstd libseccomp2 tini bash-completion nftables
COMPLETION := /etc/bash_completion.d/overlaykit
IMAGE   := build/demo-image.tar
export PATH := $(BIN):$(PATH)

.PHONY: all deps demo test test-interop bench clean vm-deps vm-test vm-smoke experiments vagrant-box vagrant-validate

all: deps

# apt for what Python cannot bring, a venv for the rest, `overlaykit` on root's PATH, and its
# bash completion (click's, for new shells).
deps: $(VENV)/.installed $(COMPLETION)
$(VENV)/.installed: pyproject.toml
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	ln -sf $(BIN)/overlaykit /usr/local/bin/overlaykit
	touch $@

$(COMPLETION): $(VENV)/.installed
	@mkdir -p $(dir $@)
	_OVERLAYKIT_COMPLETE=bash_source $(BIN)/python -m overlaykit > $@.tmp && mv $@.tmp $@

$(IMAGE): $(VENV)/.installed scripts/build-test-image.py overlaykit/image/writer.py
	@mkdir -p build
	$(BIN)/python scripts/build-test-image.py $@

# In a network namespace of its own (lo up): the demo's containers get the default bridge,
# and its okit0, veths and rules must never land on the machine's own network.
demo: deps $(IMAGE)
	unshare -n sh -c 'ip link set lo up && exec scripts/demo.sh $(IMAGE)'

test: deps $(IMAGE)
	$(BIN)/python -m pytest -q

# Debian's docker.io (dockerd, started by the tests on a socket of their own), skopeo, and
# docker-registry (started by the registry tests on 127.0.0.1) with apache2-utils' bcrypt
# htpasswd and openssl for its auth and TLS variants.
test-interop: deps
	@missing=""; for p in docker.io skopeo docker-registry apache2-utils openssl; do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; fi
	$(BIN)/python -m pytest -q -m interop -o addopts=''

# Debian's docker.io (a dockerd of the benchmark's own, on a private socket) and debootstrap
# (the ~200 MB minbase image, built once into build/bench/); see docs/benchmarks.md.
bench: deps $(IMAGE)
	@missing=""; for p in docker.io debootstrap; do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; fi
	$(BIN)/python bench/run.py

# A throwaway Debian 12 guest (kernel 6.1) from scripts/vm/: the image is built once and cached
# in /var/cache/overlaykit-vm; the guest uses the image's venv instead of `make deps`.
VM_PKGS  := qemu-system-x86 qemu-utils debootstrap cpio e2fsprogs
VM_VENV  := VENV=/opt/overlaykit-venv
VM_SMOKE_TESTS := tests/test_workbench.py tests/test_experiments.py tests/test_mounts.py tests/test_deep_images.py tests/test_cgroups.py \
                  tests/test_volatile_rm.py tests/test_start_path.py \
                  tests/test_deeper_than_the_kernel.py::test_a_1000_layer_image_runs_its_upper_groups_whiteouts_hiding_the_bottom_ones

vm-deps: deps
	@missing=""; for p in $(VM_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; fi

vm-test: vm-deps
	scripts/vm/run.sh make test $(VM_VENV)

vm-smoke: vm-deps
	scripts/vm/run.sh --timeout 2400 'make demo $(VM_VENV) && python -m pytest -q $(VM_SMOKE_TESTS)'
	@mkdir -p build
	OVERLAYKIT_TESTS_HOST_NETWORK=1 $(BIN)/python -m pytest -q -m vm -o addopts='' --basetemp=build/pytest-vm tests/test_vm.py tests/test_vm_image.py

# What CI checks of vagrant/Vagrantfile (Debian's vagrant package; no provider needed).
vagrant-validate:
	@dpkg -s vagrant >/dev/null 2>&1 || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends vagrant; }
	cd vagrant && vagrant validate --ignore-provider

# A local libvirt box from the same image (build/vagrant/overlaykit-local.box): no download at `vagrant up`.
vagrant-box: vm-deps
	@dpkg -s vagrant >/dev/null 2>&1 || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends vagrant; }
	scripts/vm/vagrant-box.sh

# The experiments on this kernel and on the guest's, in one table: build/experiments/REPORT.md
experiments: vm-deps
	@rm -rf build/experiments; mkdir -p build/experiments/results; status=0; \
	$(BIN)/python scripts/experiments/run.py --out build/experiments/results || status=1; \
	scripts/vm/run.sh --out build/experiments/results python scripts/experiments/run.py --out /mnt/out || status=1; \
	$(BIN)/python scripts/experiments/run.py --report build/experiments/results build/experiments/REPORT.md; \
	exit $$status

clean:
	rm -rf build
