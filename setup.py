"""Build of lossext: one native library and a thin Python module, ninja, release flags.

lossext/lib/liblossext.so holds every op, kernel, autograd row and the C++ API (csrc/api,
csrc/include/lossext/lossext.h) and no Python symbol: a libtorch program links it without Python
(CMake package in lossext/share/cmake). lossext._C is only csrc/module.cpp; it links the library
(rpath $ORIGIN/lib), so every source is compiled once.

CPU loops (csrc/cpu/*.cpp) are compiled once per instruction set (DEFAULT, AVX2,
AVX512), each copy in its own namespace, and the fastest one the running CPU
supports is picked at the first call (see csrc/include/lossext/dispatch.h).
CUDA sources (csrc/cuda/*.cu) are compiled when torch has CUDA and nvcc is found;
LOSSEXT_WITH_CUDA=0/1 forces the choice.

Environment knobs (all optional):
  LOSSEXT_WITH_CUDA=0|1        force a CPU-only or a CUDA build
  LOSSEXT_CPU_ISAS=AVX512,...  subset of DEFAULT,AVX2,AVX512 (dev builds; releases build all)
  LOSSEXT_DEBUG=1              -O0 -g instead of -O3
  MAX_JOBS=N                   ninja parallelism (torch's own knob)
"""
import glob
import os
import platform
import shutil

from setuptools import setup
import torch
from torch.utils import cpp_extension

ROOT = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join("csrc")
LIB = "lossext.lib.liblossext"  # -> lossext/lib/liblossext.so (the name a program links: -llossext)
# The public C++ headers (lossext/lossext.h and what it includes), shipped in the wheel under
# lossext/include; a source checkout (editable install) uses csrc/include directly.
PUBLIC_HEADERS = ["lossext/lossext.h", "lossext/api/*.h"]

# Per-ISA flags, as ATen compiles its own kernels.
X86_ISAS = {
    "DEFAULT": [],
    "AVX2": ["-mavx2", "-mfma", "-mf16c", "-DCPU_CAPABILITY_AVX2"],
    "AVX512": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mfma", "-mf16c",
               "-DCPU_CAPABILITY_AVX512"],
}


def _flag(name):
    v = os.environ.get(name)
    if v is None or v == "":
        return None
    return v.lower() in ("1", "true", "yes", "on")


def _with_cuda():
    forced = _flag("LOSSEXT_WITH_CUDA")
    if forced is not None:
        return forced
    return torch.version.cuda is not None and cpp_extension.CUDA_HOME is not None


def _process_libstdcxx():
    """Path of the shared libstdc++ this process (torch) runs with, or None.

    Some toolchains (seen: /opt/gcc on the GPU image) link libstdc++ statically by default. Our
    library then carries a second libstdc++ beside the one torch loaded, their iostream/locale
    state is not shared, and formatting a number in an error message crashed. Linking this exact
    file makes the extension use the same libstdc++ as torch, whatever the toolchain's default.
    """
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1]
                if "/libstdc++.so" in path and os.path.exists(path):
                    return path
    except OSError:
        pass
    return None


def _isas():
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return ["DEFAULT"]
    wanted = os.environ.get("LOSSEXT_CPU_ISAS")
    if not wanted:
        return list(X86_ISAS)
    isas = [s.strip().upper() for s in wanted.split(",") if s.strip()]
    bad = [s for s in isas if s not in X86_ISAS]
    if bad:
        raise SystemExit(f"LOSSEXT_CPU_ISAS: unknown ISA(s) {bad}; choose from {list(X86_ISAS)}")
    return isas


class BuildExtension(cpp_extension.BuildExtension):
    """torch's BuildExtension, plus one extra compile of csrc/cpu/*.cpp per ISA, the plain shared
    library liblossext.so (built first) and lossext._C linked against it."""

    def get_ext_filename(self, fullname):
        # The library is no Python module: its plain name, not _C's liblossext.cpython-3XX-....so.
        parts = fullname.split(".")
        if parts[-1] == LIB.split(".")[-1]:
            return os.path.join(*parts) + (".dylib" if platform.system() == "Darwin" else ".so")
        return super().get_ext_filename(fullname)

    def build_extensions(self):
        # Some Pythons (Debian/Ubuntu builds) link extensions with -Wl,-Bsymbolic-functions. Our
        # library then binds its calls to the private copies of libstdc++ templates that the
        # nvcc-compiled objects instantiate (e.g. std::ostream::_M_insert<long>) instead of the
        # process's libstdc++, and formatting a number in an error message crashed (seen on the
        # H100 image). Link as torch's own libraries do: shared libstdc++, default symbol binding.
        drop = ("-Wl,-Bsymbolic-functions", "-Wl,-Bsymbolic", "-static-libstdc++", "-static-libgcc")
        for attr in ("linker_so", "linker_so_cxx", "compiler_so", "compiler_cxx"):
            cmd = getattr(self.compiler, attr, None)
            if isinstance(cmd, list):
                setattr(self.compiler, attr, [a for a in cmd if a not in drop])
        super().build_extensions()

    def copy_extensions_to_source(self):
        # --inplace: lossext/lib/ (not in git) must exist before setuptools copies the library there.
        build_py = self.get_finalized_command("build_py")
        for ext in self.extensions:
            os.makedirs(os.path.dirname(self._get_inplace_equivalent(build_py, ext)[0]) or ".", exist_ok=True)
        super().copy_extensions_to_source()

    def build_extension(self, ext):
        if ext.name != LIB:
            # setuptools builds into build_lib (copying to the source tree after, for --inplace):
            # link against the library just built there.
            ext.library_dirs = [os.path.dirname(self.get_ext_fullpath(LIB))] + list(ext.library_dirs)
        isa_sources = getattr(ext, "isa_sources", [])
        if isa_sources:
            base = ext.extra_compile_args["cxx"] if isinstance(ext.extra_compile_args, dict) \
                else list(ext.extra_compile_args)
            objects = []
            for isa in ext.isas:
                flags = base + [f"-DCPU_CAPABILITY={isa}"] + X86_ISAS.get(isa, [])
                objects += self.compiler.compile(
                    isa_sources,
                    output_dir=os.path.join(self.build_temp, "isa_" + isa.lower()),
                    macros=ext.define_macros,
                    include_dirs=ext.include_dirs,
                    debug=self.debug,
                    extra_postargs={"cxx": flags, "nvcc": []},
                    depends=ext.depends,
                )
            ext.extra_objects = list(ext.extra_objects or []) + objects
        super().build_extension(ext)
        if ext.name == LIB:
            self._copy_public_headers(os.path.dirname(os.path.dirname(self.get_ext_fullpath(LIB))))

    def _copy_public_headers(self, package_dir):
        """lossext/include/lossext/... in the built package (what its CMake config points at)."""
        src_root = os.path.join(ROOT, CSRC, "include")
        for pattern in PUBLIC_HEADERS:
            for src in glob.glob(os.path.join(src_root, pattern)):
                dst = os.path.join(package_dir, "include", os.path.relpath(src, src_root))
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.copyfile(src, dst)


