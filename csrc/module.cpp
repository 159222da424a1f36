// The Python module lossext._C: importing it loads liblossext.so (lossext/lib/, found through the
// rpath $ORIGIN/lib), whose static initialisers register every op. Ops are reached through
// torch.ops.lossext.*; no Python bindings are needed, so this is the only file that sees Python.h.
#include <Python.h>

namespace lossext {
const char* built_isas();  // in liblossext.so (lossext/lossext.h)
}

extern "C" {
PyMODINIT_FUNC PyInit__C(void) {
  // A call into the library: without a referenced symbol a linker run with --as-needed (the default
  // of some distributions) drops liblossext.so from this module's dependencies, and no op loads.
  static const char* isas = lossext::built_isas();
  static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", "lossext native library", -1, nullptr};
  PyObject* m = PyModule_Create(&module);
  if (m != nullptr) PyModule_AddStringConstant(m, "built_isas", isas);
  return m;
}
}
