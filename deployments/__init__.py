"""Deployment concerns: environments, setup, work pools, automations.

Run setup as `python -m deployments.setup`.
"""
