"""Approvals, notifications and webhooks leave for governance; the evaluators' project is accounts'. State only."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0001_moved_from_prompts'),
        ('evaluations', '0003_governance'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
            migrations.RemoveField(
                model_name='notification',
                name='approval',
            ),
            migrations.RemoveField(
                model_name='historicalwebhook',
                name='created_by',
            ),
            migrations.RemoveField(
                model_name='historicalwebhook',
                name='history_user',
            ),
            migrations.RemoveField(
                model_name='historicalwebhook',
                name='project',
            ),
            migrations.RemoveField(
                model_name='notification',
                name='project',
            ),
            migrations.RemoveField(
                model_name='notification',
                name='user',
            ),
            migrations.RemoveField(
                model_name='webhook',
                name='created_by',
            ),
            migrations.RemoveField(
                model_name='webhook',
                name='project',
            ),
            migrations.RemoveField(
                model_name='webhookdelivery',
                name='webhook',
            ),
            migrations.RemoveField(
                model_name='webhookattempt',
                name='delivery',
            ),
            migrations.AlterField(
                model_name='evaluator',
                name='project',
                field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='evaluators', to='accounts.project'),
            ),
            migrations.AlterField(
                model_name='historicalevaluator',
                name='project',
                field=models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='accounts.project'),
            ),
            migrations.DeleteModel(
                name='ApprovalRequest',
            ),
            migrations.DeleteModel(
                name='HistoricalWebhook',
            ),
            migrations.DeleteModel(
                name='Notification',
            ),
            migrations.DeleteModel(
                name='Webhook',
            ),
            migrations.DeleteModel(
                name='WebhookAttempt',
            ),
            migrations.DeleteModel(
                name='WebhookDelivery',
            ),
            ],
            database_operations=[],
        ),
    ]
