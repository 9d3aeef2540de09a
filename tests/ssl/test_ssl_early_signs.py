"""The diagnostic that moved first on the way to a collapse."""
import math

from rats_mm.ssl.collapse import EARLY_SIGNS, early_signs, first_sign


def point(step, within=0.5, value=2.0, cosine=0.3, entropy=0.6):
    return {'step': step, 'register_within_head_similarity': within,
            'value_norm_last_block': value,
            'embedding_cosine': cosine, 'teacher_entropy_ratio': entropy}


def test_each_sign_is_dated_by_its_first_point_against_the_init():
    history = [point(0, entropy=None),                  # the init: no targets yet
               point(5, within=0.6, entropy=0.85),
               point(10, within=0.64),                  # +0.14: not yet a merge
               point(20, within=0.66, value=4.1),       # merge (+0.16) and value growth
               point(30, within=0.7, value=5.0, cosine=0.85),
               point(40, within=0.9, value=6.0, cosine=0.9, entropy=0.95)]
    assert early_signs(history) == {'merge': 20, 'value_growth': 20, 'embedding_cosine': 30,
                                    'entropy': 40}
    sentence = first_sign(history)
    assert sentence.startswith('first to move: merge at step 20 (the registers of a head')
    assert sentence.endswith('then value_growth at 20, embedding_cosine at 30, entropy at 40')


def test_embedding_cosine_needs_both_a_rise_and_a_high_value():
    # up 0.4 but still below 0.8; then 0.85 from an init of 0.7 (up only 0.15)
    assert early_signs([point(0, cosine=0.2), point(1, cosine=0.6)]) == {}
    assert early_signs([point(0, cosine=0.7), point(1, cosine=0.85)]) == {}
    assert early_signs([point(0, cosine=0.6), point(1, cosine=0.81)]) == {'embedding_cosine': 1}


def test_missing_and_non_finite_readings_do_not_count():
    vit = [{'iter': 0, 'value_norm_last_block': 1.0, 'teacher_entropy_ratio': None},
           {'iter': 50, 'value_norm_last_block': math.nan, 'teacher_entropy_ratio': 0.95},
           {'iter': 100, 'value_norm_last_block': 2.5}]
    # entropy needs no init reading (a run's first point has no targets); the value does
    assert early_signs(vit, step_key='iter') == {'entropy': 50, 'value_growth': 100}
    assert early_signs([{'step': 0}, point(1, value=9.0), point(2, value=20.0)]) == {}
    assert first_sign(vit, step_key='iter').startswith('first to move: entropy at iter 50')
    assert first_sign([point(0)]) is None and first_sign([]) is None


def test_every_sign_reads_a_diagnostic_the_runs_record():
    from rats_mm.models import RatsViT
    from rats_mm.ssl.diagnostics import training_diagnostics
    import torch
    torch.manual_seed(0)
    model = RatsViT(img_size=16, patch_size=8, embed_dim=24, depth=1, num_heads=3,
                    num_registers=6).eval()
    x = torch.randn(3, 3, 16, 16)
    def pooled(images):
        return model.forward_tokens(images)['x_norm_regtokens'].mean(1)
    figures = training_diagnostics(model, model, None, None, x, pooled)
    keys = {key for key, _, _ in EARLY_SIGNS.values()} - {'teacher_entropy_ratio'}
    assert keys <= set(figures)
    regs = torch.nn.functional.normalize(model.forward_tokens(x)['x_norm_regtokens'], dim=-1)
    sims = [(regs[:, i] * regs[:, j]).sum(-1).mean() for i in range(6) for j in range(6)
            if i != j and i // 2 == j // 2]                 # 2 registers per head
    assert math.isclose(figures['register_within_head_similarity'],
                        torch.stack(sims).mean().item(), rel_tol=1e-5)


def test_every_message_points_to_the_evidence():
    from rats_mm.ssl.collapse import COLLAPSE_ADVICE
    messages = [*COLLAPSE_ADVICE.values(), *(text for _, _, text in EARLY_SIGNS.values())]
    assert all(m.endswith("see docs/findings.md, 'Collapse and its stabilisers'")
               for m in messages)
    assert all(' Try ' in m for m in messages)
