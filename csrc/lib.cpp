// liblossext.so (lossext/lib/): every op, kernel and autograd row, and the C++ API
// (lossext/lossext.h), without Python. Loading it runs the static initialisers that register every
// op schema (TORCH_LIBRARY_FRAGMENT in csrc/ops), kernel (TORCH_LIBRARY_IMPL) and ISA loop. The
// Python module lossext._C (csrc/module.cpp) is a thin shell that links it.
#include <ATen/Version.h>
#include <lossext/dispatch.h>
#include <lossext/api/library.h>
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

const char* built_isas() { return LOSSEXT_BUILT_ISAS; }

}  // namespace lossext

TORCH_LIBRARY(lossext, m) {
  m.def("cpu_isa() -> str", [] { return lossext::cpu_kernel_isa(); });
  m.def("built_isas() -> str", [] { return std::string(LOSSEXT_BUILT_ISAS); });
}
