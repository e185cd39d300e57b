#include "ops.h"

namespace rlipv2 {

void register_ops(pybind11::module& m) {
  // Op families register their bindings here, e.g. ms_deform_attn forward/backward.
  (void)m;
}

}  // namespace rlipv2
