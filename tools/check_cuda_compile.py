"""Compile every csrc/cuda/*.cu with nvcc -c for sm_90 against the installed torch's headers.

Compile only (no link, no GPU needed): this is CI's proof that the CUDA sources build. The CPU
torch wheel ships the ATen/c10 CUDA headers but not the generated c10/cuda/impl/cuda_cmake_macros.h;
a one-line build-only shim stands in for it. Flags mirror what torch.utils.cpp_extension passes
to nvcc for the real build.

usage: python tools/check_cuda_compile.py [-j N] [files...]
"""
import argparse
import concurrent.futures
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time

import torch
from torch.utils import cpp_extension

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-j", type=int, default=int(os.environ.get("MAX_JOBS", "2")))
    ap.add_argument("--arch", default="sm_90")
    ap.add_argument("files", nargs="*")
    args = ap.parse_args()
    nvcc = shutil.which("nvcc") or os.path.join(cpp_extension.CUDA_HOME or "/usr/local/cuda", "bin", "nvcc")
    if not os.path.exists(nvcc):
        print("check_cuda_compile: nvcc not found", file=sys.stderr)
        return 1
    files = args.files or sorted(glob.glob(os.path.join(ROOT, "csrc", "cuda", "*.cu")))
    shim = tempfile.mkdtemp(prefix="lossext_cuda_shim_")
    os.makedirs(os.path.join(shim, "c10", "cuda", "impl"))
    if not os.path.exists(os.path.join(cpp_extension.include_paths()[0], "c10", "cuda", "impl", "cuda_cmake_macros.h")):
        with open(os.path.join(shim, "c10", "cuda", "impl", "cuda_cmake_macros.h"), "w") as f:
            f.write("#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n")
    std = "-std=c++20" if tuple(int(x) for x in torch.__version__.split(".")[:2]) >= (2, 10) else "-std=c++17"
    includes = [f"-I{p}" for p in cpp_extension.include_paths()] + [
        f"-I{os.path.join(ROOT, 'csrc', 'include')}", f"-I{os.path.join(ROOT, 'csrc')}", f"-I{shim}"]
    flags = [std, "-O3", f"-arch={args.arch}", "--expt-relaxed-constexpr", "-DLOSSEXT_WITH_CUDA",
             "-DTORCH_API_INCLUDE_EXTENSION_H", "-DTORCH_EXTENSION_NAME=_C", "-D_GLIBCXX_USE_CXX11_ABI=1",
             "--compiler-options", "-fPIC"] + list(cpp_extension.COMMON_NVCC_FLAGS)
    out_dir = tempfile.mkdtemp(prefix="lossext_cuda_obj_")

    def compile_one(path):
        t0 = time.time()
        obj = os.path.join(out_dir, os.path.basename(path) + ".o")
        r = subprocess.run([nvcc, "-c", path, "-o", obj] + flags + includes, capture_output=True, text=True)
        return path, r.returncode, r.stdout + r.stderr, time.time() - t0

    failed = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.j)) as ex:
        for path, rc, log, dt in ex.map(compile_one, files):
            rel = os.path.relpath(path, ROOT)
            if rc == 0:
                print(f"  ok    {rel}  ({dt:.0f} s)")
            else:
                failed += 1
                print(f"  FAIL  {rel}\n{log}")
    shutil.rmtree(shim, ignore_errors=True)
    shutil.rmtree(out_dir, ignore_errors=True)
    print(f"check_cuda_compile: {len(files) - failed}/{len(files)} CUDA sources compile for {args.arch}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
