"""The tests' task backend: it records every task as Django's dummy backend does, and runs the
mail tasks at once, as the worker would, so tests see the mail an action causes."""

from django.tasks.backends.dummy import DummyBackend

RUN_AT_ONCE = {"send_notification"}


class RecordingBackend(DummyBackend):
    def enqueue(self, task, args, kwargs):
        result = super().enqueue(task, args, kwargs)
        if task.name in RUN_AT_ONCE:
            task.call(*args, **kwargs)
        return result
