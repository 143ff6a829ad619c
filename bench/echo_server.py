"""The gRPC ceiling: a bare grpc.aio server with ExplainRec's contract whose Recommend returns a
canned 10-item reply (no ranking, no store, no interceptors). `bench/bench_server.py` loads it
and `explainrec serve` with the same client, so their ratio is what the service's own work costs.

    python bench/echo_server.py          # prints {"grpc": "127.0.0.1:PORT"} then serves until SIGTERM

It runs the service's event-loop lag monitor (`server/loop_lag.py`) too and prints its p99 as one
JSON line when it stops: the lag a bare grpc.aio loop has under the same load, beside the service's.
"""
from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import grpc  # noqa: E402

from protos.explainrec.v1 import explainrec_pb2 as pb  # noqa: E402
from protos.explainrec.v1 import explainrec_pb2_grpc as pb_grpc  # noqa: E402


def canned_reply(k: int = 10) -> pb.RecommendResponse:
    """A reply shaped like the service's: items with title, category, brand, price and evidence."""
    items = []
    for n in range(1, k + 1):
        items.append(pb.RecommendedItem(
            rank=n, score=1.0 - n / 100,
            item=pb.Item(id=f"item-{n}", title=f"Nitrile Exam Gloves, Powder Free, Size {n}",
                         category="Industrial & Scientific Lab & Scientific Products Gloves",
                         brand="Acme", price=9.99 + n),
            evidence=[pb.Evidence(item_id=f"hist-{j}", similarity=0.5) for j in range(3)]))
    return pb.RecommendResponse(request_id="echo", items=items)


class EchoServicer(pb_grpc.ExplainRecServicer):
    def __init__(self) -> None:
        self.reply = canned_reply()

    async def Recommend(self, request, context):
        return self.reply


async def serve(port: int = 0) -> None:
    server = grpc.aio.server()
    pb_grpc.add_ExplainRecServicer_to_server(EchoServicer(), server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    from server.loop_lag import LoopLagMonitor
    lag = LoopLagMonitor().start()
    print(json.dumps({"grpc": f"127.0.0.1:{bound}"}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    lag.stop()
    print(json.dumps({"event_loop_lag_ms_p99": round(lag.p99_s() * 1e3, 2)}), flush=True)
    await server.stop(0)


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
