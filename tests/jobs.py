"""Running jobs in tests: the worker's `run_job`, for every job waiting, in the test's thread."""

from groups_app.models import Job
from groups_app.services.jobs import job_run


def run_jobs(**kwargs) -> list[Job]:
    """Run every queued job to its end, as the worker would; returns them as they ended."""
    return [
        job_run(pk, **kwargs) for pk in Job.objects.unfinished().order_by("pk").values_list("pk", flat=True)
    ]
