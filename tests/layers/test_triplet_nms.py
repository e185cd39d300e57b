"""triplet_nms against a plain numpy loop that follows the HICO evaluator's pairwise NMS."""
import numpy as np
import pytest
import torch

from rlipv2.layers import triplet_nms
from rlipv2.utils.extension import load_extension


def _cpu_kernel_built() -> bool:
    ext = load_extension()
    return ext is not None and hasattr(ext, "triplet_nms")


needs_cpu_kernel = pytest.mark.skipif(not _cpu_kernel_built(), reason="rlipv2._C (triplet_nms CPU kernel) is not built")


def reference_keep(sub, obj, scores, groups, thresh=0.7, alpha=1.0, beta=0.5):
    """Per group: visit by descending score (ties: higher index first), keep, drop later overlaps > thresh."""
    n = len(scores)
    keep = np.zeros(n, dtype=bool)

    def area(b):
        return (b[2] - b[0] + 1) * (b[3] - b[1] + 1)

    def iou(a, b):
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + 1)
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
        inter = w * h
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.float64(inter) / np.float64(area(a) + area(b) - inter)

    for g in sorted(set(groups.tolist())):
        members = [i for i in range(n) if groups[i] == g]
        members.sort(key=lambda i: (scores[i], i), reverse=True)
        alive = list(members)
        while alive:
            i = alive.pop(0)
            keep[i] = True
            survivors = []
            for j in alive:
                with np.errstate(invalid="ignore"):
                    ovr = np.power(iou(sub[i], sub[j]), alpha) * np.power(iou(obj[i], obj[j]), beta)
                if ovr <= thresh:
                    survivors.append(j)
            alive = survivors
    return keep


def _random_case(n, n_groups, seed, ties=False):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 100, size=(3, 2))
    base = np.concatenate([xy, xy + rng.uniform(20, 60, size=(3, 2))], 1)  # few clusters: many overlaps

    def boxes():
        b = base[rng.integers(0, 3, n)] + rng.normal(0, 3, size=(n, 4))
        return np.concatenate([np.minimum(b[:, :2], b[:, 2:]), np.maximum(b[:, :2], b[:, 2:])], 1)

    scores = rng.integers(0, 5, n).astype(np.float64) / 5 if ties else rng.uniform(0, 1, n)
    groups = rng.integers(0, n_groups, n)
    return boxes(), boxes(), scores, groups


def _run(backend, sub, obj, scores, groups, device="cpu", dtype=torch.float64, **kw):
    t = lambda a, dt=dtype: torch.as_tensor(a, dtype=dt, device=device)
    return triplet_nms(t(sub), t(obj), t(scores), t(groups, torch.int64), backend=backend, **kw).cpu().numpy()


