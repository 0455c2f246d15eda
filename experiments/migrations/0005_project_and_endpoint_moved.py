"""Projects are accounts' and model endpoints llm's now. State only: no table or column changes."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0001_moved_from_prompts'),
        ('experiments', '0004_dataset_history'),
        ('llm', '0001_moved_from_prompts'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
            migrations.AlterField(
                model_name='dataset',
                name='project',
                field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='datasets', to='accounts.project'),
            ),
            migrations.AlterField(
                model_name='experiment',
                name='project',
                field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='experiments', to='accounts.project'),
            ),
            migrations.AlterField(
                model_name='historicaldataset',
                name='project',
                field=models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='accounts.project'),
            ),
            migrations.AlterField(
                model_name='playgroundcall',
                name='endpoint',
                field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='playground_calls', to='llm.modelendpoint'),
            ),
            migrations.AlterField(
                model_name='playgroundcall',
                name='project',
                field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='playground_calls', to='accounts.project'),
            ),
            migrations.AlterField(
                model_name='variant',
                name='endpoint',
                field=models.ForeignKey(blank=True, help_text="Default: the prompt version's model.", null=True, on_delete=django.db.models.deletion.PROTECT, to='llm.modelendpoint'),
            ),
            ],
            database_operations=[],
        ),
    ]
