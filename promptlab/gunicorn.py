"""gunicorn settings for the Docker image and any production host:
`gunicorn --config python:promptlab.gunicorn promptlab.wsgi`."""

import os

bind = os.environ.get("BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Threaded workers, with more threads than a process has render slots (PROMPT_RENDER_CONCURRENCY,
# 2 by default): however many previews and renders arrive, each process keeps threads free for
# /healthz and cheap requests. A sync worker serves one request at a time, so a few slow renders
# made the health check wait. GUNICORN_CMD_ARGS="--threads 16" overrides this.
worker_class = "gthread"
threads = 8
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
# RequestLogMiddleware logs every request with its id; gunicorn's access log would repeat it.
accesslog = None
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
