// Python bindings of rlipv2._C. Every op declared here has a pure-PyTorch twin in rlipv2/layers.
#include <torch/extension.h>

#include <string>

#include "ops.h"

namespace rlipv2 {

bool with_cuda() {
#ifdef WITH_CUDA
  return true;
#else
  return false;
#endif
}

// CUDA runtime version the kernels were compiled against (e.g. 13000), 0 without CUDA kernels.
int64_t cuda_version() {
#ifdef WITH_CUDA
  return cuda_runtime_version();
#else
  return 0;
#endif
}

std::string compiler_version() {
#if defined(__clang__)
  return "clang " + std::to_string(__clang_major__) + "." + std::to_string(__clang_minor__);
#elif defined(__GNUC__)
  return "GCC " + std::to_string(__GNUC__) + "." + std::to_string(__GNUC_MINOR__);
#elif defined(_MSC_VER)
  return "MSVC " + std::to_string(_MSC_FULL_VER);
#else
  return "unknown";
#endif
}

}  // namespace rlipv2

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("with_cuda", &rlipv2::with_cuda, "whether rlipv2._C was built with CUDA kernels");
  m.def("cuda_version", &rlipv2::cuda_version, "CUDA runtime version of the kernels (0 without CUDA)");
  m.def("compiler_version", &rlipv2::compiler_version, "C++ compiler that built rlipv2._C");
  rlipv2::register_ops(m);
}
