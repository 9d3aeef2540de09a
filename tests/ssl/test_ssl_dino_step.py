"""The DINO pieces put together around a tiny RatsViT: one full training step."""
import numpy as np
import torch
from PIL import Image
from torch import nn

from rats_mm.models import RatsViT
from rats_mm.ssl import (DINOHead, DINOLoss, MultiCropAugmentation, build_teacher,
                         cancel_last_layer_gradients, collate_multicrop, cosine_schedule,
                         linear_warmup_then_constant, update_teacher)


class Student(nn.Module):
    """Backbone + head; crops of equal size share one backbone pass, output crop-major."""

    def __init__(self):
        super().__init__()
        self.backbone = RatsViT(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2,
                                num_registers=4)
        self.head = DINOHead(32, out_dim=64, hidden_dim=32, bottleneck_dim=16)

    def forward(self, crops):
        feats = []
        for size in dict.fromkeys(c.shape[-1] for c in crops):  # sizes in order of appearance
            same = torch.cat([c for c in crops if c.shape[-1] == size])  # (n * B, 3, s, s)
            feats.append(self.backbone(same))                             # (n * B, D)
        return self.head(torch.cat(feats))


def test_one_dino_step():
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
              for _ in range(2)]
    aug = MultiCropAugmentation(local_crops_number=2, global_crop_size=32, local_crop_size=16)
    torch.manual_seed(0)
    crops = collate_multicrop([aug(im) for im in images])
    student = Student()
    teacher = build_teacher(student)
    loss_fn = DINOLoss(64)
    opt = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=1e-3)

    with torch.no_grad():
        t_out = teacher(crops[:2])                                   # (2 * B, 64)
    s_out = student(crops)                                           # (4 * B, 64)
    loss = loss_fn(s_out, t_out, linear_warmup_then_constant(0, 10, 0.04, 0.07),
                   num_student_crops=len(crops))
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    cancel_last_layer_gradients(student.head)
    last_before = [p.clone() for p in student.head.last_layer.parameters()]
    opt.step()
    for p, old in zip(student.head.last_layer.parameters(), last_before):
        assert torch.equal(p, old)                                   # its grads were cancelled
    before = {n: p.clone() for n, p in teacher.named_parameters()}
    update_teacher(student, teacher, cosine_schedule(0, 100, 0.996, 1.0))
    changed = [n for n, p in teacher.named_parameters() if not torch.equal(p, before[n])]
    assert any(n.startswith('backbone.') for n in changed)
    assert torch.count_nonzero(loss_fn.center) > 0
