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


def test_diverged_means_stopped_on_a_non_finite_loss():
    stopped = TrainResult(None, [], {'stopped_early': 'non-finite DINO loss at step 342'})
    timed_out = TrainResult(None, [], {'stopped_early': 'time budget exceeded at step 9 of 10'})
    finished = TrainResult(None, [], {'stopped_early': None})
    assert _diverged(stopped) and not _diverged(timed_out) and not _diverged(finished)
