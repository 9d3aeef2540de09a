"""CollapseMonitorHook: the collapsed state, its patience, and the diagnostic that moved first."""


def test_collapse_monitor_warns_after_a_sustained_stretch():
    from types import SimpleNamespace

    from mmengine.logging import MessageHub

    from rats_mm.pretrain.hooks import CollapseMonitorHook
    warnings = []
    runner = SimpleNamespace(iter=0, logger=SimpleNamespace(warning=warnings.append),
                             message_hub=MessageHub.get_instance('collapse_test'))
    hook = CollapseMonitorHook(patience=3)
    uniform = {'teacher_entropy_ratio': 0.97, 'teacher_batch_entropy_ratio': 0.99}
    healthy = {'teacher_entropy_ratio': 0.3, 'teacher_batch_entropy_ratio': 0.8}
    one_hot = {'teacher_entropy_ratio': 0.01, 'teacher_batch_entropy_ratio': 0.02}
    for outputs in (uniform, uniform, healthy, uniform, uniform):
        hook.after_train_iter(runner, 0, outputs=outputs)
    assert warnings == []                      # the stretch was broken by a healthy iteration
    hook.after_train_iter(runner, 0, outputs=uniform)
    assert len(warnings) == 1 and 'collapsed (uniform)' in warnings[0]
    for _ in range(3):
        hook.after_train_iter(runner, 0, outputs=one_hot)
    assert len(warnings) == 2 and 'collapsed (one-hot)' in warnings[1]
    assert runner.message_hub.get_scalar('train/collapse_warnings').current() == 2


def test_collapse_warning_names_the_diagnostic_that_moved_first():
    from types import SimpleNamespace

    from mmengine.logging import MessageHub

    from rats_mm.pretrain.diagnostics import CollapseDiagnosticsHook
    from rats_mm.pretrain.hooks import CollapseMonitorHook
    diagnostics = CollapseDiagnosticsHook()
    diagnostics.records = [{'iter': 0, 'value_norm_last_block': 1.0, 'embedding_cosine': 0.3},
                           {'iter': 50, 'value_norm_last_block': 2.2, 'embedding_cosine': 0.5},
                           {'iter': 100, 'value_norm_last_block': 3.0,
                            'embedding_cosine': 0.9}]
    warnings = []
    monitor = CollapseMonitorHook(patience=1)
    runner = SimpleNamespace(iter=100, logger=SimpleNamespace(warning=warnings.append),
                             message_hub=MessageHub.get_instance('first_sign_test'),
                             hooks=[monitor, diagnostics])
    monitor.after_train_iter(runner, 0, outputs={'teacher_entropy_ratio': 0.97,
                                                 'teacher_batch_entropy_ratio': 0.99})
    assert len(warnings) == 1
    assert ('Diagnostics, first to move: value_growth at iter 50 (the last block\'s value '
            'vectors doubled') in warnings[0]
    assert warnings[0].endswith('then embedding_cosine at 100.')


def test_collapse_patience_counts_iterations_between_readings():
    """Readings every 50 iterations with patience 100: the warning comes with the second
    collapsed reading in a row, after 100 iterations, not after 100 readings."""
    from types import SimpleNamespace

    from mmengine.logging import MessageHub

    from rats_mm.pretrain.hooks import CollapseMonitorHook
    warnings = []
    runner = SimpleNamespace(iter=0, logger=SimpleNamespace(warning=warnings.append),
                             message_hub=MessageHub.get_instance('collapse_interval_test'),
                             model=SimpleNamespace(stats_interval=50))
    hook = CollapseMonitorHook(patience=100)
    uniform = {'teacher_entropy_ratio': 0.97, 'teacher_batch_entropy_ratio': 0.99}
    hook.after_train_iter(runner, 0, outputs=uniform)
    assert warnings == []
    hook.after_train_iter(runner, 0, outputs=uniform)
    assert len(warnings) == 1 and 'for the last 100 iterations' in warnings[0]
    hook.after_train_iter(runner, 0, outputs=uniform)
    assert len(warnings) == 1
