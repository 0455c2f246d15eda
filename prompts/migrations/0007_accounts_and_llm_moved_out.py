"""Projects, memberships and API keys leave for accounts, the model catalog for llm. State only: the tables stay."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0001_moved_from_prompts'),
        ('evaluations', '0004_governance_moved_out'),
        ('experiments', '0005_project_and_endpoint_moved'),
        ('llm', '0001_moved_from_prompts'),
        ('prompts', '0006_governance_history'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
            migrations.AlterField(
                model_name='callfeedback',
                name='api_key',
                field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='accounts.apikey'),
            ),
            migrations.AlterField(
                model_name='promptcall',
                name='api_key',
                field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='calls', to='accounts.apikey'),
            ),
            migrations.RemoveField(
                model_name='historicalapikey',
                name='created_by',
            ),
            migrations.RemoveField(
                model_name='historicalapikey',
                name='history_user',
            ),
            migrations.RemoveField(
                model_name='historicalapikey',
                name='project',
            ),
            migrations.RemoveField(
                model_name='historicalapikey',
                name='revoked_by',
            ),
            migrations.RemoveField(
                model_name='historicalmembership',
                name='history_user',
            ),
            migrations.RemoveField(
                model_name='historicalmembership',
                name='project',
            ),
            migrations.RemoveField(
                model_name='historicalmembership',
                name='user',
            ),
            migrations.RemoveField(
                model_name='historicalmodelendpoint',
                name='history_user',
            ),
            migrations.RemoveField(
                model_name='historicalproject',
                name='history_user',
            ),
            migrations.RemoveField(
                model_name='membership',
                name='project',
            ),
            migrations.RemoveField(
                model_name='membership',
                name='user',
            ),
            migrations.RemoveField(
                model_name='project',
                name='members',
            ),
            migrations.AlterField(
                model_name='promptcall',
                name='endpoint',
                field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='prompt_calls', to='llm.modelendpoint'),
            ),
            migrations.AlterField(
                model_name='prompt',
                name='endpoint',
                field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='prompts', to='llm.modelendpoint', verbose_name='model'),
            ),
            migrations.AlterField(
                model_name='historicalprompt',
                name='endpoint',
                field=models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='llm.modelendpoint', verbose_name='model'),
            ),
            migrations.AlterField(
                model_name='historicalprompt',
                name='project',
                field=models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='accounts.project'),
            ),
            migrations.AlterField(
                model_name='promptcall',
                name='project',
                field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='prompt_calls', to='accounts.project'),
            ),
            migrations.AlterField(
                model_name='prompt',
                name='project',
                field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='prompts', to='accounts.project'),
            ),
            migrations.DeleteModel(
                name='ApiKey',
            ),
            migrations.DeleteModel(
                name='HistoricalApiKey',
            ),
            migrations.DeleteModel(
                name='HistoricalMembership',
            ),
            migrations.DeleteModel(
                name='HistoricalModelEndpoint',
            ),
            migrations.DeleteModel(
                name='HistoricalProject',
            ),
            migrations.DeleteModel(
                name='Membership',
            ),
            migrations.DeleteModel(
                name='ModelEndpoint',
            ),
            migrations.DeleteModel(
                name='Project',
            ),
            ],
            database_operations=[],
        ),
    ]
