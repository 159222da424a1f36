"""The C++ API (csrc/include/lossext/lossext.h, liblossext.so, the CMake package): every public loss
of lossext.functional has a C++ function defined in the library, torch's C++ losses keep torch's
option types, every loss module has a C++ module, the library loads without Python symbols, and
find_package(lossext) gives the target. Building and running the C++ programs (examples/cpp,
which compare every loss with torch::nn::functional's) is tools/cpp_example.py, run by .ci/run."""
import inspect
import os
import re
import shutil
import subprocess

import pytest
import torch

import lossext
import lossext.functional as LF
import lossext.nn as LN

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
API = os.path.join(ROOT, "csrc", "include", "lossext", "api")
LIB = os.path.join(os.path.dirname(lossext.__file__), "lib", "liblossext.so")
TORCH_API = os.path.join(os.path.dirname(torch.__file__), "include", "torch", "csrc", "api", "include", "torch", "nn")
# torch.nn.LinearCrossEntropyLoss owns a Linear layer; its C++ counterpart is the functional only.
NO_CPP_MODULE = {"LinearCrossEntropyLoss"}


def _read(path):
    with open(path) as f:
        return f.read()


def _declared():
    """{name: [first options type of each overload]} of lossext/api/functional.h."""
    out = {}
    for m in re.finditer(r"LOSSEXT_API Tensor (\w+)\(([^;]*)\);", _read(os.path.join(API, "functional.h"))):
        opts = re.findall(r"const ([\w:]+Options)&", m.group(2))
        out.setdefault(m.group(1), []).append(opts[0] if opts else None)
    return out


def _torch_cpp_functionals():
    """{name: options type} of torch::nn::functional's public loss functions (outside detail::)."""
    src = re.sub(r"namespace detail \{.*?\} // namespace detail", "", _read(os.path.join(TORCH_API, "functional",
                                                                                          "loss.h")), flags=re.S)
    return dict(re.findall(r"inline Tensor (\w+)\([^;{]*?const (\w+FuncOptions)& options = \{\}\)", src))


def _torch_cpp_modules():
    """{Name: options type} of torch::nn's loss modules (the first options type in each class)."""
    src = _read(os.path.join(TORCH_API, "modules", "loss.h"))
    return {m.group(1): re.search(r"(\w+Options)", m.group(2)).group(1)
            for m in re.finditer(r"struct TORCH_API (\w+)Impl\b(.*?)TORCH_MODULE\(", src, flags=re.S)}


def _lossext_modules():
    """{Name: options type} of lossext/api/modules.h."""
    pat = r"LOSSEXT_(?:WEIGHTED_)?LOSS_MODULE(?:2|3|_BEGIN)\(\s*(\w+),\s*(?:\w+,\s*)?((?:::)?[\w:]*Options)"
    return {n: o.split("::")[-1] for n, o in re.findall(pat, _read(os.path.join(API, "modules.h")))}


def _python_modules():
    return {n for n, c in vars(LN).items() if inspect.isclass(c) and issubclass(c, torch.nn.Module)
            and c.__module__ == LN.__name__}


def test_every_public_loss_has_a_cpp_function():
    declared = _declared()
    missing = sorted(set(LF.__all__) - set(declared))
    assert not missing, f"lossext.functional losses without a C++ function in lossext/api/functional.h: {missing}"


def test_torch_cpp_losses_take_torchs_option_types():
    torch_fns = _torch_cpp_functionals()
    assert len(torch_fns) >= 20 and torch_fns["cross_entropy"] == "CrossEntropyFuncOptions"  # the parse works
    declared = _declared()
    for name, opts in torch_fns.items():
        if name not in LF.__all__:
            continue
        assert f"tf::{opts}" in declared.get(name, []), f"lossext::functional::{name} must take torch's {opts}"


def test_every_loss_module_has_a_cpp_module_on_torchs_options():
    cpp = _lossext_modules()
    missing = sorted(_python_modules() - set(cpp) - NO_CPP_MODULE)
    assert not missing, f"lossext.nn modules without a lossext::nn C++ module: {missing}"
    torch_mods = _torch_cpp_modules()
    assert torch_mods["CrossEntropyLoss"] == "CrossEntropyLossOptions"  # the parse works
    for name, opts in torch_mods.items():
        if name in cpp:
            assert cpp[name] == opts, f"lossext::nn::{name} must be built from torch::nn::{opts}"


def _nm(*args):
    if shutil.which("nm") is None:
        pytest.skip("nm (binutils) not found")
    return subprocess.run(["nm", "-D", *args, LIB], check=True, capture_output=True, text=True).stdout


def test_library_defines_every_declared_function():
    defined = _nm("-C", "--defined-only")
    for name, overloads in _declared().items():
        n = len(re.findall(rf" lossext::functional::{name}\(", defined))
        assert n == len(overloads), f"liblossext.so defines {n} of the {len(overloads)} overloads of {name}"


def test_library_needs_no_python():
    undefined = [line.split()[-1] for line in _nm("--undefined-only").splitlines()]
    python = [s for s in undefined if s.startswith(("Py", "_Py"))]
    assert not python, f"liblossext.so needs Python symbols: {python[:5]}"


def test_python_module_loads_the_library():
    with open("/proc/self/maps") as f:
        maps = f.read()
    assert os.path.realpath(LIB) in maps or LIB in maps, "import lossext did not load lossext/lib/liblossext.so"
    assert lossext._C.built_isas == torch.ops.lossext.built_isas()


def test_cmake_prefix_path_holds_the_package():
    config = os.path.join(lossext.cmake_prefix_path, "lossext", "lossextConfig.cmake")
    assert os.path.isfile(config)
    assert os.path.isfile(LIB)


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake not found")
def test_find_package_gives_the_imported_target(tmp_path):
    (tmp_path / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.18)\nproject(probe CXX)\n"
        "find_package(Torch REQUIRED)\nfind_package(lossext REQUIRED)\n"
        "get_target_property(loc lossext::lossext IMPORTED_LOCATION)\n"
        "get_target_property(inc lossext::lossext INTERFACE_INCLUDE_DIRECTORIES)\n"
        'message(STATUS "LOSSEXT_PROBE|${loc}|${inc}|${LOSSEXT_FOUND}")\n')
    prefix = ";".join([torch.utils.cmake_prefix_path, lossext.cmake_prefix_path])
    r = subprocess.run(["cmake", "-S", str(tmp_path), "-B", str(tmp_path / "build"), f"-DCMAKE_PREFIX_PATH={prefix}"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    loc, inc, found = re.search(r"LOSSEXT_PROBE\|(.*?)\|(.*?)\|(.*)", r.stdout).groups()
    assert os.path.samefile(loc, LIB)
    assert os.path.isfile(os.path.join(inc, "lossext", "lossext.h"))
    assert found == "TRUE"
