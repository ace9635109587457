# robolearn: `make demo` and `make test` set everything up themselves (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.robolearn-installed
TORCH_SPEC ?= torch==2.13.0
APT_PKGS := libosmesa6 libegl1 libegl-mesa0 libgl1-mesa-dri
# Headless Chromium and its driver for the browser tests of `robolearn view` (tests/view).
BROWSER_PKGS := chromium chromium-driver
# What the pyrealsense2 wheel loads from the system (it bundles librealsense itself).
REALSENSE_PKGS := libusb-1.0-0 libudev1
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl
# Ray and torch on a 2-core box: keep thread pools small and the dashboard off.
export RAY_DISABLE_DOCKER_CPU_WARNING := 1
DEMO_OUT ?= runs/demo

.PHONY: install system-deps demo demo-quick test test-all bench clean

install: system-deps $(STAMP)

# Headless rendering libraries: installed when we are root, named in one line otherwise.
system-deps:
	@missing=""; for p in $(APT_PKGS) $(BROWSER_PKGS) $(REALSENSE_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "installing system packages:$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null) || { echo "apt-get failed for:$$missing" >&2; exit 1; }; \
	  else \
	    echo "robolearn needs these system packages (headless rendering; chromium for the browser tests, or set ROBOLEARN_SKIP_BROWSER=1; libusb and libudev for RealSense cameras); run: sudo apt-get install -y$$missing" >&2; \
	  fi; \
	fi

$(STAMP): pyproject.toml envs/pyproject.toml hardware/pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else 1)" 2>/dev/null \
	  || $(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -c constraints.txt \
	  -e ".[s3,interop,language,teleop,dev,view,rerun]" -e "envs[robosuite,metaworld,pusht]" -e "hardware[dynamixel,feetech,ur,phone,twin,realsense]"
	@touch $(STAMP)

demo: install
	$(BIN)/robolearn demo --out $(DEMO_OUT)

demo-quick: install
	$(BIN)/robolearn demo --quick --out $(DEMO_OUT)-quick

test: install
	$(BIN)/python -m pytest -q -x --timeout 600

test-all: install
	$(BIN)/python -m pytest -q -m "slow or not slow" --timeout 3600

bench: install
	$(BIN)/python benchmarks/store.py

clean:
	rm -rf $(VENV) runs
