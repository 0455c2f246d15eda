"""What the prompts layer announces to the layers above it, which it never imports."""

from django.dispatch import Signal

# Sent inside label_move before a label moves, with prompt, label, version, actor,
# override_reason and rollback. A receiver vetoes the move by raising a DomainError, or
# returns a line for the move's record (e.g. "gate passed: ...").
label_moving = Signal()
