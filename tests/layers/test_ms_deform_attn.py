"""Multi-scale deformable attention: kernels against the grid_sample reference, validation, the module."""
import warnings

import pytest
import torch

from rlipv2.layers import MSDeformAttn, ms_deform_attn
from rlipv2.layers import multi_scale_deform_attn as msda_mod
from rlipv2.utils.extension import load_extension


def _kernel_built(kind: str) -> bool:
    ext = load_extension()
    if ext is None:
        return False
    if kind == "cuda":
        return bool(ext.with_cuda())
    return hasattr(ext, "ms_deform_attn_cpu_forward")


needs_cpu_kernel = pytest.mark.skipif(not _kernel_built("cpu"),
                                      reason="rlipv2._C is not built (no ms_deform_attn CPU kernel): "
                                             "`python setup.py build_ext --inplace`")

# Odd shapes: D not a multiple of 32, three levels of unequal sizes, three points, seven queries.
LEVELS = [(5, 7), (3, 4), (1, 2)]


def make_case(n=2, m=3, d=5, lq=7, p=3, levels=LEVELS, dtype=torch.float64, device="cpu", spread=0.3, seed=0):
    """Random inputs; locations spread beyond [0, 1] so that some points are (partly) outside."""
    gen = torch.Generator().manual_seed(seed)
    shapes = torch.tensor(levels, dtype=torch.int64)
    sizes = shapes[:, 0] * shapes[:, 1]
    starts = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    L = len(levels)
    value = torch.randn(n, int(sizes.sum()), m, d, generator=gen, dtype=torch.float64)
    loc = torch.rand(n, lq, m, L, p, 2, generator=gen, dtype=torch.float64) * (1 + 2 * spread) - spread
    attn = torch.rand(n, lq, m, L, p, generator=gen, dtype=torch.float64)
    cast = lambda t: t.to(device=device, dtype=dtype)
    return cast(value), shapes.to(device), starts.to(device), cast(loc), cast(attn)


def run(backend, value, shapes, starts, loc, attn, grad_out=None):
    """Output and (when grad_out is given) the gradients of value, locations and weights."""
    leaves = [t.detach().clone().requires_grad_(grad_out is not None) for t in (value, loc, attn)]
    out = ms_deform_attn(leaves[0], shapes, starts, leaves[1], leaves[2], backend=backend)
    if grad_out is None:
        return out.detach(), None
    out.backward(grad_out)
    return out.detach(), [t.grad for t in leaves]


CASES = {
    "odd": dict(),
    "d33_outside": dict(d=33, spread=1.0, seed=1),
    "d32_one_level": dict(d=32, levels=[(6, 9)], p=4, m=2, seed=2),
    "lq0": dict(lq=0),
    "single_pixel_levels": dict(levels=[(1, 1), (2, 1)], lq=4, seed=3),
}


# ---------------------------------------------------------------------------------------------------
# The pytorch reference itself


def test_pytorch_reference_hand_computed():
    # One level 2x3, one head, D=1, one point: bilinear interpolation by hand.
    value = torch.arange(6, dtype=torch.float64).view(1, 6, 1, 1)  # [[0, 1, 2], [3, 4, 5]]
    shapes, starts = torch.tensor([[2, 3]]), torch.tensor([0])
    # Pixel (row 0, col 1) has centre x = 1.5 / 3, y = 0.5 / 2; halfway to (row 1, col 2) on both axes:
    x, y = (1.5 + 0.5) / 3, (0.5 + 0.5) / 2
    loc = torch.tensor([x, y], dtype=torch.float64).view(1, 1, 1, 1, 1, 2)
    attn = torch.full((1, 1, 1, 1, 1), 2.0, dtype=torch.float64)
    out = ms_deform_attn(value, shapes, starts, loc, attn, backend="pytorch")
    assert out.item() == pytest.approx(2.0 * (1 + 2 + 4 + 5) / 4)
    # Fully outside: zero padding.
    loc_out = torch.tensor([1.6, 0.5], dtype=torch.float64).view(1, 1, 1, 1, 1, 2)
    assert ms_deform_attn(value, shapes, starts, loc_out, attn, backend="pytorch").item() == 0.0


