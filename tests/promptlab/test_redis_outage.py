"""The pieces that keep promptlab up while Redis is not: the cache that falls back to memory, the
sends that leave lost work to the sweeper, and the recoveries the sweeper runs."""

import socket
import threading
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from kombu.exceptions import OperationalError

from evaluations.governance.models import DeliveryStatus, WebhookDelivery, WebhookEvent
from evaluations.governance.tasks import deliveries_recover
from evaluations.services import scoring_recover
from experiments import services as experiment_services
from experiments.models import Experiment, ExperimentStatus, Run, RunStatus
from experiments.tasks import experiment_drain
from promptlab import dispatch, sweeper
from promptlab.redis_cache import ResilientRedisCache
from tests.conftest import free_port
from tests.factories import ExperimentFactory, RunFactory, WebhookFactory


EVENT = WebhookEvent.LABEL_MOVED


def _cache(location: str) -> ResilientRedisCache:
    return ResilientRedisCache(location, {"OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}})


class SilentServer:
    """Accepts connections and never answers: a hanging Redis. Counts the connections."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                self.accepted.append(self.sock.accept()[0])
            except OSError:
                return


def test_with_redis_refusing_the_cache_serves_from_memory(settings):
    cache = _cache(f"redis://127.0.0.1:{free_port()}/0")

    assert cache.get("missing", "default") == "default"
    cache.set("prompt", "v1", timeout=60)
    assert cache.get("prompt") == "v1"
    assert cache.add("lock", 1) is True and cache.add("lock", 1) is False  # still atomic within the process
    assert cache.incr("lock") == 2
    with pytest.raises(Exception):
        cache.ping()  # /readyz asks Redis itself


def test_a_hanging_redis_costs_one_timeout_then_is_not_asked(settings):
    settings.REDIS_RETRY_SECONDS = 60
    server = SilentServer()
    cache = _cache(f"redis://127.0.0.1:{server.port}/0")

    assert cache.get("key") is None
    cache.set("key", "value")
    assert cache.get("key") == "value"
    assert len(server.accepted) == 1  # the first operation timed out; the others went to memory


def test_what_is_kept_in_memory_expires_within_the_fallback_window(settings):
    settings.REDIS_FALLBACK_SECONDS = 5
    cache = _cache(f"redis://127.0.0.1:{free_port()}/0")
    cache.get("warm-up")  # marks Redis unreachable

    cache.set("forever", "x", timeout=None)

    expiry = cache._fallback._expire_info[cache._fallback.make_and_validate_key("forever")]
    assert expiry <= timezone.now().timestamp() + 5 + 1  # an invalidation elsewhere is missed for seconds, not forever


def test_a_send_to_an_unreachable_broker_is_deferred_not_raised(monkeypatch, settings):
    settings.BROKER_RETRY_SECONDS = 60
    sent = []

    def refuse(args, **options):
        sent.append(args)
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(dispatch, "_down_until", 0.0)
    monkeypatch.setattr(experiment_drain, "apply_async", refuse)

    assert dispatch.send(experiment_drain, 1) is False
    assert dispatch.deferring()
    assert dispatch.send(experiment_drain, 2) is False
    assert sent == [(1,)]  # while deferring, the broker is not asked again


@pytest.fixture
def sends(monkeypatch):
    """What the recoveries send, by task name; at once, also when asked to wait for a commit (the
    sweeper runs outside a transaction, the test inside one)."""
    sent = []

    def send(task, *args, **options):
        sent.append((task.name, args))
        return True

    monkeypatch.setattr(dispatch, "send", send)
    monkeypatch.setattr(dispatch, "send_on_commit", send)
    return sent


def _ago(seconds: float):
    return timezone.now() - timedelta(seconds=seconds)


@pytest.mark.django_db
def test_the_sweeper_sends_drains_only_for_experiments_with_no_sign_of_life(sends, settings):
    settings.SWEEP_STALE_SECONDS = 60
    stalled = ExperimentFactory(status=ExperimentStatus.RUNNING, started_at=_ago(600), concurrency=2)
    RunFactory(experiment=stalled, status=RunStatus.PENDING)
    RunFactory(experiment=stalled, status=RunStatus.DONE, finished_at=_ago(300))
    in_flight = ExperimentFactory(status=ExperimentStatus.RUNNING, started_at=_ago(600))
    RunFactory(experiment=in_flight, status=RunStatus.PENDING)
    RunFactory(experiment=in_flight, status=RunStatus.RUNNING, lease_until=timezone.now() + timedelta(seconds=30))
    progressing = ExperimentFactory(status=ExperimentStatus.RUNNING, started_at=_ago(600))
    RunFactory(experiment=progressing, status=RunStatus.PENDING)
    RunFactory(experiment=progressing, status=RunStatus.DONE, finished_at=_ago(5))
    just_started = ExperimentFactory(status=ExperimentStatus.RUNNING, started_at=_ago(5))
    RunFactory(experiment=just_started, status=RunStatus.PENDING)
    dead_after_last_run = ExperimentFactory(status=ExperimentStatus.RUNNING, started_at=_ago(600))
    RunFactory(experiment=dead_after_last_run, status=RunStatus.DONE, finished_at=_ago(300))

    sweeper.sweep()

    assert sends == [("experiments.drain", (stalled.pk,))] * 2  # its concurrency
    assert Experiment.objects.get(pk=dead_after_last_run.pk).status == ExperimentStatus.FINISHED


@pytest.mark.django_db
def test_the_sweeper_scores_again_a_scoring_experiment_whose_scores_stopped(sends):
    stopped = ExperimentFactory(status=ExperimentStatus.SCORING)
    RunFactory(experiment=stopped, status=RunStatus.DONE, finished_at=_ago(600))
    scoring = ExperimentFactory(status=ExperimentStatus.SCORING)
    RunFactory(experiment=scoring, status=RunStatus.DONE, finished_at=_ago(10))

    assert scoring_recover(_ago(60)) == 1

    assert sends == [("evaluations.rescore_experiment", (stopped.pk, None, False))]


@pytest.mark.django_db
def test_the_sweeper_sends_again_deliveries_whose_message_was_lost(sends):
    webhook = WebhookFactory()
    never_sent = WebhookDelivery.objects.create(webhook=webhook, event=EVENT, event_id=uuid.uuid4(), payload={})
    WebhookDelivery.objects.filter(pk=never_sent.pk).update(created_at=_ago(600))
    retry_lost = WebhookDelivery.objects.create(webhook=webhook, event=EVENT, event_id=uuid.uuid4(), payload={}, attempts=2, next_attempt_at=_ago(600))
    dead_worker = WebhookDelivery.objects.create(webhook=webhook, event=EVENT, event_id=uuid.uuid4(), payload={}, attempts=1,
                                                 status=DeliveryStatus.SENDING, lease_until=_ago(600))  # fmt: skip
    WebhookDelivery.objects.create(webhook=webhook, event=EVENT, event_id=uuid.uuid4(), payload={})  # just queued
    WebhookDelivery.objects.create(webhook=webhook, event=EVENT, event_id=uuid.uuid4(), payload={}, attempts=1, next_attempt_at=timezone.now())

    assert deliveries_recover(_ago(60)) == 3

    assert sorted(sends) == sorted([
        ("evaluations.webhook_deliver", (str(never_sent.pk), 1)),
        ("evaluations.webhook_deliver", (str(retry_lost.pk), 3)),
        ("evaluations.webhook_deliver", (str(dead_worker.pk), 1)),
    ])  # fmt: skip


@pytest.mark.django_db
def test_a_recovery_that_fails_does_not_stop_the_others(monkeypatch, sends):
    def broken(stale_before):
        raise RuntimeError("bug")

    monkeypatch.setitem(sweeper.RECOVERIES, "broken", broken)
    stalled = ExperimentFactory(status=ExperimentStatus.RUNNING, started_at=_ago(600), concurrency=1)
    RunFactory(experiment=stalled, status=RunStatus.PENDING)

    sent = sweeper.sweep()

    assert "broken" not in sent
    assert sends == [("experiments.drain", (stalled.pk,))]


@pytest.mark.django_db
def test_a_worker_that_starts_sends_drains_for_every_running_experiment(sends):
    running = ExperimentFactory(status=ExperimentStatus.RUNNING, started_at=timezone.now(), concurrency=1)
    RunFactory(experiment=running, status=RunStatus.RUNNING, lease_until=timezone.now() + timedelta(seconds=30))

    assert experiment_services.experiments_recover() == 1
    assert Run.objects.get(experiment=running).status == RunStatus.RUNNING
