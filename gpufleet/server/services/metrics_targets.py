"""What Prometheus should scrape: this server and every registered worker (``/metrics`` each).

The server lists itself at the address the caller reached it by (``host:port`` and scheme of the
request, as the join command does): replicas share no table of their addresses, so behind a load
balancer each replica answers with the balancer's address, and per-replica series need one static
target per replica. Workers are listed in every state: a worker that stopped answering shows as
``up == 0`` instead of vanishing from the dashboards. Workers are always scraped over plain HTTP
(they serve no TLS).
"""

from __future__ import annotations

from sqlalchemy import select

from gpufleet.db.session import Database
from gpufleet.db.tables import Worker
from gpufleet.schemas.metrics_targets import MetricsTargetGroup

METRICS_PATH = "/metrics"


def host_port(host: str, port: int) -> str:
    """``10.0.0.2:8081``; ``[fd00::2]:8081`` for an IPv6 address."""
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


async def metrics_targets(db: Database, server_address: str, server_scheme: str) -> list[MetricsTargetGroup]:
    """One group for the server (``server_address`` is ``host:port``), then one per worker, by id."""
    server = MetricsTargetGroup(
        targets=[server_address],
        labels={"role": "server", "__metrics_path__": METRICS_PATH, "__scheme__": server_scheme},
    )
    async with db.read() as session:
        rows = (await session.execute(select(Worker.id, Worker.name, Worker.ip, Worker.port).order_by(Worker.id))).all()
    workers = [
        MetricsTargetGroup(
            targets=[host_port(ip, port)],
            labels={
                "role": "worker",
                "worker": name,
                "worker_id": str(worker_id),
                "__metrics_path__": METRICS_PATH,
                "__scheme__": "http",
            },
        )
        for worker_id, name, ip, port in rows
    ]
    return [server, *workers]
