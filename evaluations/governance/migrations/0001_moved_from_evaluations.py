"""Approvals, notifications and webhooks move from evaluations to governance. State only: the tables keep their names."""

import django.db.models.deletion
import simple_history.models
import uuid
from django.conf import settings
from django.db import migrations, models

from promptlab.moved_models import move_content_types


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        # The content type relabelling reads ContentType as it is after this (also going back).
        ('contenttypes', '0002_remove_content_type_name'),
        ('evaluations', '0003_governance'),
        ('accounts', '0001_moved_from_prompts'),
        ('experiments', '0005_project_and_endpoint_moved'),
        ('prompts', '0006_governance_history'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
            migrations.CreateModel(
                name='ApprovalRequest',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('prompt_name', models.SlugField(max_length=100)),
                    ('version', models.PositiveIntegerField()),
                    ('from_version', models.PositiveIntegerField(blank=True, help_text='Where production pointed when proposed.', null=True)),
                    ('message', models.TextField(blank=True, help_text="Why, in the proposer's words.")),
                    ('status', models.CharField(choices=[('pending', 'Pending'), ('approved', 'Approved'), ('rejected', 'Rejected'), ('withdrawn', 'Withdrawn')], default='pending', max_length=16)),
                    ('proposed_at', models.DateTimeField(auto_now_add=True)),
                    ('gate_passed', models.BooleanField(blank=True, help_text='Empty: the prompt had no gate when proposed.', null=True)),
                    ('gate_reason', models.TextField(blank=True)),
                    ('decided_at', models.DateTimeField(blank=True, null=True)),
                    ('comment', models.TextField(blank=True, help_text="The decider's comment.")),
                    ('override_reason', models.TextField(blank=True, help_text='Given by the approver to ship past a gate that had not passed.')),
                    ('decided_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ('gate_experiment', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='experiments.experiment')),
                    ('label_move', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='prompts.labelmove')),
                    ('project', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='approval_requests', to='accounts.project')),
                    ('prompt', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='approval_requests', to='prompts.prompt')),
                    ('proposed_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ],
                options={
                    'db_table': 'evaluations_approvalrequest',
                    'ordering': ['-proposed_at', '-id'],
                },
            ),
            migrations.CreateModel(
                name='HistoricalWebhook',
                fields=[
                    ('id', models.BigIntegerField(auto_created=True, blank=True, db_index=True, verbose_name='ID')),
                    ('name', models.CharField(help_text='What receives it, e.g. Slack #releases.', max_length=200)),
                    ('url', models.URLField(help_text='http(s); the host must be in PROMPTLAB_WEBHOOK_HOSTS.', max_length=500)),
                    ('events', models.JSONField(default=list, help_text='The events sent; see WebhookEvent.')),
                    ('enabled', models.BooleanField(default=True)),
                    ('history_change_reason', models.TextField(null=True)),
                    ('history_id', models.AutoField(primary_key=True, serialize=False)),
                    ('history_date', models.DateTimeField(db_index=True)),
                    ('history_type', models.CharField(choices=[('+', 'Created'), ('~', 'Changed'), ('-', 'Deleted')], max_length=1)),
                    ('created_by', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ('history_user', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ('project', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='accounts.project')),
                ],
                options={
                    'verbose_name': 'historical webhook',
                    'verbose_name_plural': 'historical webhooks',
                    'db_table': 'evaluations_historicalwebhook',
                    'ordering': ('-history_date', '-history_id'),
                    'get_latest_by': ('history_date', 'history_id'),
                },
                bases=(simple_history.models.HistoricalChanges, models.Model),
            ),
            migrations.CreateModel(
                name='Notification',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('text', models.CharField(max_length=500)),
                    ('url', models.CharField(blank=True, max_length=500)),
                    ('created_at', models.DateTimeField(auto_now_add=True)),
                    ('read_at', models.DateTimeField(blank=True, null=True)),
                    ('approval', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='notifications', to='governance.approvalrequest')),
                    ('project', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='accounts.project')),
                    ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='notifications', to=settings.AUTH_USER_MODEL)),
                ],
                options={
                    'db_table': 'evaluations_notification',
                    'ordering': ['-created_at', '-id'],
                },
            ),
            migrations.CreateModel(
                name='Webhook',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('name', models.CharField(help_text='What receives it, e.g. Slack #releases.', max_length=200)),
                    ('url', models.URLField(help_text='http(s); the host must be in PROMPTLAB_WEBHOOK_HOSTS.', max_length=500)),
                    ('secret', models.CharField(editable=False, max_length=100)),
                    ('events', models.JSONField(default=list, help_text='The events sent; see WebhookEvent.')),
                    ('enabled', models.BooleanField(default=True)),
                    ('created_at', models.DateTimeField(auto_now_add=True)),
                    ('updated_at', models.DateTimeField(auto_now=True)),
                    ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ('project', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='webhooks', to='accounts.project')),
                ],
                options={
                    'db_table': 'evaluations_webhook',
                    'ordering': ['project', 'name'],
                },
            ),
            migrations.CreateModel(
                name='WebhookDelivery',
                fields=[
                    ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                    ('event', models.CharField(choices=[('prompt.version_created', 'A prompt version was saved'), ('label.moved', 'A label moved'), ('approval.requested', 'A production move was proposed'), ('approval.decided', 'A proposal was approved or rejected')], max_length=64)),
                    ('event_id', models.UUIDField()),
                    ('payload', models.JSONField()),
                    ('status', models.CharField(choices=[('pending', 'Pending'), ('sending', 'Sending'), ('succeeded', 'Succeeded'), ('failed', 'Failed')], default='pending', max_length=16)),
                    ('attempts', models.PositiveSmallIntegerField(default=0)),
                    ('lease_until', models.DateTimeField(blank=True, null=True)),
                    ('next_attempt_at', models.DateTimeField(blank=True, null=True)),
                    ('created_at', models.DateTimeField(auto_now_add=True)),
                    ('finished_at', models.DateTimeField(blank=True, null=True)),
                    ('webhook', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='deliveries', to='governance.webhook')),
                ],
                options={
                    'verbose_name_plural': 'webhook deliveries',
                    'db_table': 'evaluations_webhookdelivery',
                    'ordering': ['-created_at'],
                },
            ),
            migrations.CreateModel(
                name='WebhookAttempt',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('number', models.PositiveSmallIntegerField()),
                    ('started_at', models.DateTimeField()),
                    ('duration_ms', models.FloatField()),
                    ('status_code', models.PositiveSmallIntegerField(blank=True, null=True)),
                    ('response_excerpt', models.TextField(blank=True)),
                    ('error', models.TextField(blank=True)),
                    ('delivery', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='attempt_log', to='governance.webhookdelivery')),
                ],
                options={
                    'db_table': 'evaluations_webhookattempt',
                    'ordering': ['delivery', 'number'],
                },
            ),
            migrations.AddIndex(
                model_name='approvalrequest',
                index=models.Index(fields=['project', 'status'], name='approval_project_status'),
            ),
            migrations.AddConstraint(
                model_name='approvalrequest',
                constraint=models.UniqueConstraint(condition=models.Q(('status', 'pending')), fields=('prompt', 'version'), name='approval_one_pending_per_version'),
            ),
            migrations.AddConstraint(
                model_name='approvalrequest',
                constraint=models.CheckConstraint(condition=models.Q(('status__in', ['pending', 'approved', 'rejected', 'withdrawn'])), name='approval_status_valid'),
            ),
            migrations.AddIndex(
                model_name='notification',
                index=models.Index(fields=['user', 'read_at'], name='notification_user_unread'),
            ),
            migrations.AddIndex(
                model_name='webhookdelivery',
                index=models.Index(fields=['webhook', '-created_at'], name='delivery_webhook_created'),
            ),
            migrations.AddConstraint(
                model_name='webhookattempt',
                constraint=models.UniqueConstraint(fields=('delivery', 'number'), name='webhook_attempt_unique_number'),
            ),
            ],
            database_operations=[],
        ),
        move_content_types('evaluations', 'governance', ['approvalrequest', 'notification', 'webhook', 'historicalwebhook', 'webhookdelivery', 'webhookattempt']),
    ]
