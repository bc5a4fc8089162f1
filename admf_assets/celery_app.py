"""The Celery app ``admf worker`` runs (``celery -A admf_assets.celery_app worker``): dagster-
celery's step task on admf's broker, with the whole project imported once in the worker's main
process, so its pool processes (forked from it) start every step with the modules loaded."""

from dagster_celery.tasks import create_task

from admf_assets import distributed, settings

settings.ensure_dagster_home()  # the same instance (dagster.yaml) as the launcher's

app = distributed.make_app()
execute_plan = create_task(app)

import admf_assets.defs  # noqa: E402,F401  the project (phases, engine, compiler) before the pool forks
import admf_assets.runner  # noqa: E402,F401
