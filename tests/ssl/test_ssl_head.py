"""DINO head."""
import pytest
import torch

from rats_mm.ssl import DINOHead, cancel_last_layer_gradients


def weight_g(head):
    return head.last_layer.parametrizations.weight.original0


@pytest.mark.parametrize('nlayers, use_bn', [(1, False), (2, True), (3, False)])
def test_output_shape(nlayers, use_bn):
    head = DINOHead(24, out_dim=64, hidden_dim=32, bottleneck_dim=16, nlayers=nlayers,
                    use_bn=use_bn)
    assert head(torch.randn(5, 24)).shape == (5, 64)


def test_last_layer_rows_are_unit_norm():
    head = DINOHead(24, out_dim=64, hidden_dim=32, bottleneck_dim=16)
    torch.testing.assert_close(weight_g(head), torch.ones(64, 1))
    w = head.last_layer.weight                                   # (64, 16)
    torch.testing.assert_close(w.norm(dim=1), torch.ones(64))
    assert not hasattr(head.last_layer, 'bias') or head.last_layer.bias is None


def test_mlp_init_is_truncated_normal():
    head = DINOHead(512, out_dim=64, hidden_dim=512, bottleneck_dim=256)
    w = head.mlp[0].weight
    assert w.abs().max() <= 2.0 + 1e-6  # trunc_normal_ default bounds [-2, 2]
    assert abs(w.std().item() - 0.02) < 0.002
    assert torch.count_nonzero(head.mlp[0].bias) == 0


def test_g_frozen_when_norm_last_layer():
    head = DINOHead(24, out_dim=64, hidden_dim=32, bottleneck_dim=16, norm_last_layer=True)
    assert not weight_g(head).requires_grad
    opt = torch.optim.SGD([p for p in head.parameters() if p.requires_grad], lr=1.0)
    for _ in range(3):
        opt.zero_grad()
        head(torch.randn(8, 24)).pow(2).sum().backward()
        opt.step()
    torch.testing.assert_close(weight_g(head), torch.ones(64, 1))
    torch.testing.assert_close(head.last_layer.weight.norm(dim=1), torch.ones(64))


def test_g_trainable_without_norm_last_layer():
    head = DINOHead(24, out_dim=64, hidden_dim=32, bottleneck_dim=16, norm_last_layer=False)
    assert weight_g(head).requires_grad
    torch.testing.assert_close(weight_g(head), torch.ones(64, 1))


def test_cancel_last_layer_gradients():
    head = DINOHead(24, out_dim=64, hidden_dim=32, bottleneck_dim=16, norm_last_layer=False)
    head(torch.randn(4, 24)).sum().backward()
    assert all(p.grad is not None for p in head.last_layer.parameters())
    assert cancel_last_layer_gradients(head) == 2
    assert all(p.grad is None for p in head.last_layer.parameters())
    assert all(p.grad is not None for p in head.mlp.parameters())


def test_cancel_last_layer_gradients_in_wrapper_and_missing():
    wrapper = torch.nn.Sequential(torch.nn.Linear(4, 24),
                                  DINOHead(24, out_dim=64, hidden_dim=32, bottleneck_dim=16))
    wrapper(torch.randn(2, 4)).sum().backward()
    cancel_last_layer_gradients(wrapper)
    assert all(p.grad is None for p in wrapper[1].last_layer.parameters())
    assert wrapper[0].weight.grad is not None
    with pytest.raises(ValueError, match='last_layer'):
        cancel_last_layer_gradients(torch.nn.Linear(2, 2))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match='out_dim'):
        DINOHead(24, out_dim=0)
    with pytest.raises(ValueError, match='nlayers'):
        DINOHead(24, nlayers=0)


def test_logits_are_cosines_to_the_prototypes():
    """Independent recomputation: cosine of the normalised bottleneck output with each
    normalised prototype (fails if either normalisation is dropped)."""
    torch.manual_seed(0)
    head = DINOHead(16, out_dim=10, hidden_dim=32, bottleneck_dim=8)
    with torch.no_grad():
        head.last_layer.parametrizations.weight.original1.mul_(
            torch.linspace(0.5, 3.0, 10)[:, None])              # prototypes of unequal norms
        x = torch.randn(5, 16) * 4
        z = head.mlp(x)
        direction = head.last_layer.parametrizations.weight.original1
        want = torch.nn.functional.cosine_similarity(z[:, None], direction[None], dim=-1)
        assert torch.allclose(head(x), want, atol=1e-5)