# ---------------------------------------------------------------------------------------------------
# CPU kernel against the reference


@needs_cpu_kernel
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize("case", CASES)
def test_cpu_forward_matches_pytorch(case, dtype, tol):
    inputs = make_case(dtype=dtype, **CASES[case])
    ref, _ = run("pytorch", *inputs)
    got, _ = run("cpu", *inputs)
    assert got.shape == ref.shape and got.dtype == dtype
    torch.testing.assert_close(got, ref, rtol=tol, atol=tol)
    if inputs[3].shape[1] > 0:
        assert ref.abs().max() > 0.1  # not trivially zero


@needs_cpu_kernel
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-9), (torch.float32, 1e-4)])
@pytest.mark.parametrize("case", CASES)
def test_cpu_backward_matches_pytorch(case, dtype, tol):
    inputs = make_case(dtype=dtype, **CASES[case])
    n, lq, m = inputs[3].shape[:3]
    grad_out = torch.randn(n, lq, m * inputs[0].shape[-1], dtype=torch.float64).to(dtype)
    _, g_ref = run("pytorch", *inputs, grad_out=grad_out)
    _, g_cpu = run("cpu", *inputs, grad_out=grad_out)
    for name, a, b in zip(("value", "sampling_locations", "attention_weights"), g_cpu, g_ref):
        scale = max(1.0, b.abs().max().item()) if b.numel() else 1.0
        torch.testing.assert_close(a, b, rtol=tol, atol=tol * scale, msg=lambda s, name=name: f"grad {name}: {s}")


