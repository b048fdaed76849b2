"""Runs of playbooks: the queue, the dispatcher threads, ansible-runner."""
from .. import settings


def includeme(config):
    registry = config.registry
    registry.mode = "started"
    slots = settings.get(registry, "runner_slots")
    registry.runner_stats = lambda: {"slots": slots, "busy": 0, "queued": 0}
