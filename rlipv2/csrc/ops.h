// Declarations of the ops compiled into rlipv2._C.
#pragma once
#include <torch/extension.h>

namespace rlipv2 {

// Each op family adds its bindings here (defined in its own .cpp file).
void register_ops(pybind11::module& m);

}  // namespace rlipv2
