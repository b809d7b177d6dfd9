# fwinspect: `make run` opens the app on a generated demo image; `make test` sets everything up
# on a fresh Debian machine (Debian packages when root, a venv, real OVMF images) and runs the suite.
PY      := .venv/bin/python
BASE_DEBS := python3-venv
DEBS    := $(BASE_DEBS) qemu-system-x86 ovmf gdb uefitool-cli tpm2-tools acpica-tools swtpm swtpm-tools hyperfine \
           binutils gcc openssl
DEMO    := sample_images/out/demo-tdvf.fd

.PHONY: run test venv debs base-debs install-debs images firmware bench clean

run: base-debs venv $(DEMO)
	.venv/bin/fwinspect $(DEMO)

test: debs venv images
	$(PY) -m pytest -n 2 -q

venv: .venv/.installed
.venv/.installed: pyproject.toml
	python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# Installs Debian packages when running as root and any is missing: python3-venv for `run`,
# everything the tests use for `test`.
base-debs:
	@$(MAKE) --no-print-directory install-debs PKGS="$(BASE_DEBS)"

debs:
	@$(MAKE) --no-print-directory install-debs PKGS="$(DEBS)"

install-debs:
	@missing=$$(for p in $(PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:" $$missing; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "not root: tests needing $$missing will skip"; fi; \
	fi

images: venv
	$(PY) -m sample_images.fetch
	$(PY) -m sample_images.generate

$(DEMO): venv
	$(PY) -m sample_images.generate

# Optional: builds the edk2 images of ../shared/firmware (TDVF Config-B, a DEBUG OvmfPkgX64 with
# its .debug files) from Debian 13's edk2 source into .cache/firmware; about 30 minutes on 2 cores.
# Tests that need them look in ../shared/firmware, then there, and skip (CI: fail) without them.
FIRMWARE_DEBS := nasm uuid-dev build-essential acpica-tools python3 patch xz-utils

firmware: venv
	@$(MAKE) --no-print-directory install-debs PKGS="$(FIRMWARE_DEBS)"
	$(PY) -m sample_images.firmware

bench: venv images
	$(PY) -m benchmarks.run
	$(PY) -m benchmarks.bench_app
	$(PY) -m benchmarks.hostile

clean:
	rm -rf .venv sample_images/out sample_images/real
