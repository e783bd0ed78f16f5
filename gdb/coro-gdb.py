# coro-gdb.py: gdb commands for coro's tasks, in a live process or a core.
#
#   info coro [N]        every task (or the first N) of every loop of the
#                        process: id, name, state, what it waits on and for
#                        how long, where it was spawned, its stack's size
#                        and what it uses now
#   coro bt ID|all       the backtrace of a parked (or ready) task, from the
#                        registers its last switch saved; ID is the task's
#                        id in the loop of the selected thread, LOOP.ID
#                        names another loop (info coro numbers them: the
#                        coro_run calls of the process, in order), and
#                        a task's address works too
#   coro frame ID        makes the task's frames gdb's, so that `frame N`,
#                        `up`, `info locals` look at them, until
#                        `coro frame off` or the program goes on
#
# make install puts this file where gdb loads it with libcoro.so
# (share/gdb/auto-load/<libdir>/libcoro.so.0-gdb.py); for a program
# linked with libcoro.a, `source` it. It reads coro's structures through
# libcoro's debug information (the library is built with -g), and calls
# nothing in the program, so a core file does as well as a live process.
#
# How a parked task's backtrace is found. A task that parks saves its
# registers: with the default switch, swapcontext writes them to its
# ucontext_t; with SWITCH=fast, coro's own switch writes them plainly to
# ctx.regs, except in the sanitizer builds, where _setjmp writes them to a
# jmp_buf and glibc mangles the stack pointer, the frame pointer and the
# return address (xor with the thread's pointer guard, at %fs:0x30, then a
# rotation), which this file undoes. gdb's frames can start only from a
# thread's own registers, so a Python unwinder says that the innermost
# frame of the loop's thread was called from the task's saved registers:
# from frame #1 on, gdb unwinds the task's stack with its usual debug
# information, inlined frames and all. Nothing is written to the program.
#
# A task on the shared stack (CORO_SHARED_STACK) whose frames are not on
# the stack, because another shared-stack task ran since, has them copied
# to the heap; the stack pointers in them still point into the shared
# stack. In a live process, `coro bt` copies them back onto the shared
# stack for the walk and then restores what was there. In a core file
# nothing can be written: it shows the exact innermost frame, and then,
# marked as guesses, the return addresses found by scanning the saved
# bytes for addresses just after a call instruction.
#
# x86-64 only (the registers, and the fast switch's mangling, are its).

import re
import struct
import time

import gdb
import gdb.unwinder

# ---------------------------------------------------------------------
# Reading coro's structures
# ---------------------------------------------------------------------


def _type(name):
    return gdb.lookup_type(name)


def _offset(struct_name, field):
    for f in _type(struct_name).fields():
        if f.name == field:
            return f.bitpos // 8
    raise gdb.GdbError("coro: no field %s in %s" % (field, struct_name))


def _entries(link, struct_name, field):
    """The structures whose `field` (a struct coro__link) is on the list
    starting at link."""
    off = _offset(struct_name, field)
    ptr = _type(struct_name).pointer()
    char_p = _type("char").pointer()
    while int(link) != 0:
        yield (link.cast(char_p) - off).cast(ptr)
        link = link["next"]


def _string(v):
    if int(v) == 0:
        return None
    try:
        return v.string()
    except gdb.MemoryError:
        return "?"


def _has_field(struct_name, field):
    return any(f.name == field for f in _type(struct_name).fields())


def _fast_switch():
    return (_has_field("struct coro__ctx", "regs") or
            _has_field("struct coro__ctx", "jb"))


def _loops():
    sym = gdb.lookup_global_symbol("coro__loops")
    if sym is None:
        sym = gdb.lookup_static_symbol("coro__loops")
    if sym is None:
        raise gdb.GdbError(
            "coro: no coro__loops here: is the program linked with coro, "
            "and its debug information loaded?")
    return list(_entries(sym.value()["head"], "struct coro__loop",
                         "loops_link"))


def _tasks(loop):
    return list(_entries(loop["all"]["head"], "struct coro_task",
                         "all_link"))


