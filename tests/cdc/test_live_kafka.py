"""The live path through a real Kafka broker, as Debezium Server runs in the field:
PostgreSQL, Debezium's PostgreSQL connector (embedded engine) producing every batch to a
KRaft broker (``KafkaSink``), and the lander consuming the topics as a process of its
own. While the shop simulator runs a randomised workload, the lander is killed with
SIGKILL 10+ times in the middle of a round and restarted, and the broker is restarted
once. Afterwards every silver table equals its source table and bronze holds every event
of the topics exactly once, by event identity."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace

import pytest

from lakehouse.cdc.kafka_sink import KafkaSink
from lakehouse.cdc.kafka_source import KafkaSource
from lakehouse.cdc.lander import ingest
from lakehouse.exceptions import SourceError
from lakehouse.oltp.simulate import SimulateParams, SimulateSummary, simulate
from lakehouse.settings import Settings
from lakehouse.supervisors.kafka import KafkaBroker
from tests.cdc.test_live_capture import Capture, _changes, _source_table, _streamed
from tests.support.exactly_once import assert_bronze_exactly_once, streamed_changes
from tests.support.kafka import running_broker
from tests.support.killer import Killer, delta_commits
from tests.support.oltp import oltp_cluster
from tests.support.ports import free_port
from tests.support.truth import assert_silver_equals

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("debezium")]
WORLD = SimulateParams(tps=0, duration=None, transactions=1, clients=150, products=40)
CHUNK = replace(WORLD, tps=100, transactions=200)  # the shop, a couple of seconds at a time
KILLS = 10
TRANSACTIONS = 3_000  # at least, spread over the kills
SETTLE_S = 180.0  # for the capture and the last landing to catch up with the shop
RUN_TIMEOUT_S = 900.0  # for the shop, the kills and the broker's restart


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    with running_broker(tmp_path_factory.mktemp("kafka")) as broker:
        yield broker


@pytest.fixture(scope="module")
def shop(broker: KafkaBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    base = tmp_path_factory.mktemp("live-kafka")
    with oltp_cluster(base, kafka_bootstrap_servers=broker.bootstrap_servers) as settings:
        yield settings


def test_lander_kills_and_a_broker_restart_lose_and_double_nothing(
    broker: KafkaBroker, shop: Settings
) -> None:
    """Capture runs in this process and is never stopped: its batches wait in the
    producer while the broker is down and go out when it is back. The lander resumes
    after every kill from the lake's app transactions; it fails while the broker is
    down, and is started again."""
    simulate(shop, WORLD)
    capture = Capture(shop)
    capture.wait_quiet()  # the initial snapshot, in Kafka
    # each lander is killed 0-4 s after its first Delta commit, in the next round it is in
    lander = Killer(
        shop,
        ["ingest", "--follow", "--interval", "0.5"],
        random.Random(5),
        (0.0, 4.0),
        progress=lambda: delta_commits(shop),
        lease="lander",
    )
    restarted: dict[str, float] = {}

    def restart_broker() -> None:  # while the shop goes on
        restarted["batches"] = len(capture.batches)
        started = time.monotonic()
        try:
            broker.restart()
            restarted["seconds"] = time.monotonic() - started
        finally:
            restarted["kills"] = lander.kills

    restart = threading.Thread(target=restart_broker, daemon=True)
    summaries: list[SimulateSummary] = []
    deadline = time.monotonic() + RUN_TIMEOUT_S
    try:
        while (
            lander.in_flight < KILLS
            or sum(s.transactions for s in summaries) < TRANSACTIONS
            or lander.kills <= restarted.get("kills", lander.kills)  # one after the restart
        ):
            assert lander.thread.is_alive(), "the lander's killer stopped"
            assert time.monotonic() < deadline, (
                f"{lander.in_flight} of {lander.kills} lander kills in a round, "
                f"{sum(s.transactions for s in summaries)} transactions in "
                f"{RUN_TIMEOUT_S:.0f} s (restart: {restarted}); see {lander.log}"
            )
            summaries.append(simulate(shop, CHUNK))
            if lander.kills >= KILLS // 3 and restart.ident is None:
                restart.start()
    finally:
        lander.close()
        if restart.ident is not None:
            restart.join(120)
    assert "seconds" in restarted, "the broker did not restart"
    assert len(capture.batches) > restarted["batches"], "nothing captured after the restart"
    assert delta_commits(shop), "the lander processes landed nothing"

    committed = _changes(*summaries)
    assert sum(s.transactions for s in summaries) >= TRANSACTIONS
    assert {op for _, op in committed} == {"c", "u", "d"}
    # capture keeps running until landing holds every committed change, or one too many
    deadline = time.monotonic() + SETTLE_S
    landed = _landed(shop)
    while landed != committed and not landed - committed and time.monotonic() < deadline:
        time.sleep(1)
        landed = _landed(shop)
    capture.close()
    ingest(shop)  # whatever capture sent while it stopped
    assert lander.in_flight >= KILLS
    with KafkaSource(
        shop.kafka_bootstrap_servers, "exactly-once-check", shop.topic_prefix
    ) as topics:
        events = assert_bronze_exactly_once(shop, topics)  # by event identity, snapshot too
    assert streamed_changes(events) == committed  # and the capture missed none
    assert_silver_equals(shop, lambda contract: _source_table(shop, contract))


def _landed(settings: Settings) -> Counter[tuple[str, str]]:
    ingest(settings)
    return _streamed(settings)


def test_sync_fails_clearly_when_no_broker_answers() -> None:
    """The engine must not count a batch as processed that the broker did not take."""
    sink = KafkaSink(f"127.0.0.1:{free_port()}", timeout_s=2.0)
    with pytest.raises(SourceError, match=r"cannot create topic oltp\.public\.client"):
        sink.append("oltp.public.client", [b'{"key":{"client_id":1},"value":null}'])
    sink._topics.add("oltp.public.client")  # as if created before the broker went away
    sink.append("oltp.public.client", [b'{"key":{"client_id":1},"value":null}'])
    with pytest.raises(SourceError, match="did not take 1 change records"):
        sink.sync()
    sink.close()
