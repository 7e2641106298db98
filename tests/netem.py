"""A stand-in for ``tc qdisc ... netem delay D loss P`` where the kernel has no sch_netem:
packets sent to NFQUEUE by an iptables rule are held ``delay`` seconds, in order, then
accepted, and a random ``loss`` fraction is dropped. Run inside the network namespace:

    python tests/netem.py --queue 0 --delay 0.1 --loss 0.02

It speaks nfnetlink_queue directly (a netlink socket, no library) and asks the kernel for
packet metadata only, not payloads. It prints "ready" once bound; SIGTERM stops it (the
iptables rule must be removed first, or queued traffic stops flowing).
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN = 1, 2, 3
NFQA_PACKET_HDR, NFQA_VERDICT_HDR = 1, 2
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2
NF_DROP, NF_ACCEPT = 0, 1


def _attr(kind: int, data: bytes) -> bytes:
    raw = struct.pack("=HH", 4 + len(data), kind) + data
    return raw + b"\0" * (-len(raw) % 4)


def _message(msg: int, queue: int, attrs: bytes, flags: int = NLM_F_REQUEST) -> bytes:
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(queue)) + attrs
    return struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg, flags, 0, 0) + body


def _packet_ids(data: bytes):
    """Packet ids of the NFQNL_MSG_PACKET messages in one netlink read."""
    off = 0
    while off + 16 <= len(data):
        length, kind = struct.unpack_from("=IH", data, off)
        if length < 16:
            return
        if kind == NLMSG_ERROR:
            (err,) = struct.unpack_from("=i", data, off + 16)
            if err:
                raise OSError(-err, f"nfnetlink_queue: {os.strerror(-err)}")
        elif kind & 0xFF == NFQNL_MSG_PACKET:
            a = off + 20  # past nlmsghdr and nfgenmsg
            while a + 4 <= off + length:
                alen, atype = struct.unpack_from("=HH", data, a)
                if alen < 4:
                    break
                if atype & 0x7FFF == NFQA_PACKET_HDR:
                    yield struct.unpack_from("!I", data, a + 4)[0]
                a += (alen + 3) & ~3
        off += (length + 3) & ~3


def run(queue: int, delay: float, loss: float, seed: int | None = None) -> None:
    rng = random.Random(seed)
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind((0, 0))
    cfg = [
        _attr(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_BIND, 0)),
        _attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META)),
        _attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", 65536)),
    ]
    for a in cfg:
        s.send(_message(NFQNL_MSG_CONFIG, queue, a, NLM_F_REQUEST | NLM_F_ACK))
        list(_packet_ids(s.recv(65536)))  # the ack, or raises the kernel's error
    print("ready", flush=True)
    held: collections.deque[tuple[float, int, int]] = collections.deque()
    while True:
        wait = max(0.0, held[0][0] - time.monotonic()) if held else 1.0
        if select.select([s], [], [], wait)[0]:
            try:
                data = s.recv(1 << 20)
            except OSError:  # ENOBUFS: the kernel dropped some of its messages; go on
                data = b""
            now = time.monotonic()
            for pid in _packet_ids(data):
                held.append((now + delay, pid, NF_DROP if rng.random() < loss else NF_ACCEPT))
        now = time.monotonic()
        while held and held[0][0] <= now:
            _, pid, verdict = held.popleft()
            hdr = _attr(NFQA_VERDICT_HDR, struct.pack("!II", verdict, pid))
            s.send(_message(NFQNL_MSG_VERDICT, queue, hdr))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--queue", type=int, default=0)
    p.add_argument("--delay", type=float, default=0.1, help="seconds (default 0.1)")
    p.add_argument("--loss", type=float, default=0.0, help="fraction dropped (0.02 = 2%%)")
    p.add_argument("--seed", type=int)
    a = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    run(a.queue, a.delay, a.loss, a.seed)


if __name__ == "__main__":
    main()