def _enum_names(type_name):
    return {int(f.enumval): f.name for f in _type(type_name).fields()}


def _wait_names(kinds):
    """debug.c's names of the kinds of wait, as coro_dump prints them;
    else made from the enum's (CORO__W_CHAN_RECV: "chan recv")."""
    sym = gdb.lookup_global_symbol("coro__wait_names")
    if sym is None:
        return {k: v[len("CORO__W_"):].lower().replace("_", " ")
                for k, v in kinds.items()}
    arr = sym.value()
    lo, hi = arr.type.range()
    return {i: _string(arr[i]) or "?" for i in range(lo, hi + 1)}


def _is_live():
    conn = getattr(gdb.selected_inferior(), "connection", None)
    if conn is not None:
        return conn.type == "native"
    return "core dump" not in gdb.execute("info target", to_string=True)


def _now_ns(loops):
    """Now, on coro's clock (CLOCK_MONOTONIC). In a live process on this
    machine the clock is the same; in a core, the latest time a loop read
    it stands in."""
    if _is_live():
        return time.clock_gettime_ns(time.CLOCK_MONOTONIC), False
    return max([int(l["seen_ms"]) * 1000000 for l in loops] + [0]), True


def _task_name(t):
    extra = t["extra"]
    name = extra["name"].string() if int(extra) else ""
    if name:
        return name
    return _string(t["fn_name"]) or "task"


def _symbol(pc):
    """The name of the function the code at pc belongs to (the function
    it is inlined in, for inlined code), or None."""
    try:
        block = gdb.block_for_pc(pc)
    except RuntimeError:
        block = None
    name = None
    while block is not None and not block.is_static and \
            not block.is_global:
        if block.function is not None:
            name = block.function.print_name
        block = block.superblock
    if name is not None:
        return name
    sym = gdb.execute("info symbol %#x" % pc, to_string=True)
    m = re.match(r"(\S+)", sym)
    return None if sym.startswith("No symbol") else m.group(1)


def _place(ret):
    """'function at file:line' for a return address: the call before it."""
    func = _symbol(ret - 1) or "%#x" % ret
    sal = gdb.find_pc_line(ret - 1)
    if sal.symtab is not None:
        return "%s at %s:%d" % (func, sal.symtab.filename, sal.line)
    return func


def _size(n):
    if n < 10 << 10:
        return "%.1fK" % (n / 1024)
    return "%dK" % (n >> 10)


def _seconds(ns):
    if ns >= 1e9:
        return "%.2f s" % (ns / 1e9)
    if ns >= 1e6:
        return "%.1f ms" % (ns / 1e6)
    return "%.1f us" % (ns / 1e3)


def _thread_of(loop):
    tid = int(loop["tid"])
    for th in gdb.selected_inferior().threads():
        if th.ptid[1] == tid:
            return th
    return None


# ---------------------------------------------------------------------
# A task's saved registers
# ---------------------------------------------------------------------

# swapcontext's slots in uc_mcontext.gregs (sys/ucontext.h, x86-64).
_GREGS = {"r12": 4, "r13": 5, "r14": 6, "r15": 7, "rbp": 10, "rbx": 11,
          "rsp": 15, "rip": 16}
# _setjmp's slots in a jmp_buf (glibc, x86-64); three are mangled.
_JMPBUF = {"rbx": 0, "rbp": 1, "r12": 2, "r13": 3, "r14": 4, "r15": 5,
           "rsp": 6, "rip": 7}
_MANGLED = ("rbp", "rsp", "rip")
_MASK = (1 << 64) - 1


def _pointer_guard():
    """glibc's pointer guard, in the thread control block (%fs:0x30); the
    same in every thread."""
    fs = int(gdb.parse_and_eval("$fs_base"))
    if fs == 0:
        raise gdb.GdbError("coro: no $fs_base: cannot read the pointer "
                           "guard the fast switch's jmp_buf is mangled with")
    data = gdb.selected_inferior().read_memory(fs + 0x30, 8)
    return struct.unpack("<Q", bytes(data))[0]


