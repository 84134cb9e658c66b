"""What the runtime helper does for each request of the ``wire`` protocol.

Each handler answers through ``helper.reply`` at once, except the waits, which are answered
when the process exits. Descriptors that came with a request belong to the caller of
``dispatch`` and are closed by it afterwards.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from worker.runtime import wire
from worker.runtime.errors import OperationFailed
from worker.runtime.state import StateDir

if TYPE_CHECKING:
    from worker.runtime.helper import Helper, _Conn


def _stdio(helper: Helper, attached: tuple[bool, bool, bool],
           fds: list[int]) -> tuple[int, int, int]:
    if sum(attached) != len(fds):
        raise OperationFailed(f"{sum(attached)} stdio descriptors announced, {len(fds)} came")
    given = iter(fds)
    a, b, c = (next(given) if on else helper.devnull for on in attached)
    return a, b, c


def dispatch(helper: Helper, conn: _Conn, rid: int, op: wire.Op, fds: list[int]) -> None:
    rt = helper.rt
    match op:
        case wire.Hello():
            helper.reply(conn, rid, wire.HelperInfo(pid=os.getpid(), root=str(helper.root)))
        case wire.Create(id=cid, bundle=bundle, stdio=attached):
            created = rt.create(cid, bundle, stdio=_stdio(helper, attached, fds))
            helper.inits[created.record.pid] = cid
            pty = created.pty_master
            helper.reply(conn, rid, wire.Started(created.record.pid, pty is not None),
                          fds=[pty] if pty is not None else None)
        case wire.Start(id=cid):
            rt.start(cid)
            helper.reply(conn, rid, wire.Done())
        case wire.Kill(id=cid, signal=number, all=every):
            rt.kill(cid, number, all_processes=every)
            helper.reply(conn, rid, wire.Done())
        case wire.Delete(id=cid, force=force):
            helper.reap()
            if force and rt.state(cid).status != "stopped":
                helper.kill_and_collect(cid)
            rt.delete(cid, force=force)
            helper.forget(cid)
            helper.reply(conn, rid, wire.Done())
        case wire.Wait(id=cid):
            _wait(helper, conn, rid, cid)
        case wire.Exec(id=cid, args=args, env=env, cwd=cwd, uid=uid, gid=gid, tty=tty,
                       stdio=attached, console_size=size):
            done = rt.exec(cid, args, env=env, cwd=cwd, uid=uid, gid=gid, tty=tty,
                           console_size=size,
                           stdio=_stdio(helper, attached, fds))
            helper.execs[done.pid] = cid
            pty = done.pty_master
            helper.reply(conn, rid, wire.Started(done.pid, pty is not None),
                          fds=[pty] if pty is not None else None)
        case wire.WaitExec(id=cid, pid=pid):
            helper.reap()
            if pid in helper.exec_exits:
                helper.reply(conn, rid, wire.exit_status(helper.exec_exits.pop(pid)))
            elif helper.execs.get(pid) == cid:
                helper.exec_waiters.setdefault(pid, []).append((conn, rid))
            else:
                raise OperationFailed(f"no process {pid} was exec'd in {cid!r} by this helper")
        case wire.State(id=cid):
            helper.reply(conn, rid, wire.States([rt.state(cid)]))
        case wire.List():
            helper.reply(conn, rid, wire.States(rt.list()))
        case wire.Ps(id=cid):
            helper.reply(conn, rid, wire.Pids(rt.ps(cid)))
        case wire.KeepInput(id=cid):
            if len(fds) != 1:
                raise OperationFailed(f"keep_input needs one descriptor, {len(fds)} came")
            helper.rt.record(cid)  # ContainerNotFound for an unknown id
            helper.keep_input(cid, fds[0])
            helper.reply(conn, rid, wire.Done())
        case wire.DropInput(id=cid):
            helper.drop_input(cid)
            helper.reply(conn, rid, wire.Done())
        case wire.TakeInput(id=cid):
            fd = helper.inputs.get(cid)
            helper.reply(conn, rid, wire.Input(kept=fd is not None),
                         fds=[os.dup(fd)] if fd is not None else None)
        case wire.Shutdown():
            helper.reply(conn, rid, wire.Done())
            helper.running = False


def _wait(helper: Helper, conn: _Conn, rid: int, cid: str) -> None:
    helper.reap()
    known = helper.exits.get(cid) or StateDir(helper.root, cid).load_exit()
    if known is None:
        helper.rt.record(cid)  # ContainerNotFound for an unknown id
        if cid in helper.inits.values() or helper.adopt(cid):
            helper.waiters.setdefault(cid, []).append((conn, rid))
            return
        known = helper.exits.get(cid) or StateDir(helper.root, cid).load_exit()
    if known is None:
        # Dead, never reaped by a helper and nothing recorded: it ended while none ran.
        helper.reply(conn, rid, wire.ExitStatus(code=None))
        return
    helper.reply(conn, rid, wire.exit_status(known))
