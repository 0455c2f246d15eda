import signal
import subprocess
import sys
import time

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run the development web server with a Celery worker beside it. Ctrl-C stops both."

    def add_arguments(self, parser):
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000", help="Default 127.0.0.1:8000.")
        parser.add_argument("--concurrency", type=int, default=2, help="Worker processes (default 2).")

    def handle(self, *args, addrport, concurrency, **options):
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "promptlab", "worker",
             "--loglevel", "INFO", "--concurrency", str(concurrency)]  # fmt: skip
        )
        web = subprocess.Popen([sys.executable, "manage.py", "runserver", addrport])
        children = [web, worker]
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        # Run until Ctrl-C, a TERM, or either child dying; then take the other one down too.
        while not stopping and all(child.poll() is None for child in children):
            time.sleep(0.2)
        died = next((child for child in children if child.poll() is not None), None)
        for child in children:
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + 15
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        if died is not None and not stopping:
            name = "web server" if died is web else "worker"
            self.stderr.write(f"The {name} exited with status {died.returncode}; stopped the other one too.")
            sys.exit(1)