def _demangle(v, guard):
    v &= _MASK
    v = ((v >> 0x11) | (v << (64 - 0x11))) & _MASK
    return v ^ guard


def _saved_regs(t):
    """The registers t's last switch away saved, or None if it never ran
    (fast switch; the ucontext build tells that by the frames)."""
    ctx = t["ctx"]
    if _fast_switch():
        if _has_field("struct coro__ctx", "regs"):
            # coro__regs_swap's slots are _setjmp's, unmangled. A context
            # never entered holds its entry (coro.c's ctx_make).
            regs = {name: int(ctx["regs"][i]) & _MASK
                    for name, i in _JMPBUF.items()}
            entry = int(gdb.parse_and_eval("coro__task_entry")) & _MASK
            return None if regs["rip"] == entry else regs
        if not int(ctx["started"]):
            return None
        jb = ctx["jb"]
        # x86-64 glibc: struct coro__jb, the head of a jmp_buf; elsewhere
        # it wraps a whole jmp_buf.
        if any(f.name == "jmpbuf" for f in jb.type.strip_typedefs().fields()):
            jb = jb["jmpbuf"]
        else:
            jb = jb["jb"][0]["__jmpbuf"]
        guard = _pointer_guard()
        regs = {}
        for name, i in _JMPBUF.items():
            v = int(jb[i]) & _MASK
            regs[name] = _demangle(v, guard) if name in _MANGLED else v
        return regs
    gregs = ctx["uc"]["uc_mcontext"]["gregs"]
    return {name: int(gregs[i]) & _MASK for name, i in _GREGS.items()}


# ---------------------------------------------------------------------
# The unwinder that hands gdb a task's registers
# ---------------------------------------------------------------------


class _FrameId:
    def __init__(self, sp, pc):
        self.sp = sp
        self.pc = pc


class _TaskUnwinder(gdb.unwinder.Unwinder):
    """While a task is selected, the innermost frame of the loop's thread
    unwinds to the task's saved registers: frame #1 is the task's."""

    def __init__(self):
        super().__init__("coro-task")
        self.regs = None
        self.thread = None

    def __call__(self, pending_frame):
        if self.regs is None or pending_frame.level() != 0:
            return None
        th = gdb.selected_thread()
        if th is None or th.num != self.thread:
            return None
        # The thread's innermost frame is given a stack address just
        # below the task's: gdb stops a backtrace at a frame that is
        # inner to (below) the one it was unwound from, and the task's
        # stack may lie anywhere.
        pc = pending_frame.read_register("rip")
        sp = gdb.Value(self.regs["rsp"] - 16).cast(
            pending_frame.read_register("rsp").type)
        info = pending_frame.create_unwind_info(_FrameId(sp, pc))
        for name, v in self.regs.items():
            kind = pending_frame.read_register(name).type
            info.add_saved_register(name, gdb.Value(v).cast(kind))
        return info


_unwinder = _TaskUnwinder()
gdb.unwinder.register_unwinder(None, _unwinder, replace=True)


def _deselect(_event=None):
    if _unwinder.regs is not None:
        _unwinder.regs = None
        _unwinder.thread = None
        gdb.invalidate_cached_frames()


gdb.events.cont.connect(_deselect)


class _Selected:
    """Within it, gdb's frames of the loop's thread are the task's from #1
    on; a shared-stack task's frames kept on the heap are put back on the
    shared stack meanwhile (live process only)."""

    def __init__(self, loop, t, regs, keep=False):
        self.loop, self.t, self.regs, self.keep = loop, t, regs, keep
        self.restore = None

    def __enter__(self):
        self.old_thread = gdb.selected_thread()
        th = _thread_of(self.loop) or self.old_thread
        th.switch()
        if _frames_on_heap(self.loop, self.t):
            sp = int(self.t["saved_sp"])
            n = int(self.t["saved_len"])
            inf = gdb.selected_inferior()
            self.restore = (sp, bytes(inf.read_memory(sp, n)))
            inf.write_memory(sp, bytes(inf.read_memory(int(self.t["saved"]),
                                                       n)))
        _unwinder.regs = self.regs
        _unwinder.thread = th.num
        gdb.invalidate_cached_frames()
        return self

    def __exit__(self, *exc):
        if self.restore is not None:
            sp, data = self.restore
            gdb.selected_inferior().write_memory(sp, data)
        if not self.keep:
            _deselect()
            if self.old_thread is not None and self.old_thread.is_valid():
                self.old_thread.switch()
        gdb.invalidate_cached_frames()
        return False


