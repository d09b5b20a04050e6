#!/usr/bin/env python3
"""Class a perf recording's samples by call stack: the share that is the
kernel's TCP/IP work (which any server on the kernel's TCP stack pays per
request), readiness (epoll or io_uring), socket files made and closed,
syscall entry, and the rest. Used by tcp_share.sh (bench/findings.md, 1c).

    tcp_share.py perf.data
"""
import collections
import os
import subprocess
import sys

# A stack through any of these is TCP/IP work: sending (on loopback the
# send runs the peer's receive path in softirq), receiving, packet
# processing, connection setup and teardown.
NET = {
    "tcp_sendmsg", "tcp_sendmsg_locked", "tcp_recvmsg", "tcp_recvmsg_locked", "sock_recvmsg",
    "sock_sendmsg", "__sys_sendto", "__sys_recvfrom", "net_rx_action", "__napi_poll",
    "process_backlog", "__netif_receive_skb", "tcp_v4_rcv", "tcp_v4_do_rcv", "tcp_rcv_established",
    "tcp_rcv_state_process", "tcp_data_queue", "tcp_ack", "__dev_queue_xmit", "ip_finish_output2",
    "tcp_write_xmit", "__tcp_push_pending_frames", "__tcp_transmit_skb", "skb_release_data",
    "tcp_cleanup_rbuf", "tcp_close", "__tcp_close", "inet_release", "tcp_fin", "tcp_done",
    "inet_csk_accept", "tcp_v4_syn_recv_sock", "tcp_v4_connect", "__inet_stream_connect",
}
FILES = {"__fput", "____fput", "fput_close_sync", "filp_close", "file_close_fd", "sock_alloc_file",
         "alloc_file_pseudo", "do_accept", "__sys_accept4", "io_accept"}
SYSCALL = {"do_syscall_64", "entry_SYSCALL_64_after_hwframe"}


def kind(syms):
    if any(s in NET for s in syms):
        return "TCP/IP"
    if any(s in FILES for s in syms):
        return "socket files"
    if any("epoll" in s or s.startswith("ep_") for s in syms):
        return "epoll"
    if any(s.startswith(("io_", "__io_", "tctx_")) for s in syms):
        return "io_uring"
    if any(s in SYSCALL for s in syms):
        return "syscall entry"
    return "rest"


def main(path):
    out = subprocess.run(["perf", "script", "-i", path, "-F", "ip,sym"],
                         capture_output=True, text=True, check=True).stdout
    counts = collections.Counter()
    for block in out.split("\n\n"):
        syms = [line.split()[-1] for line in block.strip().split("\n") if len(line.split()) > 1]
        if syms:
            counts[kind(syms)] += 1
    total = sum(counts.values())
    print(f"{os.path.basename(path)}: {total} samples; " + ", ".join(f"{k} {100 * v / total:.1f}%" for k, v in counts.most_common()))


if __name__ == "__main__":
    main(sys.argv[1])
