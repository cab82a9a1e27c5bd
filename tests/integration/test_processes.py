"""Process hygiene: a crashed parent takes its devnet children with it."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from devnet.process import pid_alive

pytestmark = pytest.mark.integration

CHILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from devnet.anvil import start_anvil
    from devnet.redis_server import start_redis
    root = Path(sys.argv[1])
    a = start_anvil(31337, log_path=root / "a.log")
    r = start_redis(log_path=root / "r.log", data_dir=root)
    print(a.pid, r.pid, flush=True)
    time.sleep(60)
""")


def test_killed_parent_leaves_no_process(tmp_path: Path) -> None:
    parent = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    pids = [int(p) for p in parent.stdout.readline().split()]
    assert len(pids) == 2 and all(pid_alive(p) for p in pids)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(pid_alive(p) for p in pids)