def _frames_on_heap(loop, t):
    return (int(t["shared"]) and int(loop["shared_owner"]) !=
            int(t) and int(t["saved_len"]) > 0)


# ---------------------------------------------------------------------
# What a task is doing
# ---------------------------------------------------------------------


class _Context:
    """What every description needs, read once per command."""

    def __init__(self):
        self.loops = _loops()
        self.states = _enum_names("enum coro__state")
        self.kinds = _enum_names("enum coro__wait_kind")
        self.wait_names = _wait_names(self.kinds)
        self.now, self.from_core = _now_ns(self.loops)
        self.timer_idle = (1 << 32) - 1  # CORO__TIMER_IDLE


def _state(cx, t):
    name = cx.states.get(int(t["state"]), "?")
    return {"CORO__READY": "ready", "CORO__RUNNING": "running",
            "CORO__PARKED": "parked", "CORO__DONE": "ended"}.get(name, name)


def _deadline(cx, t):
    if int(t["timer"]["id"]) == cx.timer_idle:
        return None
    timers = t["loop"]["timers"]
    when = timers["heap"][int(timers["where"][int(t["timer"]["id"])])]["when"]
    return (int(when) - cx.now) / 1e9


def _mutex_holder(loop, what):
    try:
        m = what.cast(_type("struct coro_mutex").pointer())
        if int(m["holder"]) == 0:
            return "free"
        if int(m["holder_run"]) != int(loop["run_id"]):
            return "held in another loop"
        return "held by #%d" % int(m["holder"])
    except gdb.error:
        return None


def _waits_on(cx, loop, t):
    """What a parked task waits on, in words."""
    kind = int(t["wait_kind"])
    enum = cx.kinds.get(kind, "")
    words = cx.wait_names.get(kind, enum)
    what = t["wait_what"]
    task_p = _type("struct coro_task").pointer()
    to_go = _deadline(cx, t)
    if enum == "CORO__W_SLEEP":
        return ("sleep, %.1f s to go" % to_go if to_go is not None
                else "sleep until cancelled")
    if enum == "CORO__W_JOIN":
        j = what.cast(task_p)
        text = "join #%d (%s)" % (int(j["id"]), _task_name(j))
    elif enum in ("CORO__W_GATHER", "CORO__W_WAIT") and int(t["awaiting"]):
        a = t["wait"].dereference()["await"]
        text = "%s %d tasks, %d not ended" % (words, int(a["n"]),
                                               int(a["pending"]))
    elif enum in ("CORO__W_FD_READ", "CORO__W_FD_WRITE"):
        text = "%s %d" % (words, int(t["wait"].dereference()["io"]["fd"]))
    elif enum == "CORO__W_BLOCKING":
        fn = int(t["wait"].dereference()["job"]["fn"])
        text = "blocking call %s() on a worker" % (_symbol(fn) or "%#x" % fn)
    elif enum == "CORO__W_MUTEX":
        holder = _mutex_holder(loop, what)
        text = "mutex %#x%s" % (int(what), ", " + holder if holder else "")
    elif int(what):
        text = "%s %#x" % (words, int(what))
    else:
        text = words
    if to_go is not None:
        text += ", times out in %.1f s" % to_go
    return text


def _site(t):
    if int(t["site_known"]):
        return _string(t["site"]) or "?"
    pc = int(t["spawn_pc"])
    return _place(pc) if pc else "?"


