"""A DINO step's forward and backward on torch's meta device: shapes flow through backbone,
head and loss with no value read back to the host and no tensor made explicitly on the CPU
(either fails on meta; a factory call without a device follows the meta context)."""
import torch

from rats_mm.models import rats_small_patch16
from rats_mm.ssl import DINOHead, DINOLoss


def test_dino_step_forward_runs_on_the_meta_device():
    k = 4096
    with torch.device('meta'):
        backbone = rats_small_patch16(num_registers=48).train()
        head = DINOHead(384, k)
        loss = DINOLoss(k).train()
        globals_ = torch.randn(2 * 2, 3, 224, 224)                       # 2 views x B=2
        locals_ = torch.randn(4 * 2, 3, 96, 96)                          # 4 views x B=2
        student = head(torch.cat([backbone(globals_), backbone(locals_)]))  # (12, K)
        with torch.no_grad():
            teacher = head(backbone(globals_))                           # (4, K)
        value = loss(student, teacher, 0.04, 6)
        value.backward()
    assert value.device.type == 'meta' and value.shape == ()
    assert loss.center.device.type == 'meta'
    assert backbone.registers.grad is not None and backbone.registers.grad.is_meta
