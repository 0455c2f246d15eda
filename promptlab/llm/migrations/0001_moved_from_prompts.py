"""The model catalog moves from prompts to llm. State only: the tables keep their names."""

import django.core.validators
import django.db.models.deletion
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
                name='ModelEndpoint',
                fields=[
                    ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                    ('name', models.SlugField(help_text='Stable identifier used in scripts and the API.', max_length=64, unique=True)),
                    ('display_name', models.CharField(max_length=200)),
                    ('model', models.CharField(help_text='LiteLLM model string, e.g. openai/gpt-4o-mini or anthropic/claude-3-5-haiku-latest.', max_length=200)),
                    ('api_base', models.URLField(blank=True, help_text='Only for self-hosted or proxied models; the host must be in PROMPTLAB_API_BASE_HOSTS.')),
                    ('api_key_env', models.CharField(blank=True, help_text='Name of the environment variable holding the API key, e.g. OPENAI_API_KEY.', max_length=100, validators=[django.core.validators.RegexValidator('^[A-Z_][A-Z0-9_]*$', 'Enter the NAME of an environment variable (e.g. OPENAI_API_KEY), never the key itself.')], verbose_name='API key variable')),
                    ('input_cost_per_token', models.DecimalField(blank=True, decimal_places=12, help_text="USD per prompt token. Empty: LiteLLM's bundled price list.", max_digits=16, null=True, validators=[django.core.validators.MinValueValidator(0)])),
                    ('output_cost_per_token', models.DecimalField(blank=True, decimal_places=12, help_text="USD per completion token. Empty: LiteLLM's bundled price list.", max_digits=16, null=True, validators=[django.core.validators.MinValueValidator(0)])),
                    ('timeout_seconds', models.FloatField(default=60, validators=[django.core.validators.MinValueValidator(0.1), django.core.validators.MaxValueValidator(900)])),
                    ('max_retries', models.PositiveSmallIntegerField(default=2, help_text='Retries after a transient failure (rate limit, timeout, 5xx).', validators=[django.core.validators.MaxValueValidator(10)])),
                    ('requests_per_minute', models.PositiveIntegerField(blank=True, help_text='Shared by all workers. Empty: no limit.', null=True, validators=[django.core.validators.MinValueValidator(1)])),
                    ('max_concurrency', models.PositiveIntegerField(blank=True, help_text='Calls in flight at once, across all workers. Empty: no limit.', null=True, validators=[django.core.validators.MinValueValidator(1)])),
                    ('enabled', models.BooleanField(default=True)),
                    ('created_at', models.DateTimeField(auto_now_add=True)),
                    ('updated_at', models.DateTimeField(auto_now=True)),
                ],
                options={
                    'db_table': 'prompts_modelendpoint',
                    'ordering': ['display_name'],
                },
            ),
            migrations.CreateModel(
                name='HistoricalModelEndpoint',
                fields=[
                    ('id', models.BigIntegerField(auto_created=True, blank=True, db_index=True, verbose_name='ID')),
                    ('name', models.SlugField(help_text='Stable identifier used in scripts and the API.', max_length=64)),
                    ('display_name', models.CharField(max_length=200)),
                    ('model', models.CharField(help_text='LiteLLM model string, e.g. openai/gpt-4o-mini or anthropic/claude-3-5-haiku-latest.', max_length=200)),
                    ('api_base', models.URLField(blank=True, help_text='Only for self-hosted or proxied models; the host must be in PROMPTLAB_API_BASE_HOSTS.')),
                    ('api_key_env', models.CharField(blank=True, help_text='Name of the environment variable holding the API key, e.g. OPENAI_API_KEY.', max_length=100, validators=[django.core.validators.RegexValidator('^[A-Z_][A-Z0-9_]*$', 'Enter the NAME of an environment variable (e.g. OPENAI_API_KEY), never the key itself.')], verbose_name='API key variable')),
                    ('input_cost_per_token', models.DecimalField(blank=True, decimal_places=12, help_text="USD per prompt token. Empty: LiteLLM's bundled price list.", max_digits=16, null=True, validators=[django.core.validators.MinValueValidator(0)])),
                    ('output_cost_per_token', models.DecimalField(blank=True, decimal_places=12, help_text="USD per completion token. Empty: LiteLLM's bundled price list.", max_digits=16, null=True, validators=[django.core.validators.MinValueValidator(0)])),
                    ('timeout_seconds', models.FloatField(default=60, validators=[django.core.validators.MinValueValidator(0.1), django.core.validators.MaxValueValidator(900)])),
                    ('max_retries', models.PositiveSmallIntegerField(default=2, help_text='Retries after a transient failure (rate limit, timeout, 5xx).', validators=[django.core.validators.MaxValueValidator(10)])),
                    ('requests_per_minute', models.PositiveIntegerField(blank=True, help_text='Shared by all workers. Empty: no limit.', null=True, validators=[django.core.validators.MinValueValidator(1)])),
                    ('max_concurrency', models.PositiveIntegerField(blank=True, help_text='Calls in flight at once, across all workers. Empty: no limit.', null=True, validators=[django.core.validators.MinValueValidator(1)])),
                    ('enabled', models.BooleanField(default=True)),
                    ('history_change_reason', models.TextField(null=True)),
                    ('history_id', models.AutoField(primary_key=True, serialize=False)),
                    ('history_date', models.DateTimeField(db_index=True)),
                    ('history_type', models.CharField(choices=[('+', 'Created'), ('~', 'Changed'), ('-', 'Deleted')], max_length=1)),
                    ('history_user', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ],
                options={
                    'verbose_name': 'historical model endpoint',
                    'verbose_name_plural': 'historical model endpoints',
                    'db_table': 'prompts_historicalmodelendpoint',
                    'ordering': ('-history_date', '-history_id'),
                    'get_latest_by': ('history_date', 'history_id'),
                },
                bases=(simple_history.models.HistoricalChanges, models.Model),
            ),
            ],
            database_operations=[],
        ),
        move_content_types('prompts', 'llm', ['modelendpoint', 'historicalmodelendpoint']),
    ]
