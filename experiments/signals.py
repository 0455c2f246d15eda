"""What the experiments layer announces to the layers above it (evaluations), which it never imports."""

from django.dispatch import Signal

# Sent after the transaction that recorded a run's successful answer commits; kwargs: run_id.
run_done = Signal()
