"""What the emergence run measures while it trains, on the device: k-NN of teacher and
student, the teacher targets' entropies and, for RATS, the register attention of every
block, how alike the registers of a head are and how many of them an image uses."""
import torch
import torch.nn.functional as F

from ..analysis.probes.classifiers import contiguous_labels
from ..analysis.registers.attention import register_attention_profile
from ..analysis.registers.stats import register_similarity, registers_in_use
from ..analysis.parts.segment import register_assignment
from ..data.images import LUMA, normalise_uint8
from ..ssl.diagnostics import training_diagnostics
from ..ssl.knn import knn_accuracy

__all__ = ['KNNSet', 'embed', 'eval_view_of', 'eval_views', 'measure_point', 'normalise',
           'register_figures']

normalise = normalise_uint8  # (B, 3, H, W) uint8 -> float32, ImageNet mean / std


def eval_view_of(recipe):
    """(side, grayscale) of a recipe's evaluation view: its global crop size, grayscale when
    every training view is."""
    return recipe.global_crop_size, recipe.augmentation.get('grayscale_p', 0) >= 1


def eval_views(images, size, grayscale):
    """The single evaluation view of ``EvalTransform(size, crop_ratio=1.0, grayscale)``:
    grayscale (optional), bicubic resize of the whole square image to ``size``, normalise.

    Args:
        images (Tensor): (B, 3, H, W) uint8 square images.
        size (int): Output side.
        grayscale (bool): Luma replicated to 3 channels first.

    Returns:
        Tensor: (B, 3, size, size) float32.
    """
    x = images.float()
    if grayscale:
        luma = (x * x.new_tensor(LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True)  # (B, 1, H, W)
        x = luma.expand(-1, 3, -1, -1)
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode='bicubic', antialias=True,
                          align_corners=False).clamp(0, 255)
    return normalise(x.round().to(torch.uint8))


@torch.no_grad()
def embed(backbone, images, size, grayscale, batch_size=512, autocast_dtype=None):
    """Image embeddings (``backbone.forward``) of uint8 images, in batches, on their device.

    Returns:
        Tensor: (M, width) float32, width ``backbone.head_hidden_size`` (D, or a register
        read-out's).
    """
    out = []
    for start in range(0, images.shape[0], batch_size):
        views = eval_views(images[start:start + batch_size], size, grayscale)
        with torch.autocast(views.device.type, dtype=autocast_dtype or torch.float32,
                            enabled=autocast_dtype is not None):
            out.append(backbone(views).float())
    return torch.cat(out)


class KNNSet:
    """k-NN bank and queries kept on the device (uint8), labels remapped as the probes do.

    Args:
        bank (tuple[Tensor, Tensor]): (M, 3, S, S) uint8 images and (M,) labels.
        query (tuple[Tensor, Tensor]): The same for the queries.
        device (torch.device | str): Where they live.
    """

    def __init__(self, bank, query, device):
        bank_labels, query_labels, self.num_classes = contiguous_labels(bank[1], query[1])
        self.bank_images = bank[0].to(device)
        self.query_images = query[0].to(device)
        self.bank_labels = bank_labels.to(device)
        self.query_labels = query_labels.to(device)  # a class the bank lacks: -1, wrong

    def top1(self, backbone, size, grayscale, autocast_dtype=None, k=20, temperature=0.07):
        """DINO's weighted k-NN top-1 of ``backbone``'s embeddings (eval mode)."""
        bank = embed(backbone, self.bank_images, size, grayscale, autocast_dtype=autocast_dtype)
        query = embed(backbone, self.query_images, size, grayscale,
                      autocast_dtype=autocast_dtype)
        return knn_accuracy(bank, self.bank_labels, query, self.query_labels,
                            self.num_classes, k, temperature)


@torch.no_grad()
def register_figures(backbone, images):
    """Register attention and usage of a RATS backbone on native-size images.

    Args:
        backbone (RatsViT): ``attn_mode='rats'``, eval mode.
        images (Tensor): (B, 3, H, W) uint8 images (H, W multiples of the patch size).

    Returns:
        dict: ``attention_by_block`` (per block, ``step_statistics``), the last block's
        ``register_last_block_*`` figures, ``register_within_head_similarity`` (mean cosine
        of two final registers of one head) and ``registers_in_use`` (registers winning more
        than 5 % of an image's patches).
    """
    x = normalise(images)
    blocks = register_attention_profile(backbone, [x])
    out = backbone.forward_tokens(x)
    regs, patches = out['x_norm_regtokens'].float().cpu(), out['x_norm_patchtokens'].float().cpu()
    labels = register_assignment(patches, regs)                               # (B, L)
    figures = {'attention_by_block': blocks,
               'register_within_head_similarity':
                   register_similarity(regs, backbone.num_heads)['within_head'],
               'registers_in_use': registers_in_use(labels, backbone.num_registers)}
    figures.update({f'register_last_block_{k}': v for k, v in blocks[-1].items()})
    return figures


def measure_point(dino, knn, attention_images, recipe, autocast_dtype=None, optimizer=None):
    """One measurement of a model in training (teacher and student put back in their modes).

    Args:
        dino (DINODistillation): The model.
        knn (KNNSet): k-NN data on the device.
        attention_images (Tensor | None): uint8 images for the register figures (RATS) and
            the collapse diagnostics (every model).
        recipe (Recipe): Crop size and photometrics of the evaluation view.
        autocast_dtype (torch.dtype | None): Mixed precision of the embeddings.
        optimizer (torch.optim.Optimizer | None): The student's, for the update ratios.

    Returns:
        dict: ``knn_top1`` (teacher), ``knn_top1_student``, the teacher entropies of the last
        batch (when one was trained), the collapse diagnostics
        (``rats_mm.ssl.diagnostics.training_diagnostics``) and
        the register figures (RATS).
    """
    size, gray = eval_view_of(recipe)
    teacher, student = dino.teacher['backbone'], dino.student['backbone']
    was_training = student.training
    student.eval()
    try:
        point = {'knn_top1': knn.top1(teacher, size, gray, autocast_dtype),
                 'knn_top1_student': knn.top1(student, size, gray, autocast_dtype)}
    finally:
        student.train(was_training)
    stats = dino.criterion.last_stats  # the last trained batch's targets
    if stats:
        point.update(teacher_entropy_ratio=stats['entropy_ratio'],
                     teacher_batch_entropy_ratio=stats['batch_entropy_ratio'])
    if attention_images is not None:
        point.update(training_diagnostics(teacher, dino.student, optimizer, dino.criterion,
                                          normalise(attention_images), teacher))  # float32
    if attention_images is not None and getattr(teacher, 'attn_mode', None) == 'rats':
        point.update(register_figures(teacher, attention_images))
    return point
