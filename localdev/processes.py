"""Run `ioc` sub-commands as child processes: the demo and the end-to-end tests use this to start
workers, kill them (-9 included) and restart them, exactly as an operator would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from localdev.runtime import PROJECT_ROOT


class ChildCommand:
    """One child process (by default `python -m ioc ...`) in its own process group, with its
    output in a log file."""

    def __init__(
        self,
        args: list[str],
        log_path: Path,
        env: dict[str, str] | None = None,
        *,
        program: list[str] | None = None,
    ) -> None:
        self.args = args
        self.program = [sys.executable, "-m", "ioc"] if program is None else program
        self.log_path = log_path
        self.env = dict(os.environ if env is None else env)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ChildCommand:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                [*self.program, *self.args],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=self.env, cwd=PROJECT_ROOT, start_new_session=True,
            )  # fmt: skip
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        """SIGKILL the whole process group: no clean-up, no final commit."""
        if self.running():
            os.killpg(self.pid, signal.SIGKILL)
            self.wait(10)

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit code."""
        if self.proc is None:
            return None
        if self.running():
            os.killpg(self.pid, signal.SIGTERM)
            if self.wait(timeout) is None:
                os.killpg(self.pid, signal.SIGKILL)
                self.wait(10)
        return self.proc.returncode

    def wait(self, timeout: float) -> int | None:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def wait_http_ok(url: str, timeout: float, child: ChildCommand | None = None) -> None:
    """Poll `url` until it answers 200; fail early if `child` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child is not None and not child.running():
            raise RuntimeError(f"{' '.join(child.args)} exited early:\n{child.log_tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    tail = child.log_tail() if child else ""
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s\n{tail}")
