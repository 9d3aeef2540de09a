"""tools/dist_run.sh: the rendezvous port and address (DRY_RUN=1 prints the torchrun
command instead of running it)."""
import os
import re
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(args, **env):
    full = {k: v for k, v in os.environ.items()
            if k not in ('PORT', 'MASTER_PORT', 'MASTER_ADDR', 'NNODES', 'NODE_RANK')}
    full.update(DRY_RUN='1', **env)
    return subprocess.run(['bash', 'tools/dist_run.sh', *args], cwd=ROOT, env=full,
                          capture_output=True, text=True, timeout=60)


def _port(out):
    return int(re.search(r'--master_port=(\d+)', out.stdout).group(1))


def test_one_node_gets_a_free_port_per_job():
    first, second = (_run(['pretrain.py', '1', 'cfg.py', '2']) for _ in range(2))
    assert first.returncode == 0 and second.returncode == 0, first.stderr
    assert _port(first) != 29500 or _port(second) != 29500
    assert '--nproc_per_node=2' in first.stdout
    assert first.stdout.rstrip().endswith('cfg.py --launcher pytorch')  # no extra args: fine


def test_port_and_master_port_are_honoured():
    assert _port(_run(['pretrain.py', '1', 'cfg.py', '2'], MASTER_PORT='29611')) == 29611
    assert _port(_run(['pretrain.py', '1', 'cfg.py', '2'], PORT='29612',
                      MASTER_PORT='29611')) == 29612
    out = _run(['test.py', '2', 'cfg.py', 'ckpt.pth', '4', '--work-dir', 'w'], PORT='29613')
    assert 'cfg.py ckpt.pth --launcher pytorch --work-dir w' in out.stdout


def test_several_nodes_need_an_address_and_a_port():
    out = _run(['pretrain.py', '1', 'cfg.py', '8'], NNODES='2', NODE_RANK='1')
    assert out.returncode == 2 and 'needs MASTER_ADDR and PORT' in out.stderr
    out = _run(['pretrain.py', '1', 'cfg.py', '8'], NNODES='2', NODE_RANK='1',
               MASTER_ADDR='10.0.0.1', MASTER_PORT='29700')
    assert '--master_addr=10.0.0.1 --master_port=29700' in out.stdout
    assert '--nnodes=2 --node_rank=1' in out.stdout


def test_missing_arguments_are_a_usage_error():
    out = _run(['pretrain.py', '1', 'cfg.py'])
    assert out.returncode == 2 and 'needs 1 positional argument(s) and NPROCS' in out.stderr
