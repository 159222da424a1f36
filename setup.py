"""Build of lossext._C: one extension, ninja, release flags.

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

from setuptools import setup
import torch
from torch.utils import cpp_extension

ROOT = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join("csrc")

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
    """torch's BuildExtension, plus one extra compile of csrc/cpu/*.cpp per ISA."""

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

    def build_extension(self, ext):
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
    # Host code and op schemas: compiled once.
    sources = (sorted(glob.glob(os.path.join(CSRC, "ops", "*.cpp")))
               + sorted(glob.glob(os.path.join(CSRC, "autograd", "*.cpp"))) + [os.path.join(CSRC, "module.cpp")])
    depends = sorted(glob.glob(os.path.join(CSRC, "**", "*.h"), recursive=True)
                     + glob.glob(os.path.join(CSRC, "**", "*.cuh"), recursive=True))
    kwargs = dict(
        name="lossext._C",
        sources=sources,
        include_dirs=[os.path.join(ROOT, CSRC, "include"), os.path.join(ROOT, CSRC)],
        define_macros=macros,
        depends=depends,
        extra_link_args=openmp + [_process_libstdcxx() or "-lstdc++"],
    )
    if with_cuda:
        kwargs["sources"] += sorted(glob.glob(os.path.join(CSRC, "cuda", "*.cu")))
        nvcc = opt + ["--expt-relaxed-constexpr", "-lineinfo", "-DLOSSEXT_WITH_CUDA"]
        ext = cpp_extension.CUDAExtension(extra_compile_args={"cxx": cxx, "nvcc": nvcc}, **kwargs)
    else:
        ext = cpp_extension.CppExtension(extra_compile_args={"cxx": cxx}, **kwargs)
    ext.isa_sources = sorted(glob.glob(os.path.join(CSRC, "cpu", "*.cpp")))
    ext.isas = isas
    return [ext]


setup(
    ext_modules=extensions(),
    cmdclass={"build_ext": BuildExtension.with_options(no_python_abi_suffix=False)},
)
