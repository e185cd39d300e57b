// CUDA kernel of triplet (pairwise) NMS. Predictions are put in processing order (group, descending
// score, descending index) on the device; a kernel fills, for every prediction i, a bit mask of the later
// predictions j of its group that it would suppress (pair overlap > thresh, or NaN); the greedy scan
// over those masks runs on the host, as in torchvision's NMS. Compiled only when WITH_CUDA is defined.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

#include <cstdint>
#include <vector>

namespace rlipv2 {
namespace {

constexpr int kBits = 64;

__device__ __forceinline__ double iou_plus1(const double* a, const double* b) {
  const double area_a = (a[2] - a[0] + 1) * (a[3] - a[1] + 1);
  const double area_b = (b[2] - b[0] + 1) * (b[3] - b[1] + 1);
  const double w = fmax(0.0, fmin(a[2], b[2]) - fmax(a[0], b[0]) + 1);
  const double h = fmax(0.0, fmin(a[3], b[3]) - fmax(a[1], b[1]) + 1);
  const double inter = w * h;
  return inter / (area_a + area_b - inter);
}

// x ** e with NumPy's fast paths (exact for 1, sqrt for 0.5, x * x for 2), as the CPU kernel.
__device__ __forceinline__ double power_like_numpy(double x, double e) {
  if (e == 1.0) return x;
  if (e == 0.5) return sqrt(x);
  if (e == 2.0) return x * x;
  if (e == 0.0) return 1.0;
  return pow(x, e);
}

__global__ void suppression_mask_kernel(int64_t n, const double* __restrict__ sub, const double* __restrict__ obj,
                                        const int64_t* __restrict__ groups, double thresh, double alpha, double beta,
                                        unsigned long long* __restrict__ mask, int64_t col_blocks) {
  const int64_t row_block = blockIdx.y, col_block = blockIdx.x;
  if (row_block > col_block) return;  // only later predictions are suppressed
  const int64_t rows = min(n - row_block * kBits, static_cast<int64_t>(kBits));
  const int64_t cols = min(n - col_block * kBits, static_cast<int64_t>(kBits));
  __shared__ double s_sub[kBits * 4];
  __shared__ double s_obj[kBits * 4];
  __shared__ int64_t s_group[kBits];
  if (threadIdx.x < cols) {
    const int64_t j = col_block * kBits + threadIdx.x;
    for (int k = 0; k < 4; ++k) {
      s_sub[threadIdx.x * 4 + k] = sub[j * 4 + k];
      s_obj[threadIdx.x * 4 + k] = obj[j * 4 + k];
    }
    s_group[threadIdx.x] = groups[j];
  }
  __syncthreads();
  if (threadIdx.x < rows) {
    const int64_t i = row_block * kBits + threadIdx.x;
    const double* si = sub + i * 4;
    const double* oi = obj + i * 4;
    const int64_t gi = groups[i];
    unsigned long long bits = 0;
    for (int64_t j = row_block == col_block ? threadIdx.x + 1 : 0; j < cols; ++j) {
      if (s_group[j] != gi) continue;
      const double ovr =
          power_like_numpy(iou_plus1(si, s_sub + j * 4), alpha) * power_like_numpy(iou_plus1(oi, s_obj + j * 4), beta);
      if (!(ovr <= thresh)) bits |= 1ULL << j;
    }
    mask[i * col_blocks + col_block] = bits;
  }
}

}  // namespace

at::Tensor triplet_nms_cuda(const at::Tensor& sub_boxes, const at::Tensor& obj_boxes, const at::Tensor& scores,
                            const at::Tensor& groups, double thresh, double alpha, double beta) {
  TORCH_CHECK(scores.is_cuda(), "triplet_nms_cuda: expected CUDA tensors");
  TORCH_CHECK(scores.dim() == 1, "triplet_nms: scores must be (N,), got ", scores.sizes());
  const int64_t n = scores.size(0);
  TORCH_CHECK(sub_boxes.dim() == 2 && sub_boxes.size(0) == n && sub_boxes.size(1) == 4,
              "triplet_nms: sub_boxes must be (N, 4), got ", sub_boxes.sizes());
  TORCH_CHECK(obj_boxes.dim() == 2 && obj_boxes.size(0) == n && obj_boxes.size(1) == 4,
              "triplet_nms: obj_boxes must be (N, 4), got ", obj_boxes.sizes());
  TORCH_CHECK(groups.dim() == 1 && groups.size(0) == n, "triplet_nms: groups must be (N,), got ", groups.sizes());
  const c10::cuda::OptionalCUDAGuard guard(scores.device());
  at::Tensor keep = at::zeros({n}, scores.options().dtype(at::kBool));
  if (n == 0) return keep;
  const at::Tensor grp = groups.to(at::kLong);
  // Descending score with ties by descending index == reversed stable ascending sort; then a stable sort
  // by group keeps that order inside each group.
  at::Tensor order = std::get<1>(scores.to(at::kDouble).sort(/*stable=*/true, 0, /*descending=*/false)).flip(0);
  order = order.index_select(0, std::get<1>(grp.index_select(0, order).sort(/*stable=*/true, 0, false)));
  const at::Tensor sub = sub_boxes.to(at::kDouble).index_select(0, order).contiguous();
  const at::Tensor obj = obj_boxes.to(at::kDouble).index_select(0, order).contiguous();
  const at::Tensor g = grp.index_select(0, order).contiguous();
  const int64_t col_blocks = (n + kBits - 1) / kBits;
  TORCH_CHECK(col_blocks <= 65535, "triplet_nms_cuda: at most ", 65535 * kBits, " predictions, got ", n);
  at::Tensor mask = at::zeros({n * col_blocks}, scores.options().dtype(at::kLong));
  const dim3 blocks(col_blocks, col_blocks);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  suppression_mask_kernel<<<blocks, kBits, 0, stream>>>(
      n, sub.data_ptr<double>(), obj.data_ptr<double>(), g.data_ptr<int64_t>(), thresh, alpha, beta,
      reinterpret_cast<unsigned long long*>(mask.data_ptr<int64_t>()), col_blocks);
  C10_CUDA_KERNEL_LAUNCH_CHECK();

  const at::Tensor mask_cpu = mask.cpu();
  const auto* mp = reinterpret_cast<const unsigned long long*>(mask_cpu.data_ptr<int64_t>());
  std::vector<unsigned long long> removed(col_blocks, 0);
  std::vector<int64_t> kept;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t block = i / kBits, bit = i % kBits;
    if (removed[block] & (1ULL << bit)) continue;
    kept.push_back(i);
    const unsigned long long* row = mp + i * col_blocks;
    for (int64_t b = block; b < col_blocks; ++b) removed[b] |= row[b];
  }
  const at::Tensor kept_sorted = at::tensor(kept, at::TensorOptions().dtype(at::kLong)).to(scores.device());
  keep.index_fill_(0, order.index_select(0, kept_sorted), true);
  return keep;
}

}  // namespace rlipv2
