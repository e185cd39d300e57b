// Python bindings of the op families, with the device dispatch of the generic entry points.
#include "ops.h"

namespace rlipv2 {

namespace {

#ifndef WITH_CUDA
[[noreturn]] void no_cuda(const char* op) {
  TORCH_CHECK(false, op, ": got CUDA tensors but rlipv2._C was built without CUDA kernels "
              "(rebuild with FORCE_CUDA=1 or `make build-cuda`)");
}
#endif

at::Tensor ms_deform_attn_forward(const at::Tensor& value, const at::Tensor& spatial_shapes,
                                  const at::Tensor& level_start_index, const at::Tensor& sampling_loc,
                                  const at::Tensor& attn_weight, int64_t im2col_step) {
  if (value.is_cuda()) {
#ifdef WITH_CUDA
    return ms_deform_attn_cuda_forward(value, spatial_shapes, level_start_index, sampling_loc, attn_weight,
                                       im2col_step);
#else
    no_cuda("ms_deform_attn_forward");
#endif
  }
  return ms_deform_attn_cpu_forward(value, spatial_shapes, level_start_index, sampling_loc, attn_weight,
                                    im2col_step);
}

std::vector<at::Tensor> ms_deform_attn_backward(const at::Tensor& value, const at::Tensor& spatial_shapes,
                                                const at::Tensor& level_start_index, const at::Tensor& sampling_loc,
                                                const at::Tensor& attn_weight, const at::Tensor& grad_output,
                                                int64_t im2col_step) {
  if (value.is_cuda()) {
#ifdef WITH_CUDA
    return ms_deform_attn_cuda_backward(value, spatial_shapes, level_start_index, sampling_loc, attn_weight,
                                        grad_output, im2col_step);
#else
    no_cuda("ms_deform_attn_backward");
#endif
  }
  return ms_deform_attn_cpu_backward(value, spatial_shapes, level_start_index, sampling_loc, attn_weight,
                                     grad_output, im2col_step);
}

at::Tensor triplet_nms(const at::Tensor& sub_boxes, const at::Tensor& obj_boxes, const at::Tensor& scores,
                       const at::Tensor& groups, double thresh, double alpha, double beta) {
  if (scores.is_cuda()) {
#ifdef WITH_CUDA
    return triplet_nms_cuda(sub_boxes, obj_boxes, scores, groups, thresh, alpha, beta);
#else
    no_cuda("triplet_nms");
#endif
  }
  return triplet_nms_cpu(sub_boxes, obj_boxes, scores, groups, thresh, alpha, beta);
}

}  // namespace

void register_ops(pybind11::module& m) {
  using pybind11::arg;
  // Multi-scale deformable attention.
  m.def("ms_deform_attn_forward", &ms_deform_attn_forward,
        "multi-scale deformable attention forward (dispatches on value's device)", arg("value"),
        arg("spatial_shapes"), arg("level_start_index"), arg("sampling_loc"), arg("attn_weight"),
        arg("im2col_step"));
  m.def("ms_deform_attn_backward", &ms_deform_attn_backward,
        "multi-scale deformable attention backward -> [grad_value, grad_sampling_loc, grad_attn_weight]",
        arg("value"), arg("spatial_shapes"), arg("level_start_index"), arg("sampling_loc"), arg("attn_weight"),
        arg("grad_output"), arg("im2col_step"));
  m.def("ms_deform_attn_cpu_forward", &ms_deform_attn_cpu_forward, "CPU kernel of ms_deform_attn_forward");
  m.def("ms_deform_attn_cpu_backward", &ms_deform_attn_cpu_backward, "CPU kernel of ms_deform_attn_backward");
#ifdef WITH_CUDA
  m.def("ms_deform_attn_cuda_forward", &ms_deform_attn_cuda_forward, "CUDA kernel of ms_deform_attn_forward");
  m.def("ms_deform_attn_cuda_backward", &ms_deform_attn_cuda_backward, "CUDA kernel of ms_deform_attn_backward");
#endif
  // Triplet NMS.
  m.def("triplet_nms", &triplet_nms, "pairwise NMS of HOI triplets within groups -> keep mask (N,) bool",
        arg("sub_boxes"), arg("obj_boxes"), arg("scores"), arg("groups"), arg("thresh"), arg("alpha"),
        arg("beta"));
}

}  // namespace rlipv2