def extensions():
    with_cuda = _with_cuda()
    isas = _isas()
    debug = _flag("LOSSEXT_DEBUG")
    opt = ["-O0", "-g"] if debug else ["-O3"]
    # -g0 overrides the -g of Python's own CFLAGS, which distutils puts on every compile line:
    # debug info of these template-heavy files made the build slower and the library 100 MB.
    cxx = opt + ([] if debug else ["-g0"]) + ["-Wno-unused-function"]
    # at::parallel_for is an inline template that runs in parallel only where _OPENMP is defined
    # (ATen/Parallel-inl.h, ParallelOpenMP.h); without -fopenmp every CPU loop silently runs on
    # one thread. The libgomp.so.1 we link against resolves to the one torch already loaded.
    openmp = [] if platform.system() == "Darwin" else ["-fopenmp"]
    cxx += openmp
    macros = [("LOSSEXT_BUILT_ISAS", '"' + ",".join(isas) + '"')]
    # Host code, op schemas, autograd and the C++ API: compiled once, into the library.
    sources = (sorted(glob.glob(os.path.join(CSRC, "ops", "*.cpp")))
               + sorted(glob.glob(os.path.join(CSRC, "autograd", "*.cpp")))
               + sorted(glob.glob(os.path.join(CSRC, "api", "*.cpp"))) + [os.path.join(CSRC, "lib.cpp")])
    depends = sorted(glob.glob(os.path.join(CSRC, "**", "*.h"), recursive=True)
                     + glob.glob(os.path.join(CSRC, "**", "*.cuh"), recursive=True))
    include_dirs = [os.path.join(ROOT, CSRC, "include"), os.path.join(ROOT, CSRC)]
    libstdcxx = [_process_libstdcxx() or "-lstdc++"]
    soname = [] if platform.system() == "Darwin" else ["-Wl,-soname,liblossext.so"]
    kwargs = dict(
        name=LIB,
        sources=sources,
        include_dirs=list(include_dirs),
        define_macros=macros,
        depends=depends,
        extra_link_args=openmp + libstdcxx + soname,
    )
    if with_cuda:
        kwargs["sources"] += sorted(glob.glob(os.path.join(CSRC, "cuda", "*.cu")))
        nvcc = opt + ["--expt-relaxed-constexpr", "-lineinfo", "-DLOSSEXT_WITH_CUDA"]
        lib = cpp_extension.CUDAExtension(extra_compile_args={"cxx": cxx, "nvcc": nvcc}, **kwargs)
    else:
        lib = cpp_extension.CppExtension(extra_compile_args={"cxx": cxx}, **kwargs)
    # No libtorch_python: its Python symbols would make the library unloadable without Python.
    lib.libraries = [name for name in lib.libraries if name != "torch_python"]
    lib.isa_sources = sorted(glob.glob(os.path.join(CSRC, "cpu", "*.cpp")))
    lib.isas = isas
    # The Python module: module.cpp only, finding the library beside it at run time.
    rpath = "@loader_path/lib" if platform.system() == "Darwin" else "$ORIGIN/lib"
    module = cpp_extension.CppExtension(
        name="lossext._C",
        sources=[os.path.join(CSRC, "module.cpp")],
        include_dirs=list(include_dirs),
        libraries=["lossext"],
        extra_compile_args={"cxx": list(cxx)},
        extra_link_args=libstdcxx + ["-Wl,-rpath," + rpath],
    )
    return [lib, module]  # in this order: _C links the library


setup(
    ext_modules=extensions(),
    cmdclass={"build_ext": BuildExtension.with_options(no_python_abi_suffix=False)},
)
