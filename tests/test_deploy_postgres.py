"""`pytest --postgres` (`make test-postgres`) runs every database test on PostgreSQL.

The pipeline tests then prove that the Celery worker works in that same database: a document only
becomes ready when the worker finds its row. This file checks that the run is what it says.
"""

import pytest
from django.db import connection

from tests.conftest import Stack


@pytest.mark.skipif("not config.getoption('postgres')", reason="runs with --postgres")
def test_the_tests_and_the_worker_use_postgres(live: Stack) -> None:
    assert connection.vendor == "postgresql"
    test_database = connection.settings_dict["NAME"]
    assert test_database.startswith("test_")
    assert live.worker_env["DOCDB_DATABASE_URL"].startswith("postgres://")
    assert live.worker_env["DOCDB_DATABASE_URL"].endswith(f"/{test_database}")
