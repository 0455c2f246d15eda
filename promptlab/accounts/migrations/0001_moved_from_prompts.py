"""Projects, memberships and API keys move from prompts to accounts. State only: the tables keep their names."""

import django.core.validators
import django.db.models.deletion
import re
import simple_history.models
from django.conf import settings
from django.db import migrations, models

from promptlab.moved_models import move_content_types


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        # The content type relabelling reads ContentType as it is after this (also going back).
        ('contenttypes', '0002_remove_content_type_name'),
        ('prompts', '0006_governance_history'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
            migrations.CreateModel(
                name='HistoricalProject',
                fields=[
                    ('id', models.BigIntegerField(auto_created=True, blank=True, db_index=True, verbose_name='ID')),
                    ('slug', models.SlugField(max_length=64, validators=[django.core.validators.RegexValidator(re.compile('^[-a-zA-Z0-9_]+\\Z'), 'Enter a valid “slug” consisting of letters, numbers, underscores or hyphens.', 'invalid')])),
                    ('name', models.CharField(max_length=200)),
                    ('require_approval', models.BooleanField(default=False, editable=False, help_text="Production moves only through an approved proposal (rollbacks and the operator's CLI excepted).")),
                    ('history_change_reason', models.TextField(null=True)),
                    ('history_id', models.AutoField(primary_key=True, serialize=False)),
                    ('history_date', models.DateTimeField(db_index=True)),
                    ('history_type', models.CharField(choices=[('+', 'Created'), ('~', 'Changed'), ('-', 'Deleted')], max_length=1)),
                    ('history_user', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ],
                options={
                    'verbose_name': 'historical project',
                    'verbose_name_plural': 'historical projects',
                    'db_table': 'prompts_historicalproject',
                    'ordering': ('-history_date', '-history_id'),
                    'get_latest_by': ('history_date', 'history_id'),
                },
                bases=(simple_history.models.HistoricalChanges, models.Model),
            ),
            migrations.CreateModel(
                name='Membership',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('role', models.CharField(choices=[('viewer', 'Viewer'), ('editor', 'Editor'), ('admin', 'Admin'), ('owner', 'Owner')], default='viewer', max_length=16)),
                    ('created_at', models.DateTimeField(auto_now_add=True)),
                    ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='memberships', to=settings.AUTH_USER_MODEL)),
                ],
                options={
                    'db_table': 'prompts_membership',
                    'ordering': ['project', 'user__email'],
                },
            ),
            migrations.CreateModel(
                name='Project',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('slug', models.SlugField(max_length=64, unique=True, validators=[django.core.validators.RegexValidator(re.compile('^[-a-zA-Z0-9_]+\\Z'), 'Enter a valid “slug” consisting of letters, numbers, underscores or hyphens.', 'invalid')])),
                    ('name', models.CharField(max_length=200)),
                    ('created_at', models.DateTimeField(auto_now_add=True)),
                    ('require_approval', models.BooleanField(default=False, editable=False, help_text="Production moves only through an approved proposal (rollbacks and the operator's CLI excepted).")),
                    ('members', models.ManyToManyField(related_name='projects', through='accounts.Membership', to=settings.AUTH_USER_MODEL)),
                ],
                options={
                    'db_table': 'prompts_project',
                    'ordering': ['name'],
                },
            ),
            migrations.AddField(
                model_name='membership',
                name='project',
                field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='memberships', to='accounts.project'),
            ),
            migrations.CreateModel(
                name='HistoricalMembership',
                fields=[
                    ('id', models.BigIntegerField(auto_created=True, blank=True, db_index=True, verbose_name='ID')),
                    ('role', models.CharField(choices=[('viewer', 'Viewer'), ('editor', 'Editor'), ('admin', 'Admin'), ('owner', 'Owner')], default='viewer', max_length=16)),
                    ('history_change_reason', models.TextField(null=True)),
                    ('history_id', models.AutoField(primary_key=True, serialize=False)),
                    ('history_date', models.DateTimeField(db_index=True)),
                    ('history_type', models.CharField(choices=[('+', 'Created'), ('~', 'Changed'), ('-', 'Deleted')], max_length=1)),
                    ('history_user', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ('user', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ('project', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='accounts.project')),
                ],
                options={
                    'verbose_name': 'historical membership',
                    'verbose_name_plural': 'historical memberships',
                    'db_table': 'prompts_historicalmembership',
                    'ordering': ('-history_date', '-history_id'),
                    'get_latest_by': ('history_date', 'history_id'),
                },
                bases=(simple_history.models.HistoricalChanges, models.Model),
            ),
            migrations.CreateModel(
                name='HistoricalApiKey',
                fields=[
                    ('id', models.BigIntegerField(auto_created=True, blank=True, db_index=True, verbose_name='ID')),
                    ('name', models.CharField(help_text='What uses the key, e.g. support-bot production.', max_length=200)),
                    ('prefix', models.CharField(db_index=True, editable=False, max_length=32)),
                    ('scopes', models.JSONField(default=list)),
                    ('operator', models.BooleanField(default=False, editable=False, help_text="Made by the operator's create_api_key command.")),
                    ('revoked_at', models.DateTimeField(blank=True, null=True)),
                    ('history_change_reason', models.TextField(null=True)),
                    ('history_id', models.AutoField(primary_key=True, serialize=False)),
                    ('history_date', models.DateTimeField(db_index=True)),
                    ('history_type', models.CharField(choices=[('+', 'Created'), ('~', 'Changed'), ('-', 'Deleted')], max_length=1)),
                    ('created_by', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ('history_user', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ('revoked_by', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ('project', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='accounts.project')),
                ],
                options={
                    'verbose_name': 'historical API key',
                    'verbose_name_plural': 'historical API keys',
                    'db_table': 'prompts_historicalapikey',
                    'ordering': ('-history_date', '-history_id'),
                    'get_latest_by': ('history_date', 'history_id'),
                },
                bases=(simple_history.models.HistoricalChanges, models.Model),
            ),
            migrations.CreateModel(
                name='ApiKey',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('name', models.CharField(help_text='What uses the key, e.g. support-bot production.', max_length=200)),
                    ('prefix', models.CharField(editable=False, max_length=32, unique=True)),
                    ('secret_hash', models.CharField(editable=False, max_length=64)),
                    ('scopes', models.JSONField(default=list)),
                    ('operator', models.BooleanField(default=False, editable=False, help_text="Made by the operator's create_api_key command.")),
                    ('created_at', models.DateTimeField(auto_now_add=True)),
                    ('last_used_at', models.DateTimeField(blank=True, null=True)),
                    ('revoked_at', models.DateTimeField(blank=True, null=True)),
                    ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ('revoked_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ('project', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='api_keys', to='accounts.project')),
                ],
                options={
                    'verbose_name': 'API key',
                    'db_table': 'prompts_apikey',
                    'ordering': ['project', '-created_at'],
                },
            ),
            migrations.AddConstraint(
                model_name='membership',
                constraint=models.UniqueConstraint(fields=('project', 'user'), name='membership_unique_project_user'),
            ),
            migrations.AddConstraint(
                model_name='membership',
                constraint=models.CheckConstraint(condition=models.Q(('role__in', ['viewer', 'editor', 'admin', 'owner'])), name='membership_role_valid'),
            ),
            ],
            database_operations=[],
        ),
        move_content_types('prompts', 'accounts', ['project', 'historicalproject', 'membership', 'historicalmembership', 'apikey', 'historicalapikey']),
    ]
