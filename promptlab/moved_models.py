"""Migrations that move models between apps without touching their tables: the content types
(and so the permissions and admin log entries that point at them) follow the models."""

from django.db import migrations


def move_content_types(old_label: str, new_label: str, models: list[str]) -> migrations.RunPython:
    """A RunPython operation giving the models' content types their new app label (and back)."""

    def relabel(apps, schema_editor, source: str, target: str) -> None:
        content_types = apps.get_model("contenttypes", "ContentType").objects.using(schema_editor.connection.alias)
        for model in models:
            old = content_types.filter(app_label=source, model=model).first()
            if old is None:  # a new database: post_migrate creates the new ones
                continue
            # One made under the new label before this ran (a partial migrate) holds nothing yet.
            content_types.filter(app_label=target, model=model).delete()
            old.app_label = target
            old.save(update_fields=["app_label"])

    return migrations.RunPython(
        lambda apps, schema_editor: relabel(apps, schema_editor, old_label, new_label),
        lambda apps, schema_editor: relabel(apps, schema_editor, new_label, old_label),
    )
