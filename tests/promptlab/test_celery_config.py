import pytest

from promptlab.celery import app


def test_tasks_are_acknowledged_late_and_requeued_when_a_worker_dies():
    conf = app.conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1


def test_time_limits_and_visibility_timeout_are_consistent():
    conf = app.conf
    assert 0 < conf.task_soft_time_limit < conf.task_time_limit
    visibility = conf.broker_transport_options.get("visibility_timeout")
    if visibility is not None:  # Redis: an unacked message must outlive the longest task
        assert visibility > conf.task_time_limit


def test_named_queues():
    assert {queue.name for queue in app.conf.task_queues} == {"default", "llm"}
    assert app.conf.task_default_queue == "default"


def test_tasks_can_enqueue_on_commit():
    from promptlab.tasks import worker_ping_answer  # imported, not looked up: the registry fills lazily

    assert hasattr(app.tasks[worker_ping_answer.name], "delay_on_commit")


def test_a_channel_whose_broker_connection_closed_fails_as_a_connection_error():
    """kombu reaches such a channel to acknowledge or put back messages when Redis goes away; an
    AttributeError there ended the worker, a connection error is logged and the worker reconnects."""
    from types import SimpleNamespace

    from kombu.transport import redis as kombu_redis

    channel = object.__new__(kombu_redis.Channel)  # no server: only the parameters are asked for
    channel.connection = SimpleNamespace(client=None)  # what a lost connection's close leaves behind

    with pytest.raises(kombu_redis.Transport.connection_errors, match="the connection to the broker is closed"):
        channel._connparams()
