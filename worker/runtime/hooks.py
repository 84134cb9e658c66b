"""Run OCI hooks: the container state JSON on stdin, the hook's args and env, its timeout."""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs a runtime command milliseconds to import
if TYPE_CHECKING:
    from worker.runtime.spec import Hook


class HookFailed(Exception):
    """A hook exited non-zero, timed out, or could not be started."""


def run_hook(hook: Hook, state_json: bytes, *, what: str) -> None:
    """Run one hook and wait for it; raise HookFailed naming it when it does not succeed."""
    import subprocess  # here: the process that forks inits imports this module and stays small

    argv = hook.args or [hook.path]
    try:
        proc = subprocess.run(
            argv, executable=hook.path, input=state_json, env=_env(hook.env),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=hook.timeout,
            close_fds=True, check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise HookFailed(f"{what} {hook.path} timed out after {hook.timeout}s") from exc
    except OSError as exc:
        raise HookFailed(f"{what} {hook.path}: {exc.strerror}") from exc
    if proc.returncode < 0:
        import signal

        # runc's wording: "error running hook ...: signal: bad system call".
        name = (signal.strsignal(-proc.returncode) or f"signal {-proc.returncode}").lower()
        raise HookFailed(f"error running hook {what} {hook.path}: signal: {name}")
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip()[-500:]
        raise HookFailed(f"error running hook {what} {hook.path}: exited with "
                         f"{proc.returncode}: {err}")


def run_hooks(hooks: tuple[Hook, ...], state_json: bytes, *, what: str) -> None:
    for i, hook in enumerate(hooks):
        run_hook(hook, state_json, what=f"{what}[{i}]")


def _env(entries: list[str]) -> dict[str, str]:
    env = {}
    for entry in entries:
        name, _, value = entry.partition("=")
        env[name] = value
    return env
