"""The Celery app. Its settings are the CELERY_* names in promptlab.settings.

Tasks are sent through promptlab.dispatch (`send_on_commit` once the surrounding transaction
has committed, so a worker never sees an id whose row is not there yet), which never lets a
broker outage fail the write that wanted the work; promptlab.sweeper sends lost work again.
"""

import os

import structlog
from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_ready
from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError

from promptlab import sweeper

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "promptlab.settings")

app = Celery("promptlab", task_cls="celery.contrib.django.task:DjangoTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


_connparams = kombu_redis.Channel._connparams


def _connparams_while_open(self, asynchronous=False):
    """When Redis goes away, kombu 5.7 may reach a channel whose transport is already closed (to
    put back unacknowledged messages, or to acknowledge a task that finished meanwhile) and fail
    with AttributeError ('NoneType' object has no attribute 'hostname'), on which the worker exits
    ("Unrecoverable error"). Raised as the connection error it is, kombu and Celery handle it as
    they handle every broker outage: logged, and the worker reconnects. Nothing is lost: the
    sweeper sends the work again. The Redis chaos test found it."""
    if self.connection is None or self.connection.client is None:
        raise RedisConnectionError("the connection to the broker is closed")
    return _connparams(self, asynchronous)


kombu_redis.Channel._connparams = _connparams_while_open


@task_prerun.connect
def _bind_task_context(task_id=None, task=None, **_):
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(task_id=task_id, task_name=task.name)


@task_postrun.connect
def _clear_task_context(**_):
    structlog.contextvars.clear_contextvars()


@worker_ready.connect
def _start_sweeper(**_):
    """Every worker sends again, every SWEEP_SECONDS, the work whose message was lost."""
    sweeper.start()
