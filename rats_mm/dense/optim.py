"""Layer-wise learning-rate decay for RatsViT backbones inside mmseg / mmdet models."""
import re

from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS

from ..ssl.distill import NO_DECAY_NAMES

# Parameters (parts of their names) that never take weight decay: the backbone's
# (``NO_DECAY_NAMES``: tokens, position table, the cosine logits' temperatures) and the
# dense heads' query and level tables.
NO_DECAY_KEYS = NO_DECAY_NAMES + ('query_embed', 'query_feat', 'level_embed',
                                  'register_queries.position', 'register_queries.extra')


def vit_layer_id(name, num_layers, prefix='backbone.vit.'):
    """Depth of a parameter: 0 for the embeddings, i + 1 for block i, ``num_layers + 1`` for
    the final norm and everything outside the backbone."""
    if not name.startswith(prefix):
        return num_layers + 1
    rest = name[len(prefix):]
    if rest.startswith(('patch_embed', 'pos_embed', 'cls_token', 'registers')):
        return 0
    match = re.match(r'blocks\.(\d+)\.', rest)
    return int(match.group(1)) + 1 if match else num_layers + 1


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """lr x ``layer_decay_rate ** (num_layers + 1 - depth)`` per backbone depth, no weight
    decay on 1-D parameters and on ``NO_DECAY_KEYS`` (plus ``no_decay_keys``).

    ``paramwise_cfg = dict(num_layers=12, layer_decay_rate=0.9, no_decay_keys=())``.
    """

    def add_params(self, params, module, prefix='', is_dcn_module=None):
        cfg = self.paramwise_cfg
        if 'num_layers' not in cfg or 'layer_decay_rate' not in cfg:
            raise KeyError('LayerDecayOptimWrapperConstructor needs paramwise_cfg.num_layers '
                           'and paramwise_cfg.layer_decay_rate')
        num_layers, rate = cfg['num_layers'], cfg['layer_decay_rate']
        no_decay_keys = NO_DECAY_KEYS + tuple(cfg.get('no_decay_keys', ()))
        groups = {}
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            depth = vit_layer_id(name, num_layers)
            no_decay = param.ndim == 1 or any(k in name for k in no_decay_keys)
            group = groups.setdefault((depth, no_decay), {
                'params': [], 'lr': self.base_lr * rate ** (num_layers + 1 - depth),
                'weight_decay': 0.0 if no_decay else self.base_wd})
            group['params'].append(param)
        params.extend(groups[k] for k in sorted(groups))
        print_log(f'layer decay {rate} over {num_layers} blocks: {len(groups)} groups',
                  logger='current')
