"""`kill -USR1 <pid>`: log what every task of a running service is waiting on.

A delivery that stays unacked with nothing open downstream is work waiting on something; the
stack of each task says what. One log record per task, at WARNING, so it shows at the default
log level.
"""

import asyncio
import io
import logging
import signal

logger = logging.getLogger(__name__)


def install_task_dump() -> None:
    """Dump the tasks of the running loop on SIGUSR1 (a no-op where signals cannot be set)."""
    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump_tasks)
    except (NotImplementedError, RuntimeError, ValueError):
        logger.debug("SIGUSR1 task dump not available here")


def dump_tasks() -> None:
    tasks = asyncio.all_tasks()
    logger.warning("task dump: %d tasks", len(tasks))
    for task in tasks:
        frames = io.StringIO()
        task.print_stack(limit=12, file=frames)
        logger.warning("task %s\n%s", task.get_name(), frames.getvalue())
