// Per-device kernel table ("stub"), in the spirit of ATen's DispatchStub but self-contained.
//
// A loss's host function (csrc/ops/<loss>.cpp, compiled once) fills an args struct and calls
// `stub(device)(args)`. The CPU loops (csrc/cpu/<loss>.cpp) are compiled three times, with
// -DCPU_CAPABILITY=DEFAULT, AVX2 and AVX512 and the matching -m flags; each copy lives in its own
// namespace lossext::<CPU_CAPABILITY> and registers itself into its slot at load time. CUDA
// launchers (csrc/cuda/<loss>.cu) register into the cuda slot. At the first CPU call we pick the
// best slot the processor supports, as ATen does: ATEN_CPU_CAPABILITY=default|avx2|avx512 lowers
// the choice (the tests use that to run every copy).
#pragma once

#include <c10/core/DeviceType.h>
#include <c10/util/Exception.h>

namespace lossext {

enum class Isa : int { DEFAULT = 0, AVX2 = 1, AVX512 = 2 };
constexpr int kNumIsas = 3;

// Highest ISA this process may use: min(what the CPU supports, ATEN_CPU_CAPABILITY). Cached.
Isa cpu_isa();
const char* isa_name(Isa isa);

template <typename Fn>
struct Stub {
  // Zero-initialised before any dynamic initialiser runs, so registration order does not matter.
  Fn cpu[kNumIsas];
  Fn cuda;
  const char* name;

  Fn get(c10::DeviceType device) const {
    if (device == c10::DeviceType::CPU) {
      for (int i = static_cast<int>(cpu_isa()); i >= 0; --i) {
        if (cpu[i]) return cpu[i];
      }
      TORCH_CHECK(false, name, ": no CPU kernel was built for this processor (",
                  isa_name(cpu_isa()), "); rebuild lossext with LOSSEXT_CPU_ISAS unset");
    }
    if (device == c10::DeviceType::CUDA && cuda) return cuda;
    TORCH_CHECK(false, name, ": lossext was built without kernels for device type ", device);
  }
  Fn operator()(c10::DeviceType device) const { return get(device); }
};

template <typename Fn>
struct StubRegistrar {
  StubRegistrar(Stub<Fn>& stub, int slot, Fn fn) {
    if (slot < 0) stub.cuda = fn; else stub.cpu[slot] = fn;
  }
};

}  // namespace lossext

// In a header shared by the op and its kernels:  LOSSEXT_DECLARE_STUB(mse_stub, PointwiseFn);
#define LOSSEXT_DECLARE_STUB(stub, fn_type) extern ::lossext::Stub<fn_type> stub
// In the op's host .cpp (exactly once):           LOSSEXT_DEFINE_STUB(mse_stub, PointwiseFn);
#define LOSSEXT_DEFINE_STUB(stub, fn_type) ::lossext::Stub<fn_type> stub{{}, nullptr, #stub}

// Slot of the ISA this translation unit is compiled for.
#if defined(CPU_CAPABILITY_AVX512)
#define LOSSEXT_ISA_SLOT 2
#elif defined(CPU_CAPABILITY_AVX2)
#define LOSSEXT_ISA_SLOT 1
#else
#define LOSSEXT_ISA_SLOT 0
#endif

#define LOSSEXT_CONCAT_(a, b) a##b
#define LOSSEXT_CONCAT(a, b) LOSSEXT_CONCAT_(a, b)

// In an ISA-compiled CPU kernel file:            LOSSEXT_REGISTER_CPU(mse_stub, &mse_kernel);
#define LOSSEXT_REGISTER_CPU(stub, fn)                                              \
  static ::lossext::StubRegistrar<decltype(stub.cuda)>                              \
      LOSSEXT_CONCAT(lossext_cpu_registrar_, __COUNTER__)(stub, LOSSEXT_ISA_SLOT, fn)
// In a CUDA source:                              LOSSEXT_REGISTER_CUDA(mse_stub, &mse_cuda);
#define LOSSEXT_REGISTER_CUDA(stub, fn)                                             \
  static ::lossext::StubRegistrar<decltype(stub.cuda)>                              \
      LOSSEXT_CONCAT(lossext_cuda_registrar_, __COUNTER__)(stub, -1, fn)
