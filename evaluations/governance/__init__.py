"""Governance: approvals of production moves, in-app notifications, the audit log and webhooks.

It sits above evaluations and never is imported by a lower layer: it registers its approval
check with prompts.checks and listens to prompts.signals (see apps.py).
"""