def _own_stack(t):
    """An own stack's record: after its control block and wait record
    (internal.h's coro__own_stack)."""
    at = (int(t) + _type("struct coro_task").sizeof +
          _type("union coro__wait").sizeof)
    return gdb.Value(at).cast(
        _type("struct coro__stack").pointer()).dereference()


def _usable(loop, t):
    """(lowest byte, top) of the stack t's frames may use: above the
    16-byte canary, below the ucontext below the control block (coro.c's
    usable_lo and uc_at); a shared-stack task's are the host's."""
    host = loop["shared_host"] if int(t["shared"]) else t
    uc = (_type("ucontext_t").sizeof + 63) & ~63
    return int(_own_stack(host)["lo"]) + 16, int(host) - uc


def _stack(cx, loop, t, regs):
    """(size, bytes in use now or None)."""
    lo, top = _usable(loop, t)
    if int(t["shared"]):
        size = top - lo
        if _frames_on_heap(loop, t):
            return size, int(t["saved_len"])
        sp = int(t["saved_sp"])
        return size, (top - sp if sp and int(loop["shared_owner"]) == int(t)
                      else None)
    size = int(_own_stack(t)["size"])
    sp = regs.get("rsp") if regs else None
    if _state(cx, t) == "running":
        th = _thread_of(loop)
        if th is not None:
            old = gdb.selected_thread()
            th.switch()
            sp = int(gdb.newest_frame().read_register("rsp"))
            old.switch()
    if sp is None or not (lo <= sp <= top):
        return size, None
    return size, top - sp


def _regs_or_none(cx, t):
    if _state(cx, t) not in ("parked", "ready"):
        return None
    try:
        return _saved_regs(t)
    except gdb.error:
        return None


