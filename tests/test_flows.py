"""The AllInOne coupling block and its sequence (detectors.flows): invertible, and the
log-determinant it reports is that of its Jacobian, computed by autograd."""

import numpy as np
import pytest
import torch
from torch import nn

from detectors.flows import AllInOneBlock, SequenceFlow, random_permutation, random_rotation


def fc_subnet(c_in, c_out):
    return nn.Sequential(nn.Linear(c_in, 2 * c_in), nn.ReLU(), nn.Linear(2 * c_in, c_out))


def conv_subnet(c_in, c_out):
    return nn.Sequential(nn.Conv2d(c_in, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, c_out, 3, padding=1))


def perturbed_flow(channels, subnet, blocks=3, cond_channels=0, permute_soft=False, seed=0):
    """A float64 flow whose subnet weights (×5) and global affine are moved away from their start,
    so the test does not pass by the 0.1 damping or g = 1 alone."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    flow = SequenceFlow([AllInOneBlock(channels, subnet, cond_channels=cond_channels, clamp=1.9,
                                       permute_soft=permute_soft, generator=generator) for _ in range(blocks)])
    with torch.no_grad():
        for name, p in flow.named_parameters():
            if "subnet" in name:
                p.mul_(5.0)
            else:
                p.add_(torch.randn_like(p) * 0.5)
    return flow.double()


def autograd_log_det(flow, x, cond=None):
    """log|det| of the Jacobian of the whole sample (all entries flattened), one sample at a time."""
    out = []
    for i in range(len(x)):
        c = None if cond is None else cond[i:i + 1]

        def f(v, c=c):
            return flow(v.view(1, *x.shape[1:]), c)[0].flatten()

        jacobian = torch.autograd.functional.jacobian(f, x[i].flatten())
        out.append(torch.linalg.slogdet(jacobian)[1])
    return torch.stack(out)


@pytest.mark.parametrize("permute_soft", [False, True])
def test_conditional_vector_flow_log_det_and_inverse(permute_soft):
    flow = perturbed_flow(7, fc_subnet, cond_channels=3, permute_soft=permute_soft)
    x = torch.randn(4, 7, dtype=torch.float64)
    cond = torch.randn(4, 3, dtype=torch.float64)
    z, log_det = flow(x, cond)
    assert torch.allclose(log_det, autograd_log_det(flow, x, cond), atol=1e-10)
    back, inverse_log_det = flow.inverse(z, cond)
    assert torch.allclose(back, x, atol=1e-10) and torch.allclose(inverse_log_det, -log_det, atol=1e-10)


@pytest.mark.parametrize("permute_soft", [False, True])
def test_convolutional_map_flow_log_det_and_inverse(permute_soft):
    flow = perturbed_flow(5, conv_subnet, permute_soft=permute_soft)  # odd C: x1 gets 3 channels, x2 2
    x = torch.randn(2, 5, 4, 3, dtype=torch.float64)
    z, log_det = flow(x)
    assert z.shape == x.shape
    assert torch.allclose(log_det, autograd_log_det(flow, x), atol=1e-10)
    back, _ = flow.inverse(z)
    assert torch.allclose(back, x, atol=1e-10)


def test_global_scale_starts_at_one_and_the_block_starts_near_a_permutation():
    block = AllInOneBlock(6, fc_subnet, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(block.global_gain(), torch.ones(6), atol=1e-6)
    x = torch.randn(3, 6)
    y, _ = block(x)
    # with g = 1, b = 0 and the coupling damped by 0.1·tanh, y is x permuted up to small changes of x2
    assert torch.allclose(y, x[:, block.mixing.argmax(dim=1)], atol=1.0)
    assert torch.equal(block.mixing.sum(dim=0), torch.ones(6))


def test_soft_clamp_bounds_the_log_scale():
    block = AllInOneBlock(4, fc_subnet, clamp=1.9, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for p in block.subnet.parameters():
            p.mul_(1000.0)
    j, _ = block._coefficients(torch.randn(8, 2) * 100, None)
    assert j.abs().max() <= 1.9 and j.abs().max() > 1.8


def test_mixings_are_orthogonal_and_seeded():
    for draw in (random_rotation, random_permutation):
        w = draw(9, torch.Generator().manual_seed(3)).double()
        assert torch.allclose(w @ w.T, torch.eye(9, dtype=torch.float64), atol=1e-6)
        assert torch.linalg.det(w) > 0 or draw is random_permutation
        assert torch.equal(w, draw(9, torch.Generator().manual_seed(3)).double())
    rotations = np.array([random_rotation(3, torch.Generator().manual_seed(s))[0, 0].item() for s in range(400)])
    assert abs(rotations.mean()) < 0.1  # Haar on SO(3): each entry has mean 0


def test_state_dict_round_trips_the_mixing():
    block = AllInOneBlock(5, fc_subnet, permute_soft=True, generator=torch.Generator().manual_seed(2))
    other = AllInOneBlock(5, fc_subnet, permute_soft=True, generator=torch.Generator().manual_seed(9))
    other.load_state_dict(block.state_dict())
    x = torch.randn(2, 5)
    assert torch.equal(block(x)[0], other(x)[0])
