"""Celery tasks by role. Thin: ids in, one service call, queue concerns only."""
