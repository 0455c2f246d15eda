"""gunicorn settings for the Docker image and any production host:
`gunicorn --config python:promptlab.gunicorn promptlab.wsgi`."""

import os

bind = os.environ.get("BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
# RequestLogMiddleware logs every request with its id; gunicorn's access log would repeat it.
accesslog = None
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