def _list_loop(cx, number, loop, limit):
    th = _thread_of(loop)
    tasks = _tasks(loop)
    current = int(loop["current"])
    print("loop %d: %d task%s; thread %s (LWP %d)%s; %s switch" % (
        number, len(tasks), "" if len(tasks) == 1 else "s",
        th.num if th else "?", int(loop["tid"]),
        ", running #%d" % int(loop["current"]["id"]) if current
        else ", no task running",
        "fast" if _fast_switch() else "ucontext"))
    print("  %-5s %-18s %-8s %-44s %8s  %-28s %s" % (
        "ID", "NAME", "STATE", "WAITS ON", "FOR", "SPAWNED AT", "STACK"))
    for t in tasks[:limit]:
        state = _state(cx, t)
        waits = _waits_on(cx, loop, t) if state == "parked" else ""
        if state == "ended":
            err = int(t["error"])
            waits = "not joined yet" + (", failed (%d)" % err if err else "")
        regs = _regs_or_none(cx, t)
        size, used = _stack(cx, loop, t, regs)
        stack = "%s%s, %s used" % (
            _size(size), " shared" if int(t["shared"]) else "",
            _size(used) if used is not None else "-")
        flags = ""
        if int(t["cancelled"]):
            flags += " [cancelled]"
        if int(t["shield"]):
            flags += " [shielded]"
        if int(t["mutexes"]):
            flags += " [holds %d mutex%s]" % (
                int(t["mutexes"]), "" if int(t["mutexes"]) == 1 else "es")
        acct = t["extra"]["acct"] if int(t["extra"]) else None
        runs = int(acct["runs"]) if acct is not None else 0
        if runs:  # accounting was on
            ran, longest = int(acct["ran_ns"]), int(acct["longest_ns"])
            if state == "running":  # its run so far, from its start
                now_run = max(cx.now - int(acct["note_at"]), 0)
                ran, longest = ran + now_run, max(longest, now_run)
            flags += " ran %s in %d run%s, longest %s" % (
                _seconds(ran), runs, "" if runs == 1 else "s",
                _seconds(longest))
        # since_ms is the ms of the time, modulo 2^32 (internal.h).
        since = ((cx.now // 1000000 - int(t["since_ms"])) % (1 << 32)) / 1e3
        print("  #%-4d %-18s %-8s %-44s %7.2fs  %-28s %s%s" % (
            int(t["id"]), _task_name(t)[:18], state, waits, since,
            _site(t), stack, flags))
    if limit is not None and len(tasks) > limit:
        print("  ... and %d more" % (len(tasks) - limit))


class InfoCoro(gdb.Command):
    """List the tasks of every coro loop of the process.

Usage: info coro [N]

With N, at most N tasks of each loop (about 2,000 a second are read).

For each loop (numbered by coro_run calls in the process, as
`coro bt LOOP.ID` takes them): its thread and switch; for each task: id,
name, state, what it waits on, how long it has been in that state, where
it was spawned, its stack's size and how much of it the task uses now.
In a core file, "now" is the last time a loop read the clock."""

    def __init__(self):
        super().__init__("info coro", gdb.COMMAND_STATUS)

    def invoke(self, arg, from_tty):
        arg = arg.strip()
        if arg and not arg.isdigit():
            raise gdb.GdbError("usage: info coro [N]")
        limit = int(arg) if arg else None
        cx = _Context()
        if not cx.loops:
            print("coro: no loop runs in this process")
            return
        if cx.from_core:
            print("(a core file: times are as of the loops' last clock "
                  "reading)")
        for loop in cx.loops:
            _list_loop(cx, int(loop["run_id"]), loop, limit)


# ---------------------------------------------------------------------
# Backtraces
# ---------------------------------------------------------------------


def _find(cx, spec):
    """The (loop number, loop, task) that spec names: ID in the loop of
    the selected thread (else the first), LOOP.ID, or a task's address."""
    spec = spec.strip()
    if not spec:
        raise gdb.GdbError("coro: which task? (an id from info coro)")
    if spec.startswith("0x"):
        addr = int(spec, 16)
        for loop in cx.loops:
            for t in _tasks(loop):
                if int(t) == addr:
                    return int(loop["run_id"]), loop, t
        raise gdb.GdbError("coro: no task at %s" % spec)
    m = re.fullmatch(r"(?:(\d+)\.)?#?(\d+)", spec)
    if not m:
        raise gdb.GdbError("coro: %r is not a task id (ID, LOOP.ID or an "
                           "address)" % spec)
    if not cx.loops:
        raise gdb.GdbError("coro: no loop runs in this process")
    by_number = {int(l["run_id"]): l for l in cx.loops}
    if m.group(1):
        number = int(m.group(1))
        if number not in by_number:
            raise gdb.GdbError("coro: there is no loop %d" % number)
    else:
        number = int(cx.loops[0]["run_id"])
        th = gdb.selected_thread()
        for loop in cx.loops:
            if th is not None and th.ptid[1] == int(loop["tid"]):
                number = int(loop["run_id"])
    loop = by_number[number]
    for t in _tasks(loop):
        if int(t["id"]) == int(m.group(2)):
            return number, loop, t
    raise gdb.GdbError("coro: loop %d has no task #%s" % (number,
                                                          m.group(2)))


def _header(cx, number, loop, t):
    state = _state(cx, t)
    what = _waits_on(cx, loop, t) if state == "parked" else state
    return 'loop %d, task #%d "%s" (%s), spawned at %s: %s' % (
        number, int(t["id"]), _task_name(t), _symbol(int(t["fn"])) or "?",
        _site(t), what)


def _bt_lines(first=1):
    """gdb's backtrace of the selected thread from frame #first (frame #0
    is the thread's own while a task is selected) to coro's trampoline,
    every task's first frame (what lies beyond is makecontext's)."""
    out = gdb.execute("bt", to_string=True)
    lines, keep = [], False
    for line in out.splitlines():
        m = re.match(r"#(\d+)\s", line)
        if m and lines and re.search(r"\btrampoline \(", lines[-1]):
            break
        if m:
            keep = int(m.group(1)) >= first
        if keep:
            lines.append(line)
    return lines


def _is_call_before(pc):
    """Whether a call instruction ends at pc (x86-64: call rel32, or an
    indirect call through a register or memory)."""
    try:
        b = bytes(gdb.selected_inferior().read_memory(pc - 7, 7))
    except gdb.MemoryError:
        return False
    if b[2] == 0xE8:
        return True
    for n in (2, 3, 6, 7):
        if b[7 - n] == 0xFF and (b[8 - n] >> 3) & 7 == 2:
            return True
    return False


def _scan_lines(t, regs):
    """A core file's best for frames on the heap: the exact innermost
    frame, then every saved word that looks like a return address."""
    rip = regs["rip"]
    lines = ["#1  %#018x in %s   (exact)" % (rip, _place(rip))]
    data = bytes(gdb.selected_inferior().read_memory(int(t["saved"]),
                                                     int(t["saved_len"])))
    last = _symbol(rip - 1)
    for off in range(0, len(data) - 7, 8):
        v = struct.unpack_from("<Q", data, off)[0]
        func = _symbol(v - 1) if v >= 4096 else None
        if func is None or not _is_call_before(v):
            continue
        if len(lines) == 1 and func == last:
            continue  # the switch's own calls, below the first frame
        lines.append("#%-2d %#018x in %s   (a guess: found at sp+%d)" % (
            len(lines) + 1, v, _place(v), off))
        if func == "trampoline":
            break  # every task's first frame
    return lines


def _fn_in(lines, t):
    fn = _symbol(int(t["fn"]))
    return fn is not None and any(re.search(r"\b%s\b" % re.escape(fn), l)
                                  for l in lines)


def _backtrace(cx, number, loop, t):
    """The lines to print for t's backtrace."""
    state = _state(cx, t)
    if state == "running":
        th = _thread_of(loop)
        return ["(running: these are the frames of thread %s)" %
                (th.num if th else "?")] + (
            _thread_bt(th) if th else [])
    if state == "ended":
        return ["(ended: no frames left)"]
    if int(t["shared"]) and not _frames_on_heap(loop, t) and \
            int(loop["shared_owner"]) != int(t):
        return ["(not started yet: no frames)"]
    regs = _saved_regs(t)
    if regs is None:
        return ["(not started yet: no frames)"]
    if _frames_on_heap(loop, t) and not _is_live():
        return ["(on the shared stack, its %d bytes of frames saved on the "
                "heap; in a core file they cannot be put back for gdb to "
                "unwind, so past the first frame these are guesses)" %
                int(t["saved_len"])] + _scan_lines(t, regs)
    with _Selected(loop, t, regs):
        lines = _bt_lines()
    if state == "ready" and not _fn_in(lines, t):
        return ["(not started yet: no frames)"]
    if _frames_on_heap(loop, t):
        lines.insert(0, "(on the shared stack: its frames, saved on the "
                        "heap, were put back there for the walk)")
    return lines


def _thread_bt(th):
    old = gdb.selected_thread()
    th.switch()
    try:
        return _bt_lines(first=0)
    finally:
        old.switch()


class CoroPrefix(gdb.Command):
    """coro's commands: coro bt, coro frame (and info coro)."""

    def __init__(self):
        super().__init__("coro", gdb.COMMAND_STACK, prefix=True)


class CoroBt(gdb.Command):
    """Print the backtrace of a coro task.

Usage: coro bt ID | LOOP.ID | ADDRESS | all

ID is a task's id (info coro lists them) in the loop of the selected
thread, or else the first loop; LOOP.ID picks the loop (loops are numbered
as coro_run calls in the process); ADDRESS is a coro_task pointer. `all`
prints every task's. The task's frames are numbered from #1: frame #0 is
the loop thread's own."""

    def __init__(self):
        super().__init__("coro bt", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        cx = _Context()
        if arg.strip() == "all":
            chosen = [(int(l["run_id"]), l, t) for l in cx.loops
                      for t in _tasks(l)]
        else:
            chosen = [_find(cx, arg)]
        for number, loop, t in chosen:
            print(_header(cx, number, loop, t))
            for line in _backtrace(cx, number, loop, t):
                print("  " + line)


class CoroFrame(gdb.Command):
    """Make a parked coro task's frames gdb's frames.

Usage: coro frame ID | LOOP.ID | ADDRESS | off

Selects the loop's thread, whose frame #1 is then the task's innermost:
`frame 1`, `up`, `info locals`, `finish` is not (the task is not running).
Ends with `coro frame off`, or when the program goes on."""

    def __init__(self):
        super().__init__("coro frame", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        if arg.strip() == "off":
            _deselect()
            return
        cx = _Context()
        number, loop, t = _find(cx, arg)
        state = _state(cx, t)
        if state not in ("parked", "ready"):
            raise gdb.GdbError("coro: task #%d is %s: it has no saved frames"
                               % (int(t["id"]), state))
        if _frames_on_heap(loop, t):
            raise gdb.GdbError("coro: task #%d's frames are saved on the "
                               "heap (shared stack): coro bt shows them"
                               % int(t["id"]))
        regs = _saved_regs(t)
        if regs is None:
            raise gdb.GdbError("coro: task #%d has not started" %
                               int(t["id"]))
        with _Selected(loop, t, regs, keep=True):
            pass
        gdb.execute("frame 1")


# ---------------------------------------------------------------------
# A core file with the tasks in it
# ---------------------------------------------------------------------

_CHUNK = 1 << 20  # gcore copies memory in pieces of this size
_PAGE = 4096


def _read_pages(inf, addr, n):
    """[(addr, bytes)] of what can be read in [addr, addr + n), a page at
    a time."""
    out = []
    for a in range(addr, addr + n, _PAGE):
        try:
            out.append((a, bytes(inf.read_memory(a, min(_PAGE,
                                                        addr + n - a)))))
        except gdb.MemoryError:
            pass
    return out


def _fill_core(path):
    """Writes into the core file at path what gcore left out of each
    mapping: it gives a mapping up at the first piece it cannot read, and
    a guard page inside a mapping (MADV_GUARD_INSTALL, which coro's stack
    slabs use on Linux 6.13 and later) cannot be read. Returns the bytes
    filled in."""
    inf = gdb.selected_inferior()
    filled = 0
    with open(path, "r+b") as f:
        head = f.read(64)
        phoff, = struct.unpack_from("<Q", head, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            (p_type, _flags, offset, vaddr, _paddr, filesz,
             _memsz) = struct.unpack("<IIQQQQQ", f.read(48))
            if p_type != 1 or filesz == 0:  # PT_LOAD
                continue
            given_up = False
            for start in range(vaddr, vaddr + filesz, _CHUNK):
                n = min(_CHUNK, vaddr + filesz - start)
                try:
                    pieces = [(start, bytes(inf.read_memory(start, n)))]
                except gdb.MemoryError:
                    given_up = True
                    pieces = _read_pages(inf, start, n)
                if not given_up:
                    continue
                for a, data in pieces:
                    f.seek(offset + a - vaddr)
                    f.write(data)
                    filled += len(data)
    return filled


class CoroGcore(gdb.Command):
    """Write a core file of the process that holds coro's task stacks.

Usage: coro gcore [FILE]

As gcore (generate-core-file), FILE defaulting to core.PID; then fills in
the mappings gcore gave up on. gcore stops copying a mapping at the first
piece it cannot read, and on Linux 6.13 and later coro's stacks are carved
from slabs whose guard pages (MADV_GUARD_INSTALL) cannot be read: a plain
gcore then has none of the tasks. A core the kernel writes as the program
crashes has them."""

    def __init__(self):
        super().__init__("coro gcore", gdb.COMMAND_FILES,
                         gdb.COMPLETE_FILENAME)

    def invoke(self, arg, from_tty):
        if not _is_live():
            raise gdb.GdbError("coro gcore: no live process")
        path = arg.strip() or "core.%d" % gdb.selected_inferior().pid
        gdb.execute("generate-core-file %s" % path, to_string=True)
        filled = _fill_core(path)
        print("coro: saved %s%s" % (path, (
            "; filled in %d KiB that gcore could not read" % (filled >> 10)
        ) if filled else ""))


InfoCoro()
CoroPrefix()
CoroGcore()
CoroBt()
CoroFrame()
