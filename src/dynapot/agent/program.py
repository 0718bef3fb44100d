"""The bpftrace program the agent runs, and the line format it prints.

Syscall tracepoints only (this kernel has no kprobes, see docs/SEBEK.md), every probe filtered
in the kernel to the processes of one network namespace (`curtask->nsproxy->net_ns->ns.inum`,
read through BTF), the agent and its children (bpftrace itself) excluded by pid:

- `R`: a read on fd 0 that returned data (`sys_exit_read`, the buffer kept at `sys_enter_read`),
- `W`: a write on fd 1 or 2 (`sys_enter_write`),
- `X`: an `execve` that succeeded (`sys_exit_execve`, the new program's name; the file and
  its first two arguments kept at `sys_enter_execve`),
- `A`: an `accept`/`accept4` of an IPv4 connection (`sys_exit_accept*`: the peer from user memory),
- `C`: a `connect` to an IPv4 address (`sys_enter_connect`),
- `F`: a new process (`sched:sched_process_fork`: child pid, parent pid), so that the
  collector can follow a process tree through processes that record nothing themselves
  (sshd's privilege-separated child between the accepting sshd and the shell).

One line per event, space-separated, every byte that a process controls in hex (`%rx`), so a
name or buffer holding a newline cannot forge a line:

    R|W  nsec pid ppid uid fd inode count comm_hex data_hex
    X    nsec pid ppid uid 0  0     0     comm_hex file_hex arg1_hex arg2_hex
    A|C  nsec pid ppid uid fd 0     0     comm_hex family port_be addr_le
    F    nsec child parent uid 0 0  0     comm_hex

`nsec` is `nsecs` (CLOCK_MONOTONIC, the parser maps it to wall time); `count` is what the
syscall moved, of which at most `STRLEN` bytes are printed (the rest is counted as clipped).
"""

from __future__ import annotations

__all__ = ["STRLEN", "program"]

STRLEN = 128  # bytes of a buffer printed per event (BPFTRACE_STRLEN; bpftrace allows up to 200)

_HEAD = "nsecs, pid, curtask->real_parent->tgid, uid"
_FILTER = (
    "curtask->nsproxy->net_ns->ns.inum == {netns} && pid != {agent} && curtask->real_parent->tgid != {agent}"
)


def program(netns: int, agent_pid: int, strlen: int = STRLEN) -> str:
    """The bpftrace source recording the processes of network namespace `netns` but not `agent_pid`'s."""
    if not (0 < netns < 1 << 32 and 0 < agent_pid < 1 << 32 and 0 < strlen <= 200):
        raise ValueError("netns and agent_pid are positive 32-bit numbers, strlen 1 to 200")
    where = _FILTER.format(netns=netns, agent=agent_pid)
    comm = "buf(comm, 16)"
    inode = "curtask->files->fdt->fd[{n}]->f_inode->i_ino"
    return f"""
tracepoint:syscalls:sys_enter_read /{where} && args->fd == 0/ {{ @rbuf[tid] = (uint64)args->buf; }}
tracepoint:syscalls:sys_exit_read /@rbuf[tid]/ {{
  if (args->ret > 0) {{
    $n = args->ret > {strlen} ? {strlen} : args->ret;
    printf("R %llu %d %d %d 0 %llu %lld %rx %rx\\n", {_HEAD}, {inode.format(n=0)}, args->ret,
           {comm}, buf(uptr((uint8 *)@rbuf[tid]), $n));
  }}
  delete(@rbuf[tid]);
}}
tracepoint:syscalls:sys_enter_write /{where} && (args->fd == 1 || args->fd == 2) && args->count > 0/ {{
  $n = args->count > {strlen} ? {strlen} : args->count;
  $i = args->fd == 1 ? {inode.format(n=1)} : {inode.format(n=2)};
  printf("W %llu %d %d %d %d %llu %lld %rx %rx\\n", {_HEAD}, args->fd, $i, args->count,
         {comm}, buf(args->buf, $n));
}}
tracepoint:syscalls:sys_enter_execve /{where}/ {{
  @xf[tid] = buf(args->filename, 48); @x1[tid] = buf(args->argv[1], 32);
  @x2[tid] = buf(args->argv[2], 32); @xp[tid] = 1;
}}
tracepoint:syscalls:sys_exit_execve /@xp[tid]/ {{
  if (args->ret == 0) {{
    printf("X %llu %d %d %d 0 0 0 %rx %rx %rx %rx\\n", {_HEAD}, {comm}, @xf[tid], @x1[tid], @x2[tid]);
  }}
  delete(@xf[tid]); delete(@x1[tid]); delete(@x2[tid]); delete(@xp[tid]);
}}
tracepoint:syscalls:sys_enter_accept, tracepoint:syscalls:sys_enter_accept4 /{where}/ {{
  @abuf[tid] = (uint64)args->upeer_sockaddr;
}}
tracepoint:syscalls:sys_exit_accept, tracepoint:syscalls:sys_exit_accept4 /@abuf[tid]/ {{
  $a = uptr((struct sockaddr_in *)@abuf[tid]);
  if (args->ret >= 0 && $a->sin_family == 2) {{
    printf("A %llu %d %d %d %d 0 0 %rx 2 %u %u\\n", {_HEAD}, args->ret, {comm},
           $a->sin_port, $a->sin_addr.s_addr);
  }}
  delete(@abuf[tid]);
}}
tracepoint:syscalls:sys_enter_connect /{where}/ {{
  $c = uptr((struct sockaddr_in *)args->uservaddr);
  if ($c->sin_family == 2) {{
    printf("C %llu %d %d %d %d 0 0 %rx 2 %u %u\\n", {_HEAD}, args->fd, {comm},
           $c->sin_port, $c->sin_addr.s_addr);
  }}
}}
tracepoint:sched:sched_process_fork /{where}/ {{
  printf("F %llu %d %d %d 0 0 0 %rx\\n", nsecs, args->child_pid, pid, uid, {comm});
}}
END {{ clear(@rbuf); clear(@abuf); clear(@xf); clear(@x1); clear(@x2); clear(@xp); }}
"""
