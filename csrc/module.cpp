// The lossext._C module: importing it loads the library, whose static initialisers register every
// op schema (TORCH_LIBRARY_FRAGMENT in csrc/ops), kernel (TORCH_LIBRARY_IMPL) and ISA loop.
// Ops are reached through torch.ops.lossext.*; no Python bindings are needed.
#include <Python.h>

#include <ATen/Version.h>
#include <lossext/dispatch.h>
#include <torch/library.h>

#include <string>

namespace lossext {

Isa cpu_isa() {
  // at::get_cpu_capability() already takes ATEN_CPU_CAPABILITY and the processor into account.
  static const Isa isa = [] {
    const std::string cap = at::get_cpu_capability();
    if (cap == "AVX512") return Isa::AVX512;
    if (cap == "AVX2") return Isa::AVX2;
    return Isa::DEFAULT;
  }();
  return isa;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::AVX512: return "AVX512";
    case Isa::AVX2: return "AVX2";
    default: return "DEFAULT";
  }
}

// The ISA whose loops this process runs (for tests and the bench report).
std::string cpu_kernel_isa() { return isa_name(cpu_isa()); }

}  // namespace lossext

TORCH_LIBRARY(lossext, m) {
  m.def("cpu_isa() -> str", [] { return lossext::cpu_kernel_isa(); });
  m.def("built_isas() -> str", [] { return std::string(LOSSEXT_BUILT_ISAS); });
}

extern "C" {
PyMODINIT_FUNC PyInit__C(void) {
  static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", "lossext native library", -1, nullptr};
  return PyModule_Create(&module);
}
}
