"""A TCP relay that adds latency to a link where the kernel has no netem: every chunk read
from one side is written to the other `delay` ms later, in order. SIGUSR1 turns the delay
on, SIGUSR2 off (chunks already queued keep their time, so order is never broken).

    python3 delay_relay.py LISTEN_PORT TARGET_HOST TARGET_PORT DELAY_MS

Listens on 127.0.0.1:LISTEN_PORT; the delay starts off. Used by tests/test_net_faults.py."""
import asyncio
import signal
import sys
import time

active_delay = 0.0


async def pump(reader, writer):
    """Reads as fast as the sender sends; a second task writes each chunk once its time
    has come, so the delay does not cut throughput (as on a long link)."""
    queue = asyncio.Queue()

    async def write_later():
        try:
            while True:
                due, data = await queue.get()
                if data is None:
                    break
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    sender = asyncio.ensure_future(write_later())
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            queue.put_nowait((time.monotonic() + active_delay, data))
    except (ConnectionError, OSError):
        pass
    queue.put_nowait((time.monotonic() + active_delay, None))
    await sender


async def serve(target_host, target_port, client_reader, client_writer):
    try:
        server_reader, server_writer = await asyncio.open_connection(target_host, target_port)
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(pump(client_reader, server_writer), pump(server_reader, client_writer))


async def main(listen_port, target_host, target_port, delay_ms):
    loop = asyncio.get_running_loop()

    def set_delay(seconds):
        global active_delay
        active_delay = seconds

    loop.add_signal_handler(signal.SIGUSR1, set_delay, delay_ms / 1000.0)
    loop.add_signal_handler(signal.SIGUSR2, set_delay, 0.0)
    server = await asyncio.start_server(lambda r, w: serve(target_host, target_port, r, w), "127.0.0.1", listen_port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