def _check_exact_pixel_boundaries(backend, device="cpu"):
    # Locations exactly on the edges of the zero-padding region, on pixel centres and on pixel borders,
    # where the bilinear corners and one-sided gradients must follow grid_sample exactly.
    H, W = 4, 8
    value = torch.randn(1, H * W, 1, 3, dtype=torch.float64)
    shapes, starts = torch.tensor([[H, W]]), torch.tensor([0])
    xs = torch.tensor([-0.5 / W, -1.0 / W, 0.0, 0.5 / W, 1.0 / W, 0.5, 1 - 0.5 / W, 1.0, 1 + 0.5 / W, 1 + 1.0 / W],
                      dtype=torch.float64)
    ys = torch.tensor([-0.5 / H, 0.0, 0.5 / H, 0.5, 1.0, 1 + 0.5 / H], dtype=torch.float64)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="ij"), -1).reshape(1, -1, 1, 1, 1, 2)
    attn = torch.rand(1, grid.shape[1], 1, 1, 1, dtype=torch.float64)
    grad = torch.randn(1, grid.shape[1], 3, dtype=torch.float64)
    value, shapes, starts, grid, attn, grad = (t.to(device) for t in (value, shapes, starts, grid, attn, grad))
    ref, g_ref = run("pytorch", value, shapes, starts, grid, attn, grad_out=grad)
    got, g_got = run(backend, value, shapes, starts, grid, attn, grad_out=grad)
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    for a, b in zip(g_got, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    assert (g_ref[1] != 0).any() and (ref == 0).any()


@needs_cpu_kernel
def test_cpu_exact_pixel_boundaries_match_pytorch():
    _check_exact_pixel_boundaries("cpu")


@needs_cpu_kernel
@pytest.mark.parametrize("d", [1, 5, 17])
def test_cpu_gradcheck(d):
    value, shapes, starts, loc, attn = make_case(n=1, m=2, d=d, lq=3, p=2, levels=[(3, 4), (2, 2)], seed=d)
    fn = lambda v, lo, a: ms_deform_attn(v, shapes, starts, lo, a, backend="cpu")
    inputs = tuple(t.requires_grad_() for t in (value, loc, attn))
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


@needs_cpu_kernel
@pytest.mark.parametrize("backend", ["pytorch", "cpu"])
def test_non_contiguous_inputs(backend):
    value, shapes, starts, loc, attn = make_case(d=6, seed=4)
    ref, _ = run(backend, value, shapes, starts, loc, attn)
    # Same values, strided layouts: a transposed value, locations and weights sliced from bigger tensors.
    value_nc = value.transpose(2, 3).contiguous().transpose(2, 3)
    loc_nc = torch.cat([loc, loc], dim=-1)[..., :2]
    attn_nc = torch.stack([attn, attn], dim=0)[1].transpose(0, 1).contiguous().transpose(0, 1)
    starts_nc = torch.stack([starts, starts], 1)[:, 0]
    assert not value_nc.is_contiguous() and not loc_nc.is_contiguous() and not starts_nc.is_contiguous()
    got, _ = run(backend, value_nc, shapes, starts_nc, loc_nc, attn_nc)
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    grad = torch.randn_like(ref)
    _, g_ref = run(backend, value, shapes, starts, loc, attn, grad_out=grad)
    _, g_nc = run(backend, value_nc, shapes, starts_nc, loc_nc, attn_nc,
                  grad_out=torch.stack([grad, grad], -1)[..., 0])
    for a, b in zip(g_nc, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@needs_cpu_kernel
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_cpu_reduced_precision_is_computed_in_float32(dtype):
    inputs = make_case(d=8, dtype=dtype, seed=6)
    got, grads = run("cpu", *inputs, grad_out=torch.ones(2, 7, 24, dtype=dtype))
    assert got.dtype == dtype and all(g.dtype == dtype for g in grads)
    ref, _ = run("cpu", *[t.float() if t.is_floating_point() else t for t in inputs])
    torch.testing.assert_close(got.float(), ref, rtol=2e-2, atol=2e-2)


@needs_cpu_kernel
def test_auto_uses_cpu_kernel_when_built():
    assert msda_mod.resolve_backend("auto", torch.device("cpu")) == "cpu"
    inputs = make_case(seed=7)
    torch.testing.assert_close(run("auto", *inputs)[0], run("cpu", *inputs)[0], rtol=0, atol=0)


def test_auto_falls_back_to_pytorch_with_one_warning(monkeypatch):
    monkeypatch.setattr(msda_mod, "_has_kernel", lambda device_type: False)
    monkeypatch.setattr(msda_mod, "_warned_fallback", set())
    inputs = make_case(seed=8)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        out1, _ = run("auto", *inputs)
        out2, _ = run("auto", *inputs)
    assert sum("pure-PyTorch path" in str(x.message) for x in w) == 1
    torch.testing.assert_close(out1, run("pytorch", *inputs)[0], rtol=0, atol=0)
    torch.testing.assert_close(out1, out2, rtol=0, atol=0)
    with pytest.raises(RuntimeError, match="not built"):
        run("cpu", *inputs)


# ---------------------------------------------------------------------------------------------------
# Validation


def _bad(**changes):
    value, shapes, starts, loc, attn = make_case(d=4, seed=9)
    args = dict(value=value, spatial_shapes=shapes, level_start_index=starts, sampling_locations=loc,
                attention_weights=attn)
    args.update(changes)
    return args


@pytest.mark.parametrize("changes,pattern", [
    (lambda a: dict(value=a["value"][0]), r"value must have shape \(N, S, M, D\)"),
    (lambda a: dict(value=a["value"][:, :-1]), r"value must have shape \(N, S, M, D\) with S = sum of H\*W"),
    (lambda a: dict(spatial_shapes=a["spatial_shapes"][:, :1]), r"spatial_shapes must have shape \(L, 2\)"),
    (lambda a: dict(spatial_shapes=a["spatial_shapes"].float()), r"spatial_shapes must be an int64 tensor"),
    (lambda a: dict(spatial_shapes=torch.tensor([[5, 7], [3, 4], [0, 2]])), r"positive \(H, W\)"),
    (lambda a: dict(level_start_index=a["level_start_index"][:2]), r"level_start_index must be .* shape \(L,\)"),
    (lambda a: dict(level_start_index=torch.tensor([0, 35, 46])), r"level_start_index must be the start of each"),
    (lambda a: dict(sampling_locations=a["sampling_locations"][..., :1]),
     r"sampling_locations must have shape \(N, Lq, M, L, P, 2\)"),
    (lambda a: dict(sampling_locations=a["sampling_locations"][:, :, :2]),
     r"sampling_locations must have shape \(N, Lq, M, L, P, 2\)"),
    (lambda a: dict(sampling_locations=a["sampling_locations"][0]), r"sampling_locations must have shape"),
    (lambda a: dict(attention_weights=a["attention_weights"][..., :2]),
     r"attention_weights must have shape \(N, Lq, M, L, P\)"),
    (lambda a: dict(attention_weights=a["attention_weights"].float()), r"must have one dtype"),
    (lambda a: dict(value=a["value"].long()), r"value must be a floating-point tensor"),
    (lambda a: dict(value=a["value"].to("meta")), r"all inputs must be on one device"),
    (lambda a: dict(level_start_index=[0, 35, 47]), r"level_start_index must be a torch.Tensor"),
])
def test_bad_inputs_raise_value_error(changes, pattern):
    args = _bad()
    args.update(changes(args))
    for backend in ("pytorch", "auto"):
        with pytest.raises(ValueError, match=pattern):
            ms_deform_attn(**args, backend=backend)


def test_bad_backend_and_im2col_step():
    args = _bad()
    with pytest.raises(ValueError, match="backend must be one of"):
        ms_deform_attn(**args, backend="triton")
    with pytest.raises(ValueError, match="im2col_step must be a positive int"):
        ms_deform_attn(**args, im2col_step=0)
    with pytest.raises(ValueError, match="needs cuda tensors"):
        ms_deform_attn(**args, backend="cuda")


# ---------------------------------------------------------------------------------------------------
# The module

BACKENDS = ["pytorch", pytest.param("cpu", marks=needs_cpu_kernel)]


def _identity_module(backend, n_levels=1, n_points=2):
    m = MSDeformAttn(d_model=2, n_levels=n_levels, n_heads=1, n_points=n_points, backend=backend).double()
    with torch.no_grad():
        m.sampling_offsets.bias.zero_()  # sample exactly at the reference point
        for lin in (m.value_proj, m.output_proj):
            lin.weight.copy_(torch.eye(2))
            lin.bias.zero_()
    return m


@pytest.mark.parametrize("backend", BACKENDS)
def test_module_hand_built_case(backend):
    m = _identity_module(backend)
    # One 2x2 level, two channels per pixel.
    pixels = torch.tensor([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0]], dtype=torch.float64)
    x = pixels[None]
    shapes, starts = torch.tensor([[2, 2]]), torch.tensor([0])
    ref = torch.tensor([[0.25, 0.25], [0.5, 0.5], [0.75, 0.25], [1.5, 0.5]], dtype=torch.float64)
    query = torch.randn(1, 4, 2, dtype=torch.float64)  # attention logits are zero: uniform weights
    out = m(query, ref[None, :, None, :], x, shapes, starts)
    expected = torch.stack([pixels[0], pixels.mean(0), pixels[1], torch.zeros(2, dtype=torch.float64)])
    torch.testing.assert_close(out[0], expected, rtol=1e-12, atol=1e-12)
    # Padding mask zeroes the masked values; box references (cx, cy, w, h) with zero offsets hit the centre.
    mask = torch.tensor([[True, False, False, False]])
    out = m(query, ref[None, :, None, :], x, shapes, starts, input_padding_mask=mask)
    torch.testing.assert_close(out[0, 0], torch.zeros(2, dtype=torch.float64))
    boxes = torch.cat([ref, torch.full((4, 2), 0.3, dtype=torch.float64)], -1)
    out_boxes = m(query, boxes[None, :, None, :], x, shapes, starts)
    torch.testing.assert_close(out_boxes[0], expected, rtol=1e-12, atol=1e-12)


def test_module_official_init_and_parameter_names():
    m = MSDeformAttn(d_model=64, n_levels=4, n_heads=8, n_points=4)
    names = {k for k, _ in m.named_parameters()}
    assert names == {f"{a}.{b}" for a in ("sampling_offsets", "attention_weights", "value_proj", "output_proj")
                     for b in ("weight", "bias")}
    bias = m.sampling_offsets.bias.view(8, 4, 4, 2)
    # Head 0 points along +x, head 2 along +y, at distances 1..P; the same on every level.
    torch.testing.assert_close(bias[0, 0], torch.tensor([[1.0, 0], [2, 0], [3, 0], [4, 0]]))
    torch.testing.assert_close(bias[2, 3], torch.tensor([[0.0, 1], [0, 2], [0, 3], [0, 4]]), atol=1e-6, rtol=0)
    assert m.sampling_offsets.weight.abs().sum() == 0 and m.attention_weights.weight.abs().sum() == 0


@needs_cpu_kernel
def test_module_backends_agree_with_gradients():
    torch.manual_seed(1)
    ms = {b: MSDeformAttn(d_model=24, n_levels=3, n_heads=3, n_points=3, backend=b).double()
          for b in ("pytorch", "cpu")}
    ms["cpu"].load_state_dict(ms["pytorch"].state_dict())
    value, shapes, starts, _, _ = make_case(n=2, m=1, d=24, seed=10)
    x = value[:, :, 0]
    query = torch.randn(2, 7, 24, dtype=torch.float64)
    ref_pts = torch.rand(2, 7, 3, 2, dtype=torch.float64)
    outs, grads = {}, {}
    for b, m in ms.items():
        outs[b] = m(query, ref_pts, x, shapes, starts)
        outs[b].square().sum().backward()
        grads[b] = {k: p.grad for k, p in m.named_parameters()}
    torch.testing.assert_close(outs["cpu"], outs["pytorch"], rtol=1e-10, atol=1e-10)
    for k in grads["pytorch"]:
        torch.testing.assert_close(grads["cpu"][k], grads["pytorch"][k], rtol=1e-8, atol=1e-8)


# ---------------------------------------------------------------------------------------------------
# CUDA kernel (skipped without a GPU; no CUDA tensors are created at import)


def _need_cuda_kernel():
    if not _kernel_built("cuda"):
        pytest.skip("rlipv2._C was built without CUDA kernels (FORCE_CUDA=1 / `make build-cuda`)")


@pytest.mark.gpu
@pytest.mark.parametrize("case", CASES)
def test_cuda_matches_pytorch_float64(case):
    _need_cuda_kernel()
    inputs = make_case(device="cuda", **CASES[case])
    n, lq, m = inputs[3].shape[:3]
    grad = torch.randn(n, lq, m * inputs[0].shape[-1], dtype=torch.float64, device="cuda")
    ref, g_ref = run("pytorch", *inputs, grad_out=grad)
    got, g_got = run("cuda", *inputs, grad_out=grad)
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)
    for a, b in zip(g_got, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


@pytest.mark.gpu
def test_cuda_exact_pixel_boundaries_match_pytorch():
    _need_cuda_kernel()
    _check_exact_pixel_boundaries("cuda", device="cuda")


@pytest.mark.gpu
def test_cuda_float32_and_cpu_parity():
    _need_cuda_kernel()
    inputs = make_case(d=40, dtype=torch.float32, device="cuda", seed=11)
    ref, _ = run("pytorch", *inputs)
    got, _ = run("cuda", *inputs)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    assert msda_mod.resolve_backend("auto", torch.device("cuda")) == "cuda"


@pytest.mark.gpu
@pytest.mark.parametrize("d", [1, 30, 33])
def test_cuda_gradcheck(d):
    _need_cuda_kernel()
    value, shapes, starts, loc, attn = make_case(n=1, m=2, d=d, lq=3, p=2, levels=[(3, 4), (2, 2)], device="cuda")
    fn = lambda v, lo, a: ms_deform_attn(v, shapes, starts, lo, a, backend="cuda")
    inputs = tuple(t.requires_grad_() for t in (value, loc, attn))
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4, nondet_tol=1e-12)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_reduced_precision(dtype):
    _need_cuda_kernel()
    inputs = make_case(d=32, dtype=dtype, device="cuda", seed=12)
    got, grads = run("cuda", *inputs, grad_out=torch.ones(2, 7, 96, dtype=dtype, device="cuda"))
    assert got.dtype == dtype and all(g.dtype == dtype for g in grads)
    ref, _ = run("pytorch", *[t.double() if t.is_floating_point() else t for t in inputs])
    torch.testing.assert_close(got.double(), ref, rtol=3e-2, atol=3e-2)
