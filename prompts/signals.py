"""What the prompts layer announces to the layers above it, which it never imports."""

from django.dispatch import Signal

# Sent after commit when a save made a new version of a prompt, with prompt_id and version.
prompt_version_created = Signal()

# Sent after commit when a label moved, with label_move_id (the LabelMove that records it) and
# rollback. Not sent when the label already pointed at the version.
label_moved = Signal()
