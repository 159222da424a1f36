# Two entry points (README quick start):  make bench   and   make test
PYTHON ?= python3
export MAX_JOBS ?= 2

.PHONY: install build test test-cuda bench cuda-check cpp-example clean

# Pinned dev requirements, then lossext built in place. The first run installs it editable
# (pip install --no-build-isolation -e .); later runs only rebuild what changed (ninja).
install:
	$(PYTHON) -m pip install -q -r requirements-dev.txt
	@if $(PYTHON) -m pip show -q lossext >/dev/null 2>&1 && ls lossext/_C*.so >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory build; \
	else \
	  echo "pip install --no-build-isolation --no-deps -e ."; \
	  $(PYTHON) -m pip install -q --no-build-isolation --no-deps -e .; \
	fi

build:
	$(PYTHON) setup.py -q build_ext --inplace

# Two pytest workers (pytest-xdist, in the dev requirements): CI's machine has 2 cores, and the
# suite is mostly single-threaded Python around small kernels.
PYTEST_JOBS ?= 2
test: install
	$(PYTHON) -m pytest tests -q -n $(PYTEST_JOBS)

# CUDA tests only (on a machine with a GPU).
test-cuda: install
	$(PYTHON) -m pytest tests -q -m cuda

bench: install
	$(PYTHON) -m lossext.bench

# nvcc -c of every csrc/cuda/*.cu for sm_90 (no GPU needed).
cuda-check:
	$(PYTHON) tools/check_cuda_compile.py

# The C++ API from a libtorch program without Python (examples/cpp, built with CMake against
# torch.utils.cmake_prefix_path and lossext.cmake_prefix_path): trains, checks every loss vs torch.
cpp-example: install
	$(PYTHON) tools/cpp_example.py

clean:
	rm -rf build *.egg-info lossext/_C*.so lossext/lib
