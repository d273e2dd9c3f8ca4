"""create_app: the Faust app is built from Settings, with the ingest tuning applied (no Kafka)."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiokafka import ConsumerRecord
from faust.types import TP

from streams.faust_ext import (
    IngestConsumerThread,
    IngestStream,
    IngestTransport,
    RecordChunk,
    create_app,
)
from streams.settings import DevSettings, KafkaSettings, Settings, StreamSettings, load_settings

TUNED = StreamSettings(
    app_id="ioc-test",
    batch_size=1234,
    batch_window_s=0.25,
    broker_max_poll_records=777,
    consumer_max_fetch_size=2 * 1024**2,
    fetch_max_wait_ms=250,
    stream_buffer_maxsize=9999,
    chunk_buffer_maxsize=12,
    commit_interval_s=0.7,
    stream_yield_every=50,
    web_enabled=False,
    web_port=6123,
)


def tuned_settings() -> Settings:
    return Settings(
        kafka=KafkaSettings(bootstrap="10.0.0.1:9093,10.0.0.2:9094", client_id="ioc-unit"),
        stream=TUNED,
    )


def test_settings_are_applied_to_the_faust_app() -> None:
    app = create_app(tuned_settings())
    conf = app.conf
    assert conf.id == "ioc-test"
    assert [(url.host, url.port) for url in conf.broker] == [
        ("10.0.0.1", 9093),
        ("10.0.0.2", 9094),
    ]
    assert conf.broker_client_id == "ioc-unit"
    assert conf.broker_max_poll_records == 777
    assert conf.consumer_max_fetch_size == 2 * 1024**2
    assert conf.stream_buffer_maxsize == 12  # chunks (read_chunks is the default)
    assert app.chunk_max_records == 1234  # no chunk is larger than a batch
    assert conf.broker_commit_interval == 0.7
    assert conf.cython_optimizations is False
    assert conf.web_enabled is False
    assert conf.web_port == 6123
    assert conf.topic_partitions == 6
    assert conf.Stream is IngestStream
    assert isinstance(app.transport, IngestTransport)


def test_id_overrides_the_consumer_group() -> None:
    assert create_app(tuned_settings(), id="ioc-other").conf.id == "ioc-other"


def test_per_record_reading_buffers_events() -> None:
    settings = tuned_settings().model_copy(
        update={"stream": TUNED.model_copy(update={"read_chunks": False})}
    )
    assert create_app(settings).conf.stream_buffer_maxsize == 9999


def test_a_chunk_is_one_message_at_its_last_offset() -> None:
    tp = TP("city.environment", 3)
    records = [
        ConsumerRecord("city.environment", 3, offset, 1_700_000_000_000 + offset, 0, b"k", b"v",
                       None, 1, 1, ())
        for offset in range(40, 45)
    ]  # fmt: skip
    chunk = RecordChunk(tp, records, generation_id=7)
    assert (chunk.first_offset, chunk.offset, chunk.tp, chunk.generation_id) == (40, 44, tp, 7)
    assert chunk.records is records
    assert chunk.timestamp == pytest.approx(1_700_000_000.044)
    assert chunk.acked is False


def test_apps_in_one_process_share_no_state() -> None:
    """The worker, the tests and the benchmarks build several apps in one process: what is set
    or registered on one must not show on another."""
    first, second = create_app(tuned_settings()), create_app(tuned_settings(), id="b")
    first.chunk_topics("city.environment.events")
    first.fetch_max_wait_ms, first.stream_yield_every, first.chunk_max_records = 1, 2, 3

    async def ingest(stream: IngestStream) -> None:
        async for _records in stream.take_records(10, within=0.1):
            pass

    first.agent(first.topic("city.environment.events"), name="only-first")(ingest)
    first.conf.broker_commit_interval = 9.0

    assert first.chunked_topics == {"city.environment.events"}
    assert second.chunked_topics == frozenset()
    assert (second.fetch_max_wait_ms, second.stream_yield_every, second.chunk_max_records) == (
        250, 50, 1234,
    )  # fmt: skip
    assert "only-first" in first.agents and "only-first" not in second.agents
    assert second.conf.broker_commit_interval == 0.7
    assert (first.conf.id, second.conf.id) == ("ioc-test", "b")
    assert first.conf.datadir != second.conf.datadir
    assert create_app(tuned_settings()).chunked_topics == frozenset()  # and none leaks to new apps


async def test_aiokafka_consumer_gets_the_tuned_fetch_settings() -> None:
    app = create_app(tuned_settings())
    thread = app.consumer._thread
    assert isinstance(thread, IngestConsumerThread)
    consumer = thread._create_worker_consumer(app.transport)
    try:
        assert consumer._fetch_max_wait_ms == 250  # Faust alone passes 1500
        assert consumer._max_poll_records == 777
        assert consumer._enable_auto_commit is False
    finally:
        await consumer.stop()


def test_stream_settings_from_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("IOC_STREAM__BATCH_SIZE", "2500")
    clean_env.setenv("IOC_STREAM__FETCH_MAX_WAIT_MS", "50")
    settings = load_settings()
    assert settings.stream.batch_size == 2500
    assert settings.stream.fetch_max_wait_ms == 50


def test_faust_keeps_its_data_under_the_state_directory(tmp_path: Path) -> None:
    """Faust makes the app's folder but not its parents (a fresh clone has no .local/faust)."""
    settings = tuned_settings().model_copy(
        update={"dev": DevSettings(state_dir=tmp_path / "state")}
    )
    app = create_app(settings)
    assert (tmp_path / "state" / "faust").is_dir()
    assert Path(app.conf.datadir) == tmp_path / "state" / "faust" / "ioc-test-data"
