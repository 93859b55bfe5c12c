#!/usr/bin/env python3
"""A TCP proxy that adds latency and limits bandwidth, for benchmarks in the lab.

The kernel here has no netem, so `lab/lab shape HOST RATE DELAY` runs this in front of HOST's
sshd:

    delayproxy.py --listen 127.0.0.1:2302 --target 127.0.0.3:22 --rate 200mbit --delay 25ms

Every chunk read from one side is delivered to the other side DELAY later (each way, so a round
trip costs 2*DELAY). RATE is one link per direction shared by all connections: a chunk leaves
when the link is free and takes len*8/RATE seconds on it. Buffers are bounded (per connection
and direction at most QUEUE chunks of at most CHUNK bytes), so a fast sender is slowed down by
TCP backpressure, not by memory growth.

RATE: N[k|m|g]bit (bits/s, as tc), N[k|m|g]bps (bytes/s, as tc), or 'unlimited'.
DELAY: Nms, Ns, Nus, or a plain number of milliseconds.
"""
import argparse
import asyncio
import os
import re
import signal
import sys
import time

CHUNK = 16 * 1024
QUEUE = 32


def parse_rate(text):
    """Bytes per second, or None for unlimited."""
    t = text.strip().lower()
    if t in ("unlimited", "none", "0", "off"):
        return None
    m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)\s*([kmg]?)(bit|bps)", t)
    if not m:
        raise ValueError(f"bad rate {text!r} (e.g. 200mbit, 10mbps, unlimited)")
    n = float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[m.group(2)]
    bytes_per_s = n / 8 if m.group(3) == "bit" else n
    if bytes_per_s <= 0:
        raise ValueError(f"bad rate {text!r}")
    return bytes_per_s


def parse_delay(text):
    """Seconds."""
    t = text.strip().lower()
    m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)\s*(us|ms|s|)", t)
    if not m:
        raise ValueError(f"bad delay {text!r} (e.g. 25ms)")
    return float(m.group(1)) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "": 1e-3}[m.group(2)]


def parse_addr(text):
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"bad address {text!r} (HOST:PORT)")
    return host, int(port)


class Link:
    """One direction of the shaped path: serialises chunks at `rate` bytes/s."""

    def __init__(self, rate):
        self.rate = rate
        self.free_at = 0.0

    def departure(self, now, size):
        if self.rate is None:
            return now
        start = max(now, self.free_at)
        self.free_at = start + size / self.rate
        return self.free_at


async def pump(reader, writer, link, delay):
    """Copy reader -> writer, each chunk delivered at its departure time + delay."""
    queue = asyncio.Queue(QUEUE)

    async def deliver():
        loop = asyncio.get_running_loop()
        while True:
            due, data = await queue.get()
            if data is None:
                break
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        try:
            if writer.can_write_eof():
                writer.write_eof()
        except OSError:
            pass

    task = asyncio.create_task(deliver())
    loop = asyncio.get_running_loop()
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            now = loop.time()
            await queue.put((link.departure(now, len(data)) + delay, data))
    except (ConnectionError, OSError):
        pass
    finally:
        # the end of stream also arrives `delay` later
        await queue.put((loop.time() + delay, None))
    try:
        await task
    except (ConnectionError, OSError):
        pass


async def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen", help="HOST:PORT to listen on")
    ap.add_argument("--target", help="HOST:PORT to forward to")
    ap.add_argument("--rate", default="unlimited")
    ap.add_argument("--delay", default="0ms")
    ap.add_argument("--pidfile")
    ap.add_argument("--check", action="store_true", help="only validate --rate and --delay")
    a = ap.parse_args()
    try:
        rate, delay = parse_rate(a.rate), parse_delay(a.delay)
        if a.check:
            return 0
        if not a.listen or not a.target:
            raise ValueError("--listen and --target are required")
        lhost, lport = parse_addr(a.listen)
        thost, tport = parse_addr(a.target)
    except ValueError as e:
        print(f"delayproxy: {e}", file=sys.stderr)
        return 2
    up, down = Link(rate), Link(rate)

    async def handle(creader, cwriter):
        try:
            treader, twriter = await asyncio.open_connection(thost, tport)
        except OSError as e:
            print(f"delayproxy: connect {thost}:{tport}: {e}", file=sys.stderr, flush=True)
            cwriter.close()
            return
        await asyncio.gather(pump(creader, twriter, up, delay), pump(treader, cwriter, down, delay))
        for w in (twriter, cwriter):
            w.close()

    server = await asyncio.start_server(handle, lhost, lport, reuse_address=True)
    if a.pidfile:
        tmp = a.pidfile + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{os.getpid()}\n")
        os.replace(tmp, a.pidfile)
    print(f"delayproxy: {a.listen} -> {a.target}, rate {a.rate}, delay {a.delay} each way "
          f"(started {time.strftime('%H:%M:%S')})", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    async with server:
        await stop.wait()
    if a.pidfile:
        try:
            os.unlink(a.pidfile)
        except OSError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
