"""`make run`'s last step: the web server and a worker together; Ctrl-C stops both."""

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, free_port, wait_for_http


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def ctrl_c(process):
    os.killpg(process.pid, signal.SIGINT)  # a terminal sends it to the whole foreground group


def terminate_parent_only(process):
    process.terminate()  # `docker stop`, systemd: the children must be taken down by run_dev


@pytest.mark.worker
@pytest.mark.parametrize("stop", [ctrl_c, terminate_parent_only])
def test_run_dev_serves_runs_a_worker_and_stops_both(tmp_path, stop):
    env = {key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "REDIS_URL"}}
    env["PROMPTLAB_VAR_DIR"] = str(tmp_path)  # the embedded default, as on a newcomer's machine
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True)
    port = free_port()
    process = subprocess.Popen(
        [*manage, "run_dev", f"127.0.0.1:{port}", "--concurrency", "1"],
        cwd=ROOT,
        env=env,
        start_new_session=True,  # its own process group, like a terminal's foreground job
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=60, process=process)
        ping = subprocess.run(
            [*manage, "ping_worker", "--timeout", "60"], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert ping.returncode == 0, ping.stderr
        assert "answered in" in ping.stdout

        stop(process)
        process.wait(timeout=30)
        deadline = time.monotonic() + 30
        while group_alive(process.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not group_alive(process.pid), "a web or worker process outlived run_dev"
    finally:
        if group_alive(process.pid):
            os.killpg(process.pid, signal.SIGKILL)
