"""Child processes that can never outlive the testbed.

A leaked kube-apiserver or etcd keeps ports and gigabytes busy and makes the next run fail in
confusing ways, so every binary the testbed starts goes through `ManagedProcess`:

* each child gets its own process group, and stopping kills the whole group (etcd and the kube
  binaries do not fork, but helpers might);
* the kernel kills the child if the process that started it dies, even by SIGKILL
  (`PR_SET_PDEATHSIG`), when it is started from the main thread;
* an `atexit` hook and SIGTERM/SIGHUP handlers stop whatever is still registered (and delete the
  scratch directories registered with `remove_on_exit`), so a test run that fails, is interrupted
  (KeyboardInterrupt) or is terminated by CI cleans up too;
* output goes to a log file whose tail is quoted in every error, because "did not become healthy"
  without the process's own last words is useless.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType

_PR_SET_PDEATHSIG = 1
_LOG_TAIL_LINES = 30


class ProcessFailedError(RuntimeError):
    """A testbed process exited, or never became healthy; the message carries its log tail."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the usual small race is accepted)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: ask the kernel to SIGKILL us when the parent dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            text = handle.read().decode(errors="replace")
    except OSError as error:
        return f"(no log: {error})"
    return "\n".join(text.splitlines()[-lines:])


class ManagedProcess:
    """One long-running child with a log file; registered for cleanup until stopped."""

    def __init__(
        self,
        *,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self._env = dict(env) if env is not None else None
        self._cwd = cwd
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # PR_SET_PDEATHSIG fires when the *thread* that forked exits, so only use it from the main
        # thread, whose end is the end of the process.
        preexec = _die_with_parent if threading.current_thread() is threading.main_thread() else None
        with self.log_path.open("ab") as log:
            log.write(f"$ {' '.join(self.argv)}\n".encode())
            log.flush()
            self._popen = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self._env,
                cwd=self._cwd,
                start_new_session=True,
                preexec_fn=preexec,  # noqa: PLW1509 - only prctl, only from the main thread (see above)
            )
        _REGISTRY.add(self)
        return self

    def alive(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit status once the process has ended, else None."""
        return self._popen.poll() if self._popen is not None else None

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        return tail(self.log_path, lines)

    def failure(self, problem: str) -> ProcessFailedError:
        """An error naming the process, its state and the tail of its log."""
        state = "running" if self.alive() else f"exited with {self._popen.returncode if self._popen else '?'}"
        return ProcessFailedError(
            f"{self.name} {problem} ({state}); log {self.log_path}, last lines:\n{self.log_tail()}"
        )

    def check_alive(self) -> None:
        if not self.alive():
            raise self.failure("is not running")

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the process group, SIGKILL it after `grace` seconds; idempotent."""
        popen = self._popen
        _REGISTRY.discard(self)
        if popen is None:
            return
        if popen.poll() is None:
            _signal_group(popen.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(timeout=grace)
        # The leader may be gone while other group members linger: always sweep the group.
        _signal_group(popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout=5)

    def __repr__(self) -> str:
        return f"<ManagedProcess {self.name} pid={self.pid}>"


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class _Registry:
    """Every process not yet stopped, stopped in reverse start order on exit or on a signal."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: list[ManagedProcess] = []
        self._scratch: set[Path] = set()
        self._hooks_installed = False

    def add(self, proc: ManagedProcess) -> None:
        with self._lock:
            self._live.append(proc)
            if not self._hooks_installed:
                self._install_hooks()

    def discard(self, proc: ManagedProcess) -> None:
        with self._lock:
            if proc in self._live:
                self._live.remove(proc)

    def live(self) -> list[ManagedProcess]:
        with self._lock:
            return list(self._live)

    def stop_all(self) -> None:
        for proc in reversed(self.live()):
            proc.stop(grace=2.0)
        with self._lock:
            scratch, self._scratch = self._scratch, set()
        for directory in scratch:
            shutil.rmtree(directory, ignore_errors=True)

    def scratch(self, directory: Path, *, remove: bool) -> None:
        with self._lock:
            if remove:
                self._scratch.add(directory)
            else:
                self._scratch.discard(directory)
            if not self._hooks_installed:
                self._install_hooks()

    def _install_hooks(self) -> None:
        self._hooks_installed = True
        atexit.register(self.stop_all)
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGHUP):
            previous = signal.getsignal(sig)
            if previous in (signal.SIG_DFL, None):
                signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.stop_all()
        # Die the way the signal asked for, so the parent sees the usual exit status.
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


_REGISTRY = _Registry()


def live_processes() -> list[ManagedProcess]:
    """Processes started through this module and not stopped yet (for RSS accounting and tests)."""
    return _REGISTRY.live()


def stop_all() -> None:
    _REGISTRY.stop_all()


def remove_on_exit(directory: Path, remove: bool = True) -> None:
    """Delete `directory` when the processes are stopped at exit or on SIGTERM/SIGHUP.

    For scratch directories (etcd data, logs) of runs that are not kept; call with
    `remove=False` once the owner has cleaned up, or decided to keep it.
    """
    _REGISTRY.scratch(directory, remove=remove)
