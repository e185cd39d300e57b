"""Small building blocks shared by the RLIPv2 heads and decoders: MLP, multi-branch fusion, inverse sigmoid."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MLP", "MultiBranchFusion", "inverse_sigmoid"]


class MLP(nn.Module):
    """``num_layers`` Linear layers with ReLU in between (DETR's FFN head); parameters ``layers.{i}``."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int):
        super().__init__()
        self.num_layers = num_layers
        h = [hidden_dim] * (num_layers - 1)
        self.layers = nn.ModuleList(nn.Linear(n, k) for n, k in zip([input_dim] + h, h + [output_dim]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = F.relu(layer(x)) if i < self.num_layers - 1 else layer(x)
        return x


class MultiBranchFusion(nn.Module):
    """Multi-branch fusion (MBF, from SCG): relu(sum_k fc3_k(relu(fc1_k(a) * fc2_k(b)))).

    ``cardinality`` branches each map the inputs to ``representation_size / cardinality`` and back.
    Parameters ``fc_1.{k}``, ``fc_2.{k}``, ``fc_3.{k}`` match the official checkpoints.
    """

    def __init__(self, appearance_size: int, spatial_size: int, representation_size: int, cardinality: int):
        super().__init__()
        sub = representation_size // cardinality
        if sub * cardinality != representation_size:
            raise ValueError(f"representation_size {representation_size} not divisible by cardinality {cardinality}")
        self.cardinality = cardinality
        self.fc_1 = nn.ModuleList(nn.Linear(appearance_size, sub) for _ in range(cardinality))
        self.fc_2 = nn.ModuleList(nn.Linear(spatial_size, sub) for _ in range(cardinality))
        self.fc_3 = nn.ModuleList(nn.Linear(sub, representation_size) for _ in range(cardinality))

    def forward(self, appearance: torch.Tensor, spatial: torch.Tensor) -> torch.Tensor:
        out = None
        for fc_1, fc_2, fc_3 in zip(self.fc_1, self.fc_2, self.fc_3):
            branch = fc_3(F.relu(fc_1(appearance) * fc_2(spatial)))
            out = branch if out is None else out + branch
        return F.relu(out)


def inverse_sigmoid(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """log(x / (1 - x)) with both terms clamped at ``eps`` (official ``util.misc.inverse_sigmoid``)."""
    x = x.clamp(min=0, max=1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))
