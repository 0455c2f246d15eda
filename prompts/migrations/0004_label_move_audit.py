import django.db.models.deletion
from django.db import migrations, models


def copy_prompt_names(apps, schema_editor):
    LabelMove = apps.get_model("prompts", "LabelMove")
    for move in LabelMove.objects.select_related("prompt"):
        move.prompt_name = move.prompt.name
        move.save(update_fields=["prompt_name"])


class Migration(migrations.Migration):
    dependencies = [("prompts", "0003_prompt_label")]

    operations = [
        migrations.AddField(
            model_name="labelmove", name="prompt_name", field=models.SlugField(default="", max_length=100), preserve_default=False
        ),
        migrations.RunPython(copy_prompt_names, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="labelmove",
            name="prompt",
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="label_moves", to="prompts.prompt"
            ),
        ),
    ]
