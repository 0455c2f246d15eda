"""Governance: approvals of production moves, in-app notifications, the audit log and webhooks.

Lower layers are never imported from here in reverse: the prompts layer announces version
saves and label moves with signals (prompts.signals), which evaluations.apps connects here.
"""