BACKENDS = ["pytorch", pytest.param("cpu", marks=needs_cpu_kernel)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("ties", [False, True])
def test_matches_reference_loop(backend, seed, ties):
    sub, obj, scores, groups = _random_case(60, 4, seed, ties=ties)
    expected = reference_keep(sub, obj, scores, groups)
    got = _run(backend, sub, obj, scores, groups)
    assert got.dtype == np.bool_ and got.shape == (60,)
    np.testing.assert_array_equal(got, expected)
    assert 0 < got.sum() < 60  # the case really suppresses something


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("thresh,alpha,beta", [(0.5, 1.0, 1.0), (0.3, 2.0, 0.5), (0.9, 0.5, 0.0)])
def test_parameters(backend, thresh, alpha, beta):
    sub, obj, scores, groups = _random_case(50, 3, 11)
    expected = reference_keep(sub, obj, scores, groups, thresh, alpha, beta)
    got = _run(backend, sub, obj, scores, groups, thresh=thresh, alpha=alpha, beta=beta)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_hand_built_case(backend):
    # Two identical pairs in group 0 and one in group 1: the lower-scored duplicate in group 0 goes.
    sub = [[0, 0, 9, 9], [0, 0, 9, 9], [0, 0, 9, 9], [50, 50, 60, 60]]
    obj = [[20, 20, 29, 29], [20, 20, 29, 29], [20, 20, 29, 29], [20, 20, 29, 29]]
    got = _run(backend, sub, obj, [0.9, 0.8, 0.7, 0.6], [0, 0, 1, 0])
    np.testing.assert_array_equal(got, [True, False, True, True])
    # Equal scores: the higher index is visited first and kept.
    got = _run(backend, sub[:2], obj[:2], [0.5, 0.5], [3, 3])
    np.testing.assert_array_equal(got, [False, True])
    # Sub IoU 1, obj IoU 0.25 (areas 100 and 25 inside it): overlap 0.25**0.5 = 0.5, kept at 0.7, dropped at 0.4.
    sub2 = [[0, 0, 9, 9], [0, 0, 9, 9]]
    obj2 = [[0, 0, 9, 9], [0, 0, 4, 4]]
    np.testing.assert_array_equal(_run(backend, sub2, obj2, [0.9, 0.8], [0, 0]), [True, True])
    np.testing.assert_array_equal(_run(backend, sub2, obj2, [0.9, 0.8], [0, 0], thresh=0.4), [True, False])


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_and_single(backend):
    z = np.zeros((0, 4))
    got = _run(backend, z, z, np.zeros(0), np.zeros(0, dtype=np.int64))
    assert got.shape == (0,) and got.dtype == np.bool_
    np.testing.assert_array_equal(_run(backend, [[0, 0, 1, 1]], [[0, 0, 1, 1]], [0.1], [7]), [True])


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_inputs_and_large_group_count(backend):
    sub, obj, scores, groups = _random_case(300, 40, 5)
    sub, obj = np.round(sub), np.round(obj)  # exact in float32
    scores = np.float32(scores).astype(np.float64)
    expected = reference_keep(sub, obj, scores, groups)
    np.testing.assert_array_equal(_run(backend, sub, obj, scores, groups, dtype=torch.float32), expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_inputs_requiring_grad_and_non_contiguous(backend):
    sub, obj, scores, groups = _random_case(40, 3, 13)
    expected = reference_keep(sub, obj, scores, groups)
    t = lambda a: torch.as_tensor(a, dtype=torch.float64)
    sub_t = t(np.concatenate([sub, sub], 1))[:, 4:].requires_grad_()  # (N, 4) view with row stride 8
    scores_t = t(np.stack([scores, scores], 1))[:, 1].requires_grad_()
    got = triplet_nms(sub_t, t(obj), scores_t, torch.as_tensor(groups, dtype=torch.int32), backend=backend)
    np.testing.assert_array_equal(got.numpy(), expected)


def test_pytorch_per_group_path_for_large_inputs(monkeypatch):
    import importlib

    mod = importlib.import_module("rlipv2.layers.triplet_nms")

    sub, obj, scores, groups = _random_case(120, 5, 3)
    expected = reference_keep(sub, obj, scores, groups)
    monkeypatch.setattr(mod, "_FULL_MATRIX_MAX", 10)
    np.testing.assert_array_equal(_run("pytorch", sub, obj, scores, groups), expected)


def test_auto_backend_matches_pytorch():
    sub, obj, scores, groups = _random_case(80, 6, 8)
    np.testing.assert_array_equal(_run("auto", sub, obj, scores, groups), _run("pytorch", sub, obj, scores, groups))


def test_bad_inputs_raise_value_error():
    b = torch.zeros(3, 4)
    s = torch.zeros(3)
    g = torch.zeros(3, dtype=torch.int64)
    with pytest.raises(ValueError, match="sub_boxes must have shape"):
        triplet_nms(torch.zeros(3, 5), b, s, g)
    with pytest.raises(ValueError, match="obj_boxes must have shape"):
        triplet_nms(b, torch.zeros(2, 4), s, g)
    with pytest.raises(ValueError, match="scores must have shape"):
        triplet_nms(b, b, torch.zeros(3, 1), g)
    with pytest.raises(ValueError, match="groups must have shape"):
        triplet_nms(b, b, s, torch.zeros(4, dtype=torch.int64))
    with pytest.raises(ValueError, match="groups must be an integer"):
        triplet_nms(b, b, s, torch.zeros(3))
    with pytest.raises(ValueError, match="backend must be one of"):
        triplet_nms(b, b, s, g, backend="tpu")


@pytest.mark.gpu
@pytest.mark.parametrize("seed", range(3))
def test_cuda_kernel_matches_reference(seed):
    ext = load_extension()
    if ext is None or not ext.with_cuda():
        pytest.skip("rlipv2._C was built without CUDA kernels")
    sub, obj, scores, groups = _random_case(200, 5, seed, ties=seed == 2)
    expected = reference_keep(sub, obj, scores, groups)
    np.testing.assert_array_equal(_run("cuda", sub, obj, scores, groups, device="cuda"), expected)
    np.testing.assert_array_equal(_run("pytorch", sub, obj, scores, groups, device="cuda"), expected)
