"""What the experiments layer announces to the layers above it (evaluations), which it never imports."""

from django.dispatch import Signal

# Sent after the transaction that recorded a run's successful answer commits; kwargs: run_id.
run_done = Signal()

# Sent after the transaction of experiment_resume commits; kwargs: experiment_id. Scores that
# errored because the budget was reached are tried again, as the runs skipped for it are.
experiment_resumed = Signal()

# Sent after the transaction that changed a dataset item's own assertions or threshold commits; kwargs: item_id.
item_assertions_changed = Signal()
