"""The run's summary file: strict JSON even when a model diverged, and a diverged model is
recognised (it is then neither exported nor evaluated)."""
import json
import math

from rats_mm.science.run import Run, _diverged, _finite
from rats_mm.science.train import TrainResult


def test_summary_is_strict_json_with_non_finite_figures(tmp_path):
    run = Run(str(tmp_path))
    run.write(loss_rats=math.nan, history={'rats': [{'step': 3, 'loss': math.inf}]},
              knn_top1_rats=0.5)
    text = (tmp_path / 'summary.json').read_text()
    summary = json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    assert summary['loss_rats'] is None and summary['history']['rats'][0]['loss'] is None
    assert summary['knn_top1_rats'] == 0.5
    assert _finite((1.0, [math.nan], {'a': -math.inf})) == [1.0, [None], {'a': None}]


def test_diverged_means_stopped_on_a_non_finite_loss(monkeypatch):
    """train_model flags a run whose last point's loss is not finite, whatever the stop
    message says; a run stopped by its time budget, or finished, is not flagged."""
    import torch

    from rats_mm.science import train
    from rats_mm.science.run import smoke_recipe

    real_trainer = train._Trainer

    def fake_trainer(loss):
        class Fake(real_trainer):
            def plan(self, seconds, max_steps):
                return 1, 1, 0.1

            def train(self, total, every, seconds):
                self.history.append({'step': 1, 'loss': loss})
                return 1, 0.1, 'time budget exceeded at step 1 of 2'
        return Fake

    monkeypatch.setattr(train, 'measure_point', lambda *a, **k: {})
    kwargs = dict(img_size=16, patch_size=8, embed_dim=24, depth=1, num_heads=3,
                  num_registers=3)
    images = torch.zeros(16, 3, 16, 16, dtype=torch.uint8)
    results = {}
    for loss in (math.nan, 5.0):
        monkeypatch.setattr(train, '_Trainer', fake_trainer(loss))
        results[loss] = train.train_model('m', kwargs, images, None, None, smoke_recipe(),
                                          1.0, torch.device('cpu'), log=lambda m: None)
    assert _diverged(results[math.nan]) and not _diverged(results[5.0])
    assert not _diverged(TrainResult(None, [], {'stopped_early': None}))
