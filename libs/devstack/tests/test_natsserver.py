"""The embedded nats-server: listens on 127.0.0.1 with JetStream, in a store it creates."""

from __future__ import annotations

import socket
from pathlib import Path

import nats
import pytest

from switchboard.devstack.natsserver import NatsServer, NatsServerError, free_port


async def test_a_server_serves_jetstream_from_the_store_it_creates(tmp_path: Path) -> None:
    store = tmp_path / "deep" / "store"
    with NatsServer(store_dir=store) as server:
        assert server.url.startswith("nats://127.0.0.1:")
        nc = await nats.connect(server.url)
        try:
            info = await nc.jetstream().account_info()
            assert info.limits is not None
        finally:
            await nc.close()
        assert store.is_dir()
        port = server.port
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()  # stopped


def test_a_server_that_cannot_start_says_why(tmp_path: Path) -> None:
    config = tmp_path / "broken.conf"
    config.write_text("this is { not a config\n")
    with pytest.raises(NatsServerError, match="exited"):
        NatsServer(port=free_port(), store_dir=tmp_path / "store", config_file=config).start()
