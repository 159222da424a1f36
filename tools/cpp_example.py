"""Configure, build and run examples/cpp (the C++ API's example and its every-loss check) with CMake.

    python tools/cpp_example.py [--build-dir build/cpp-example] [--jobs 2]

CMAKE_PREFIX_PATH is torch.utils.cmake_prefix_path;lossext.cmake_prefix_path (lossext must be built:
make build). Exits non-zero if a step fails or a program reports a mismatch with torch.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRAMS = ("train", "every_loss")


def run(cmd, **kw):
    print("+ " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kw)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build", "cpp-example"))
    ap.add_argument("--jobs", type=int, default=int(os.environ.get("MAX_JOBS", "2")))
    args = ap.parse_args()

    sys.path.insert(0, ROOT)
    import torch.utils
    import lossext

    if shutil.which("cmake") is None:
        print("cpp_example: cmake not found (pip install cmake)", file=sys.stderr)
        return 1
    prefix = ";".join([torch.utils.cmake_prefix_path, lossext.cmake_prefix_path])
    start = time.time()
    run(["cmake", "-S", os.path.join(ROOT, "examples", "cpp"), "-B", args.build_dir,
         "-DCMAKE_BUILD_TYPE=Release", f"-DCMAKE_PREFIX_PATH={prefix}"])
    run(["cmake", "--build", args.build_dir, "--parallel", str(args.jobs)])
    built = time.time()
    # No PYTHONPATH or LD_LIBRARY_PATH: the programs find libtorch and liblossext through their rpath.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LD_LIBRARY_PATH")}
    for name in PROGRAMS:
        run([os.path.join(args.build_dir, name)], env=env)
    print(f"cpp_example: built in {built - start:.0f} s, ran in {time.time() - built:.1f} s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as e:
        print(f"cpp_example: {' '.join(e.cmd)} exited with {e.returncode}", file=sys.stderr)
        sys.exit(1)
