# promptlab web and worker image: `docker compose up` runs both against PostgreSQL and Redis.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 promptlab
WORKDIR /app

# The same hash-checked install as `make install`, from the runtime lock.
COPY requirements/base.lock requirements/base.lock
RUN python -m pip install --no-cache-dir --require-hashes --no-deps -r requirements/base.lock

COPY --chown=promptlab:promptlab . .

# collectstatic only reads settings; these placeholders satisfy production's required variables.
RUN DJANGO_ENV=production SECRET_KEY=collectstatic-only ALLOWED_HOSTS=localhost \
    PROMPTLAB_BASE_URL=http://localhost DATABASE_URL=postgres://unused/unused REDIS_URL=redis://unused:6379/0 \
    python manage.py collectstatic --noinput

USER promptlab
ENV DJANGO_ENV=production
EXPOSE 8000
CMD ["gunicorn", "--config", "python:promptlab.gunicorn", "promptlab.wsgi"]
