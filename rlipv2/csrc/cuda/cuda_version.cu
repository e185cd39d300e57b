// The CUDA runtime version rlipv2._C was compiled against. Compiled only when WITH_CUDA is defined.
#include <cuda_runtime_api.h>

#include <cstdint>

namespace rlipv2 {

int64_t cuda_runtime_version() { return CUDART_VERSION; }

}  // namespace rlipv2
