// Python bindings of rlipv2._C. Every op declared here has a pure-PyTorch twin in rlipv2/layers.
#include <torch/extension.h>

#include "ops.h"

namespace rlipv2 {

bool with_cuda() {
#ifdef WITH_CUDA
  return true;
#else
  return false;
#endif
}

}  // namespace rlipv2

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("with_cuda", &rlipv2::with_cuda, "whether rlipv2._C was built with CUDA kernels");
  rlipv2::register_ops(m);
}
